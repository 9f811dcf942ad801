"""Who is calling: the authenticated session, its user and device.

Kept apart from :mod:`delivery.auth` (which creates principals) so that the event hub
and the sequencer, which only read them, do not import the routes that depend on
them (auth -> services -> hub/posting would otherwise close a circle).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the session, its user and (once registered) its device."""

    session_id: int
    user_pk: int
    user_id: str
    device_pk: int | None
    device_id: str | None
    cipher_suite: int | None
    signature_key: bytes | None

    @property
    def identity(self) -> bytes | None:
        """The MLS credential identity of this device, ``b"<user_id>/<device_id>"``."""
        if self.device_id is None:
            return None
        return f"{self.user_id}/{self.device_id}".encode()


@dataclass(frozen=True, slots=True)
class DevicePrincipal:
    """A :class:`Principal` whose session is bound to a registered device."""

    session_id: int
    user_pk: int
    user_id: str
    device_pk: int
    device_id: str
    cipher_suite: int
    signature_key: bytes

    @property
    def identity(self) -> bytes:
        """The MLS credential identity of this device, ``b"<user_id>/<device_id>"``."""
        return f"{self.user_id}/{self.device_id}".encode()
