"""The vault's errors and the interfaces it is built on.

:class:`corecrypto.vault.Vault` holds no key bytes and does no I/O itself: it runs
over a :class:`VaultStorage` (where the bytes live), a :class:`VaultCipher` (the key
handling and AES-256-GCM) and, optionally, a :class:`LockChannel` (locking in one
tab locks the others). The browser implementations are in
:mod:`corecrypto.vault.browser` (IndexedDB, WebCrypto, BroadcastChannel), the
CPython ones in :mod:`corecrypto.vault.local` (test doubles and tools).

This module is separate from :mod:`corecrypto.vault.core` so that the implementations
can import the interfaces without importing the vault.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..errors import CoreCryptoError

# --- errors ---------------------------------------------------------------------------


class VaultError(CoreCryptoError):
    """Base class of the vault's errors. Messages never contain secrets."""


class VaultLockedError(VaultError):
    """The vault is locked (or was locked while the call was in progress): unlock first."""


class VaultExistsError(VaultError):
    """``create`` on a vault that already exists (its header is present)."""


class VaultNotFoundError(VaultError):
    """There is no vault (no header) to unlock: create one first."""


class WrongPasswordError(VaultError):
    """The password does not open the vault. Nothing was changed."""


class VaultCorruptError(VaultError):
    """The vault header is malformed, of an unsupported version, or has parameters
    this client refuses. The vault cannot be opened; ``panic`` still works."""


class TamperedRecordError(VaultError):
    """A record failed authentication: modified, truncated, or moved from another
    name or vault. :attr:`name` is the record's name."""

    def __init__(self, name: str, detail: str = "failed authentication") -> None:
        super().__init__(f"vault record {name!r} {detail}: it was modified or moved")
        self.name = name


class InvalidRecordNameError(VaultError, ValueError):
    """A record name that is empty, too long, not a string or not encodable."""


class InvalidPasswordError(VaultError, ValueError):
    """A password that is not a non-empty string of reasonable length."""


class VaultStorageError(VaultError):
    """The storage backend failed (e.g. IndexedDB refused a write)."""


class AuthenticationError(VaultError):
    """Raised by a :class:`VaultCipher` when an AES-GCM tag does not verify (wrong
    key, or altered ciphertext, nonce or AAD). The vault turns it into
    :class:`WrongPasswordError` or :class:`TamperedRecordError`."""


# --- interfaces -----------------------------------------------------------------------


class KeyHandle:
    """An opaque reference to a key held by a :class:`VaultCipher`.

    Implementations subclass it. In the browser the handle refers to a
    non-extractable WebCrypto ``CryptoKey``: its bytes are not reachable from JS or
    Python. :meth:`destroy` releases the reference (the vault calls it when it locks);
    using a destroyed handle raises :class:`VaultLockedError`.
    """

    __slots__ = ()

    def destroy(self) -> None:
        """Drop the reference to the key. Idempotent."""

    def __repr__(self) -> str:  # never show what is inside
        return f"<{type(self).__name__}>"


class VaultStorage(Protocol):
    """Where the vault's bytes live: a flat map from names to bytes.

    Every method may raise :class:`VaultStorageError`. Writes are atomic per name.
    """

    async def get(self, name: str) -> bytes | None:
        """The bytes stored under ``name``, or None."""
        ...

    async def put(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name``, replacing what was there; durable on return."""
        ...

    async def delete(self, name: str) -> None:
        """Remove ``name``; no error if it is absent."""
        ...

    async def names(self) -> list[str]:
        """Every stored name."""
        ...

    async def wipe_all(self) -> list[str]:
        """Delete everything the client stores (browser: every IndexedDB database,
        localStorage, sessionStorage, Cache Storage, service workers). Goes on after a
        failure; returns a description of each part that failed (empty: all done)."""
        ...


class VaultCipher(Protocol):
    """Key handling and AES-256-GCM, designed so that the data key's bytes never
    leave the implementation (in the browser: WebCrypto).

    Nonces and AAD are chosen by the vault. Wrapping is AES-256-GCM of the raw 32-byte
    data key under the key-encryption key (KEK), so ``wrapped`` is 48 bytes
    (ciphertext and tag). Tag failures raise :class:`AuthenticationError`; using a
    destroyed handle raises :class:`VaultLockedError`.
    """

    async def import_kek(self, kek: bytes) -> KeyHandle:
        """A KEK handle from 32 raw bytes, usable for wrapping and unwrapping only."""
        ...

    async def new_data_key(
        self, kek: KeyHandle, nonce: bytes, aad: bytes
    ) -> tuple[KeyHandle, bytes]:
        """A fresh random 256-bit data key: (its handle, usable to encrypt and decrypt
        only; the key wrapped under ``kek``)."""
        ...

    async def unwrap(self, kek: KeyHandle, nonce: bytes, aad: bytes, wrapped: bytes
                     ) -> KeyHandle:
        """The data key's handle; :class:`AuthenticationError` for a wrong KEK or AAD."""
        ...

    async def rewrap(self, old_kek: KeyHandle, old_nonce: bytes, old_aad: bytes,
                     new_kek: KeyHandle, new_nonce: bytes, new_aad: bytes,
                     wrapped: bytes) -> bytes:
        """The same data key wrapped under ``new_kek`` (password change).
        :class:`AuthenticationError` if ``old_kek`` does not unwrap it."""
        ...

    async def encrypt(self, key: KeyHandle, nonce: bytes, aad: bytes, plaintext: bytes
                      ) -> bytes:
        """AES-256-GCM: ciphertext followed by the 16-byte tag."""
        ...

    async def decrypt(self, key: KeyHandle, nonce: bytes, aad: bytes, ciphertext: bytes
                      ) -> bytes:
        """The plaintext; :class:`AuthenticationError` if the tag does not verify."""
        ...

    def random(self, n: int) -> bytes:
        """``n`` bytes from a cryptographically secure generator."""
        ...


class LockChannel(Protocol):
    """Messages between the vaults of one origin (browser: a BroadcastChannel).

    A message is delivered to every other subscriber, never back to the sender. The
    only messages are ``"lock"`` and ``"panic"``: there is deliberately no way to
    unlock another vault through the channel, so a hostile sender can at worst lock.
    """

    def publish(self, message: str) -> None:
        """Send ``message`` to the other subscribers."""
        ...

    def subscribe(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(message)`` for each message from another subscriber."""
        ...

    def close(self) -> None:
        """Stop sending and receiving. Idempotent."""
        ...
