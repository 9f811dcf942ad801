"""Tree hash inputs (RFC 9420 §7.8)."""

from __future__ import annotations

from .codec import Writer
from .leaf_node import LeafNode
from .nodes import NodeType, ParentNode


def leaf_hash_input(leaf_index: int, leaf: LeafNode | None) -> bytes:
    """``TreeHashInput`` for a leaf: node_type, leaf_index, optional<LeafNode>."""
    w = Writer()
    w.u8(NodeType.LEAF)
    w.u32(leaf_index)
    w.optional(leaf, lambda w2, n: n.encode(w2))
    return w.getvalue()


def parent_hash_input_for_tree(
    node: ParentNode | None, left_hash: bytes, right_hash: bytes
) -> bytes:
    """``TreeHashInput`` for a parent: optional<ParentNode>, left and right hashes."""
    w = Writer()
    w.u8(NodeType.PARENT)
    w.optional(node, lambda w2, n: n.encode(w2))
    w.opaque(left_hash)
    w.opaque(right_hash)
    return w.getvalue()
