"""Extensions (RFC 9420 §13) and the payloads of the registered ones (§17.3).

Extensions travel as ``(type, opaque data)`` pairs so unknown ones round-trip
unchanged; the typed payloads below are decoded on demand.
"""

from __future__ import annotations

from dataclasses import dataclass

from .codec import Reader, Struct, Writer, read_u16, write_u16
from .credentials import Credential
from .errors import ValidationError


class ExtensionType:
    """Registered extension types (RFC 9420 §17.3) and the last-resort
    KeyPackage marker of the MLS extensions draft."""

    APPLICATION_ID = 0x0001
    RATCHET_TREE = 0x0002
    REQUIRED_CAPABILITIES = 0x0003
    EXTERNAL_PUB = 0x0004
    EXTERNAL_SENDERS = 0x0005
    LAST_RESORT = 0x000A

    DEFAULT = frozenset({1, 2, 3, 4, 5})


@dataclass(frozen=True, slots=True)
class Extension(Struct):
    extension_type: int
    extension_data: bytes

    def encode(self, w: Writer) -> None:
        w.u16(self.extension_type)
        w.opaque(self.extension_data)

    @classmethod
    def decode(cls, r: Reader) -> Extension:
        return cls(r.u16(), r.opaque())


def write_extensions(w: Writer, extensions: tuple[Extension, ...]) -> None:
    w.vector(extensions, lambda w2, e: e.encode(w2))


def read_extensions(r: Reader) -> tuple[Extension, ...]:
    return tuple(r.vector(Extension.decode))


def check_unique_extensions(extensions: tuple[Extension, ...], where: str) -> None:
    """RFC 9420 §13: an extension type appears at most once in a list."""
    seen: set[int] = set()
    for e in extensions:
        if e.extension_type in seen:
            raise ValidationError(
                f"{where}: extension type 0x{e.extension_type:04x} appears more than once "
                "(§13.4)"
            )
        seen.add(e.extension_type)


def find_extension(extensions: tuple[Extension, ...], ext_type: int) -> bytes | None:
    for e in extensions:
        if e.extension_type == ext_type:
            return e.extension_data
    return None


@dataclass(frozen=True, slots=True)
class RequiredCapabilities(Struct):
    """``required_capabilities`` (RFC 9420 §11.1)."""

    extension_types: tuple[int, ...] = ()
    proposal_types: tuple[int, ...] = ()
    credential_types: tuple[int, ...] = ()

    def encode(self, w: Writer) -> None:
        w.vector(self.extension_types, write_u16)
        w.vector(self.proposal_types, write_u16)
        w.vector(self.credential_types, write_u16)

    @classmethod
    def decode(cls, r: Reader) -> RequiredCapabilities:
        return cls(
            tuple(r.vector(read_u16)), tuple(r.vector(read_u16)), tuple(r.vector(read_u16))
        )


@dataclass(frozen=True, slots=True)
class ExternalPub(Struct):
    """``external_pub`` (RFC 9420 §12.4.3.2)."""

    external_pub: bytes

    def encode(self, w: Writer) -> None:
        w.opaque(self.external_pub)

    @classmethod
    def decode(cls, r: Reader) -> ExternalPub:
        return cls(r.opaque())


@dataclass(frozen=True, slots=True)
class ExternalSender(Struct):
    """One entry of ``external_senders`` (RFC 9420 §12.1.8.1)."""

    signature_key: bytes
    credential: Credential

    def encode(self, w: Writer) -> None:
        w.opaque(self.signature_key)
        self.credential.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> ExternalSender:
        return cls(r.opaque(), Credential.decode(r))


def decode_external_senders(data: bytes) -> tuple[ExternalSender, ...]:
    r = Reader(data)
    out = tuple(r.vector(ExternalSender.decode))
    r.finish("external_senders")
    return out


def encode_external_senders(senders: tuple[ExternalSender, ...]) -> bytes:
    w = Writer()
    w.vector(senders, lambda w2, s: s.encode(w2))
    return w.getvalue()


def decode_application_id(data: bytes) -> bytes:
    r = Reader(data)
    v = r.opaque()
    r.finish("application_id")
    return v


__all__ = [
    "Extension",
    "ExtensionType",
    "ExternalPub",
    "ExternalSender",
    "RequiredCapabilities",
    "check_unique_extensions",
    "decode_application_id",
    "decode_external_senders",
    "encode_external_senders",
    "find_extension",
    "read_extensions",
    "write_extensions",
]
