"""Commit and UpdatePath (RFC 9420 §12.4, §7.6)."""

from __future__ import annotations

from dataclasses import dataclass

from .codec import Reader, Struct, Writer
from .leaf_node import LeafNode
from .proposals import ProposalOrRef


@dataclass(frozen=True, slots=True)
class HPKECiphertext(Struct):
    kem_output: bytes
    ciphertext: bytes

    def encode(self, w: Writer) -> None:
        w.opaque(self.kem_output)
        w.opaque(self.ciphertext)

    @classmethod
    def decode(cls, r: Reader) -> HPKECiphertext:
        return cls(r.opaque(), r.opaque())


@dataclass(frozen=True, slots=True)
class UpdatePathNode(Struct):
    encryption_key: bytes
    encrypted_path_secret: tuple[HPKECiphertext, ...]

    def encode(self, w: Writer) -> None:
        w.opaque(self.encryption_key)
        w.vector(self.encrypted_path_secret, lambda w2, c: c.encode(w2))

    @classmethod
    def decode(cls, r: Reader) -> UpdatePathNode:
        return cls(r.opaque(), tuple(r.vector(HPKECiphertext.decode)))


@dataclass(frozen=True, slots=True)
class UpdatePath(Struct):
    leaf_node: LeafNode
    nodes: tuple[UpdatePathNode, ...]

    def encode(self, w: Writer) -> None:
        self.leaf_node.encode(w)
        w.vector(self.nodes, lambda w2, n: n.encode(w2))

    @classmethod
    def decode(cls, r: Reader) -> UpdatePath:
        return cls(LeafNode.decode(r), tuple(r.vector(UpdatePathNode.decode)))


@dataclass(frozen=True, slots=True)
class Commit(Struct):
    proposals: tuple[ProposalOrRef, ...]
    path: UpdatePath | None = None

    def encode(self, w: Writer) -> None:
        w.vector(self.proposals, lambda w2, p: p.encode(w2))
        w.optional(self.path, lambda w2, p: p.encode(w2))

    @classmethod
    def decode(cls, r: Reader) -> Commit:
        return cls(tuple(r.vector(ProposalOrRef.decode)), r.optional(UpdatePath.decode))
