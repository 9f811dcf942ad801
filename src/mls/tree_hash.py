"""Tree hash inputs (RFC 9420 §7.8).

Built by concatenation rather than through a :class:`~mls.codec.Writer`: a
tree hash computes one of these per node, so the fixed cost of each call
matters (a join hashes the whole tree).
"""

from __future__ import annotations

from .codec import encode_varint
from .leaf_node import LeafNode
from .nodes import ParentNode

# node_type (§7.8) followed by the optional<> presence octet.
_LEAF_PRESENT = b"\x01"
_PARENT_BLANK = b"\x02\x00"
_PARENT_PRESENT = b"\x02\x01"


def _opaque(data: bytes) -> bytes:
    n = len(data)
    return (bytes((n,)) if n < 0x40 else encode_varint(n)) + data


def leaf_hash_input(leaf_index: int, leaf: LeafNode | None) -> bytes:
    """``TreeHashInput`` for a leaf: node_type, leaf_index, optional<LeafNode>."""
    head = b"\x01" + leaf_index.to_bytes(4, "big")
    if leaf is None:
        return head + b"\x00"
    return head + _LEAF_PRESENT + leaf.content_bytes() + _opaque(leaf.signature)


def parent_hash_input_for_tree(
    node: ParentNode | None, left_hash: bytes, right_hash: bytes
) -> bytes:
    """``TreeHashInput`` for a parent: optional<ParentNode>, left and right hashes."""
    tail = _opaque(left_hash) + _opaque(right_hash)
    if node is None:
        return _PARENT_BLANK + tail
    return _PARENT_PRESENT + node.to_bytes() + tail
