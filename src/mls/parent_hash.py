"""Parent hash input (RFC 9420 §7.9)."""

from __future__ import annotations

from .codec import Writer


def parent_hash_input(
    encryption_key: bytes, parent_hash: bytes, original_sibling_tree_hash: bytes
) -> bytes:
    """``ParentHashInput``: what a child's ``parent_hash`` commits to."""
    w = Writer()
    w.opaque(encryption_key)
    w.opaque(parent_hash)
    w.opaque(original_sibling_tree_hash)
    return w.getvalue()
