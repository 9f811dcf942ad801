"""Credentials (RFC 9420 §5.3).

A credential binds an identity to a signature key. ``basic`` carries an opaque
identity the application interprets; ``x509`` a certificate chain whose
validation is left to the application's Authentication Service.
"""

from __future__ import annotations

from dataclasses import dataclass

from .codec import Reader, Struct, Writer, read_opaque, write_opaque
from .errors import DecodeError


class CredentialType:
    """Registered credential types (RFC 9420 §17.5)."""

    BASIC = 0x0001
    X509 = 0x0002


@dataclass(frozen=True, slots=True)
class Credential(Struct):
    """``Credential``: a basic identity or an X.509 chain (RFC 9420 §5.3)."""

    credential_type: int
    identity: bytes = b""
    certificates: tuple[bytes, ...] = ()

    @classmethod
    def basic(cls, identity: bytes) -> Credential:
        return cls(CredentialType.BASIC, identity=identity)

    def encode(self, w: Writer) -> None:
        w.u16(self.credential_type)
        if self.credential_type == CredentialType.BASIC:
            w.opaque(self.identity)
        elif self.credential_type == CredentialType.X509:
            w.vector(self.certificates, write_opaque)
        else:
            raise ValueError(f"cannot encode credential type {self.credential_type}")

    @classmethod
    def decode(cls, r: Reader) -> Credential:
        ctype = r.u16()
        if ctype == CredentialType.BASIC:
            return cls(ctype, identity=r.opaque())
        if ctype == CredentialType.X509:
            return cls(ctype, certificates=tuple(r.vector(read_opaque)))
        # The Credential struct has no length prefix, so an unknown type cannot be skipped.
        raise DecodeError(f"unknown credential type 0x{ctype:04x}")
