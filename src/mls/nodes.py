"""Ratchet tree nodes (RFC 9420 §7.1, §12.4.3.3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from .codec import Reader, Struct, Writer, read_u32, write_u32
from .errors import DecodeError
from .leaf_node import LeafNode


class NodeType(IntEnum):
    LEAF = 1
    PARENT = 2


@dataclass(frozen=True, slots=True)
class ParentNode(Struct):
    """An interior node: an HPKE key, its parent hash and unmerged leaves."""

    encryption_key: bytes
    parent_hash: bytes = b""
    unmerged_leaves: tuple[int, ...] = ()
    # The node's encoding, made once: it goes into the tree hash (§7.8) of every
    # tree sharing this node. Not compared; ``replace`` starts a copy without it.
    _encoding: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def to_bytes(self) -> bytes:
        """The ``ParentNode`` encoding (cached)."""
        e = self._encoding
        if e is None:
            w = Writer()
            w.opaque(self.encryption_key)
            w.opaque(self.parent_hash)
            w.vector(self.unmerged_leaves, write_u32)
            e = w.getvalue()
            object.__setattr__(self, "_encoding", e)
        return e

    def encode(self, w: Writer) -> None:
        w.write(self.to_bytes())

    @classmethod
    def decode(cls, r: Reader) -> ParentNode:
        start = r.position
        node = cls(r.opaque(), r.opaque(), tuple(r.vector(read_u32)))
        # Varints are minimal on decode, so these bytes are the node's encoding.
        object.__setattr__(node, "_encoding", r.since(start))
        return node


Node = LeafNode | ParentNode


def encode_node(w: Writer, node: Node) -> None:
    """``Node``: node_type followed by the leaf or parent node."""
    if isinstance(node, LeafNode):
        w.u8(NodeType.LEAF)
    else:
        w.u8(NodeType.PARENT)
    node.encode(w)


def decode_node(r: Reader) -> Node:
    t = r.u8()
    if t == NodeType.LEAF:
        return LeafNode.decode(r)
    if t == NodeType.PARENT:
        return ParentNode.decode(r)
    raise DecodeError(f"unknown node_type {t}")


def encode_tree_nodes(nodes: list[Node | None]) -> bytes:
    """``optional<Node> ratchet_tree<V>`` with trailing blank nodes dropped."""
    end = len(nodes)
    while end > 0 and nodes[end - 1] is None:
        end -= 1
    w = Writer()
    def item(w2: Writer, n: Node | None) -> None:
        if n is None:
            w2.u8(0)
        else:
            w2.u8(1)
            encode_node(w2, n)

    w.vector(nodes[:end], item)
    return w.getvalue()


def decode_tree_nodes(r: Reader) -> list[Node | None]:
    return r.vector(lambda r2: r2.optional(decode_node))
