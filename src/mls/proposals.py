"""Proposals (RFC 9420 §12.1) and ProposalOrRef (§12.4)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from .codec import Reader, Struct, Writer
from .errors import DecodeError
from .extensions import Extension, read_extensions, write_extensions
from .key_package import KeyPackage
from .leaf_node import LeafNode
from .psk import PreSharedKeyID


class ProposalType:
    """Registered proposal types (RFC 9420 §17.4)."""

    ADD = 0x0001
    UPDATE = 0x0002
    REMOVE = 0x0003
    PSK = 0x0004
    REINIT = 0x0005
    EXTERNAL_INIT = 0x0006
    GROUP_CONTEXT_EXTENSIONS = 0x0007

    DEFAULT = frozenset(range(1, 8))
    NAMES: ClassVar[dict[int, str]] = {
        1: "add", 2: "update", 3: "remove", 4: "psk", 5: "reinit", 6: "external_init",
        7: "group_context_extensions",
    }


@dataclass(frozen=True, slots=True)
class Add(Struct):
    TYPE: ClassVar[int] = ProposalType.ADD
    key_package: KeyPackage

    def encode(self, w: Writer) -> None:
        self.key_package.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> Add:
        return cls(KeyPackage.decode(r))


@dataclass(frozen=True, slots=True)
class Update(Struct):
    TYPE: ClassVar[int] = ProposalType.UPDATE
    leaf_node: LeafNode

    def encode(self, w: Writer) -> None:
        self.leaf_node.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> Update:
        return cls(LeafNode.decode(r))


@dataclass(frozen=True, slots=True)
class Remove(Struct):
    TYPE: ClassVar[int] = ProposalType.REMOVE
    removed: int

    def encode(self, w: Writer) -> None:
        w.u32(self.removed)

    @classmethod
    def decode(cls, r: Reader) -> Remove:
        return cls(r.u32())


@dataclass(frozen=True, slots=True)
class PreSharedKey(Struct):
    TYPE: ClassVar[int] = ProposalType.PSK
    psk: PreSharedKeyID

    def encode(self, w: Writer) -> None:
        self.psk.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> PreSharedKey:
        return cls(PreSharedKeyID.decode(r))


@dataclass(frozen=True, slots=True)
class ReInit(Struct):
    TYPE: ClassVar[int] = ProposalType.REINIT
    group_id: bytes
    version: int
    cipher_suite: int
    extensions: tuple[Extension, ...] = ()

    def encode(self, w: Writer) -> None:
        w.opaque(self.group_id)
        w.u16(self.version)
        w.u16(self.cipher_suite)
        write_extensions(w, self.extensions)

    @classmethod
    def decode(cls, r: Reader) -> ReInit:
        return cls(r.opaque(), r.u16(), r.u16(), read_extensions(r))


@dataclass(frozen=True, slots=True)
class ExternalInit(Struct):
    TYPE: ClassVar[int] = ProposalType.EXTERNAL_INIT
    kem_output: bytes

    def encode(self, w: Writer) -> None:
        w.opaque(self.kem_output)

    @classmethod
    def decode(cls, r: Reader) -> ExternalInit:
        return cls(r.opaque())


@dataclass(frozen=True, slots=True)
class GroupContextExtensions(Struct):
    TYPE: ClassVar[int] = ProposalType.GROUP_CONTEXT_EXTENSIONS
    extensions: tuple[Extension, ...]

    def encode(self, w: Writer) -> None:
        write_extensions(w, self.extensions)

    @classmethod
    def decode(cls, r: Reader) -> GroupContextExtensions:
        return cls(read_extensions(r))


Proposal = Add | Update | Remove | PreSharedKey | ReInit | ExternalInit | GroupContextExtensions

_BY_TYPE: dict[int, type[Proposal]] = {
    c.TYPE: c for c in (Add, Update, Remove, PreSharedKey, ReInit, ExternalInit,
                        GroupContextExtensions)
}


def encode_proposal(w: Writer, p: Proposal) -> None:
    """``Proposal``: proposal_type then the body."""
    w.u16(p.TYPE)
    p.encode(w)


def decode_proposal(r: Reader) -> Proposal:
    t = r.u16()
    cls = _BY_TYPE.get(t)
    if cls is None:
        # Proposal bodies carry no length, so an unknown type cannot be skipped.
        raise DecodeError(f"unsupported proposal type 0x{t:04x}")
    return cls.decode(r)


class ProposalOrRefType(IntEnum):
    PROPOSAL = 1
    REFERENCE = 2


@dataclass(frozen=True, slots=True)
class ProposalOrRef(Struct):
    """A proposal included in a commit by value or by ``ProposalRef``."""

    proposal: Proposal | None = None
    reference: bytes | None = None

    def encode(self, w: Writer) -> None:
        if self.proposal is not None:
            w.u8(ProposalOrRefType.PROPOSAL)
            encode_proposal(w, self.proposal)
        else:
            assert self.reference is not None
            w.u8(ProposalOrRefType.REFERENCE)
            w.opaque(self.reference)

    @classmethod
    def decode(cls, r: Reader) -> ProposalOrRef:
        t = r.u8()
        if t == ProposalOrRefType.PROPOSAL:
            return cls(proposal=decode_proposal(r))
        if t == ProposalOrRefType.REFERENCE:
            return cls(reference=r.opaque())
        raise DecodeError(f"unknown ProposalOrRef type {t}")
