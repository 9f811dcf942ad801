"""Ratchet tree nodes (RFC 9420 §7.1, §12.4.3.3)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from .codec import Reader, Struct, Writer, keep_encoding, read_u32, write_u32
from .credentials import Credential, CredentialType
from .errors import DecodeError
from .extensions import Extension
from .leaf_node import Capabilities, LeafNode, LeafNodeSource, Lifetime


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
        return e if e is not None else keep_encoding(self, "_encoding", self._write)

    def _write(self, w: Writer) -> None:
        w.opaque(self.encryption_key)
        w.opaque(self.parent_hash)
        w.vector(self.unmerged_leaves, write_u32)

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


_SOURCE = {int(s): s for s in LeafNodeSource}  # read-only


class _Unusual(Exception):
    """Raised inside :func:`decode_tree_nodes_fast` to hand over to the Reader."""


def _opaque_at(buf: bytes, p: int, end: int) -> tuple[bytes, int]:
    """``opaque<V>`` at ``p``: (data, position after it), minimal varints only."""
    first = buf[p]
    if first < 0x40:
        n = first
        p += 1
    elif first < 0x80 and p + 2 <= end:
        n = ((first & 0x3F) << 8) | buf[p + 1]
        if n < 0x40:
            raise _Unusual
        p += 2
    elif first < 0xC0 and p + 4 <= end:
        n = int.from_bytes(buf[p:p + 4], "big") & 0x3FFFFFFF
        if n < 0x4000:
            raise _Unusual
        p += 4
    else:
        raise _Unusual
    q = p + n
    if q > end:
        raise _Unusual
    return buf[p:q], q


def _capabilities_at(buf: bytes, p: int, end: int, seen: dict[bytes, Capabilities]
                     ) -> tuple[Capabilities, int]:
    """``Capabilities`` (five ``uint16 <V>`` lists) at ``p``. Members usually
    share them: ``seen`` maps encodings met earlier in this tree to their
    (immutable) decoded value."""
    start = p
    lists = []
    for _ in range(5):
        data, p = _opaque_at(buf, p, end)
        if len(data) & 1:
            raise _Unusual
        lists.append(data)
    key = buf[start:p]
    caps = seen.get(key)
    if caps is None:
        v, c, e, pr, cr = (struct.unpack(f">{len(d) >> 1}H", d) for d in lists)
        caps = seen[key] = Capabilities(v, c, e, pr, cr)
    return caps, p


def _leaf_at(buf: bytes, p: int, end: int, seen: dict[bytes, Capabilities]
             ) -> tuple[LeafNode, int]:
    """A basic-credential LeafNode at ``p`` (RFC 9420 §7.2), as LeafNode.decode reads it."""
    start = p
    encryption_key, p = _opaque_at(buf, p, end)
    signature_key, p = _opaque_at(buf, p, end)
    if p + 2 > end or buf[p] != 0 or buf[p + 1] != CredentialType.BASIC:
        raise _Unusual  # other credentials: the Reader's path
    identity, p = _opaque_at(buf, p + 2, end)
    capabilities, p = _capabilities_at(buf, p, end, seen)
    if p >= end:
        raise _Unusual
    src = buf[p]
    p += 1
    lifetime = None
    parent_hash = b""
    if src == LeafNodeSource.KEY_PACKAGE:
        if p + 16 > end:
            raise _Unusual
        lifetime = Lifetime(int.from_bytes(buf[p:p + 8], "big"),
                            int.from_bytes(buf[p + 8:p + 16], "big"))
        p += 16
    elif src == LeafNodeSource.COMMIT:
        parent_hash, p = _opaque_at(buf, p, end)
    elif src != LeafNodeSource.UPDATE:
        raise _Unusual
    ext_data, p = _opaque_at(buf, p, end)
    extensions = []
    q, ext_end = 0, len(ext_data)
    while q < ext_end:
        if q + 2 > ext_end:
            raise _Unusual
        etype = (ext_data[q] << 8) | ext_data[q + 1]
        data, q = _opaque_at(ext_data, q + 2, ext_end)
        extensions.append(Extension(etype, data))
    content = buf[start:p]
    signature, p = _opaque_at(buf, p, end)
    leaf = LeafNode(encryption_key, signature_key, Credential(CredentialType.BASIC, identity),
                    capabilities, _SOURCE[src], lifetime, parent_hash, tuple(extensions), signature)
    object.__setattr__(leaf, "_content", content)
    return leaf, p


def _parent_at(buf: bytes, p: int, end: int) -> tuple[ParentNode, int]:
    start = p
    encryption_key, p = _opaque_at(buf, p, end)
    parent_hash, p = _opaque_at(buf, p, end)
    unmerged, p = _opaque_at(buf, p, end)
    if len(unmerged) & 3:
        raise _Unusual
    node = ParentNode(encryption_key, parent_hash,
                      struct.unpack(f">{len(unmerged) >> 2}I", unmerged))
    object.__setattr__(node, "_encoding", buf[start:p])
    return node, p


def decode_tree_nodes_fast(data: bytes) -> list[Node | None] | None:
    """``optional<Node> ratchet_tree<V>`` spanning all of ``data``, read with
    plain index arithmetic: a joiner decodes every node of the tree, and the
    Reader's per-field calls dominate that. Yields exactly what
    :func:`decode_tree_nodes` yields, or ``None`` for anything unusual
    (malformed or trailing bytes, non-basic credentials...), which the caller
    then decodes with the Reader, for its exact error."""
    if type(data) is not bytes:
        return None
    try:
        body, end = _opaque_at(data, 0, len(data))
        if end != len(data):
            return None
        p = end - len(body)
        nodes: list[Node | None] = []
        seen: dict[bytes, Capabilities] = {}
        while p < end:
            flag = data[p]
            if flag == 0:
                nodes.append(None)
                p += 1
                continue
            if flag != 1 or p + 1 >= end:
                return None
            kind = data[p + 1]
            node: Node
            if kind == NodeType.LEAF:
                node, p = _leaf_at(data, p + 2, end, seen)
            elif kind == NodeType.PARENT:
                node, p = _parent_at(data, p + 2, end)
            else:
                return None
            nodes.append(node)
        return nodes
    except (_Unusual, IndexError):
        return None
