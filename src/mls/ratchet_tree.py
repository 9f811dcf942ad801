"""The ratchet tree (RFC 9420 §4, §7): structure, resolution, tree hash,
parent hash and the edits that proposals and commits make.

A :class:`RatchetTree` is immutable: every edit returns a new tree that
shares unchanged nodes and the tree-hash cache entries that are still valid,
so a failed operation can simply drop the new tree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from . import tree_math as tm
from .codec import Reader, encode_varint
from .crypto import CipherSuite
from .errors import DecodeError, ValidationError
from .leaf_node import LeafNode
from .nodes import (
    Node,
    ParentNode,
    decode_tree_nodes,
    decode_tree_nodes_fast,
    encode_tree_nodes,
)
from .parent_hash import parent_hash_input
from .tree_hash import leaf_hash_input, parent_hash_input_for_tree


class RatchetTree:
    """A left-balanced binary tree with ``2**k`` leaves (RFC 9420 §7.1)."""

    __slots__ = ("_blank_hint", "_hashes", "_res", "cs", "nodes")

    def __init__(
        self, cs: CipherSuite, nodes: Sequence[Node | None],
        _hashes: dict[int, bytes] | None = None,
        _res: dict[int, tuple[int, ...]] | None = None,
    ) -> None:
        self.cs = cs
        self.nodes: list[Node | None] = list(nodes)
        # Caches keyed by node index. Both the tree hash and the resolution of a
        # node depend only on the nodes of its subtree (and its position), so a
        # change to node x invalidates exactly x and its direct path.
        self._hashes: dict[int, bytes] = {} if _hashes is None else _hashes
        self._res: dict[int, tuple[int, ...]] = {} if _res is None else _res
        # No blank leaf lies left of this one (0 when unknown): add_leaf sets it
        # on the tree it returns, so a commit adding many members does not scan
        # the tree from the left for every one of them.
        self._blank_hint = 0

    # -- construction and serialization ----------------------------------------
    @classmethod
    def from_nodes(cls, cs: CipherSuite, nodes: Sequence[Node | None]) -> RatchetTree:
        """Build from a (possibly truncated) node list, validating its shape."""
        if not nodes:
            raise ValidationError("ratchet tree is empty (§12.4.3.3)")
        if nodes[-1] is None:
            raise ValidationError("ratchet tree serialization ends with a blank node (§12.4.3.3)")
        if len(nodes) % 2 == 0:
            raise ValidationError("ratchet tree has an even number of nodes (§12.4.3.3)")
        n_leaves = 1
        while tm.node_width(n_leaves) < len(nodes):
            n_leaves *= 2
        full = list(nodes) + [None] * (tm.node_width(n_leaves) - len(nodes))
        for i, node in enumerate(full):
            if node is None:
                continue
            if (i % 2 == 0) != isinstance(node, LeafNode):
                kind = "leaf" if i % 2 == 0 else "parent"
                raise ValidationError(
                    f"node {i} is in a {kind} position but has the other type (§12.4.3.3)")
        return cls(cs, full)

    @classmethod
    def decode(cls, cs: CipherSuite, data: bytes) -> RatchetTree:
        """Decode ``optional<Node> ratchet_tree<V>`` (RFC 9420 §12.4.3.3)."""
        nodes = decode_tree_nodes_fast(data)
        if nodes is None:  # the Reader decodes (or names what is wrong)
            r = Reader(data)
            nodes = decode_tree_nodes(r)
            r.finish("ratchet_tree")
        if not nodes:
            raise DecodeError("ratchet tree is empty")
        return cls.from_nodes(cs, nodes)

    def serialize(self) -> bytes:
        return encode_tree_nodes(self.nodes)

    @classmethod
    def one_member(cls, cs: CipherSuite, leaf: LeafNode) -> RatchetTree:
        return cls(cs, [leaf])

    def _derive(self, nodes: list[Node | None], changed: Iterable[int]) -> RatchetTree:
        """New tree with ``nodes``; drop cached hashes of changed nodes' ancestors."""
        n = len(nodes) // 2 + 1
        if len(nodes) != len(self.nodes):
            return RatchetTree(self.cs, nodes)
        hashes = dict(self._hashes)
        res = dict(self._res)
        for x in changed:
            hashes.pop(x, None)
            res.pop(x, None)
            for p in tm.direct_path(x, n):
                hashes.pop(p, None)
                res.pop(p, None)
        return RatchetTree(self.cs, nodes, hashes, res)

    # -- shape ---------------------------------------------------------------
    @property
    def n_leaves(self) -> int:
        return len(self.nodes) // 2 + 1

    @property
    def root(self) -> int:
        return tm.root(self.n_leaves)

    def leaf(self, leaf_index: int) -> LeafNode | None:
        if not 0 <= leaf_index < self.n_leaves:
            return None
        node = self.nodes[2 * leaf_index]
        assert node is None or isinstance(node, LeafNode)
        return node

    def leaves(self) -> Iterable[tuple[int, LeafNode]]:
        """Non-blank leaves with their leaf indices."""
        for i in range(self.n_leaves):
            node = self.nodes[2 * i]
            if node is not None:
                assert isinstance(node, LeafNode)
                yield i, node

    def direct_path(self, leaf_index: int) -> list[int]:
        return tm.direct_path(2 * leaf_index, self.n_leaves)

    def copath(self, leaf_index: int) -> list[int]:
        return tm.copath(2 * leaf_index, self.n_leaves)

    def resolution(self, x: int, exclude: frozenset[int] = frozenset()) -> list[int]:
        """Resolution of node ``x`` (RFC 9420 §4.1.1); ``exclude`` holds leaf
        indices treated as blank (new members of the commit being processed)."""
        res = self._resolution(x)
        if not exclude:
            return list(res)
        # Excluded leaves drop out wherever they appear: as a leaf of a blank
        # subtree or as a parent's unmerged leaf.
        return [y for y in res if y & 1 or y >> 1 not in exclude]

    def _resolution(self, x: int) -> tuple[int, ...]:
        cached = self._res.get(x)
        if cached is not None:
            return cached
        node = self.nodes[x]
        if x & 1 == 0:
            res: tuple[int, ...] = () if node is None else (x,)
        elif node is None:
            res = self._resolution(tm.left(x)) + self._resolution(tm.right(x))
        else:
            assert isinstance(node, ParentNode)
            res = (x, *(2 * u for u in node.unmerged_leaves))
        self._res[x] = res
        return res

    def filtered_direct_path(self, leaf_index: int) -> list[int]:
        """Direct path minus nodes whose copath child has an empty resolution (§4.1.2)."""
        res = self._resolution
        return [
            p for p, c in zip(self.direct_path(leaf_index), self.copath(leaf_index), strict=True)
            if res(c)
        ]

    # -- tree hash (§7.8) -------------------------------------------------------
    def tree_hash(self) -> bytes:
        return self.node_hash(self.root)

    def _hash_all(self) -> None:
        """Fill the tree-hash cache bottom-up without recursion: what
        :meth:`node_hash` computes, for every node at once (§7.8)."""
        hash_ = self.cs.hash
        nodes = self.nodes
        width = len(nodes)
        out = self._hashes
        for x in range(0, width, 2):
            leaf = nodes[x]
            assert leaf is None or isinstance(leaf, LeafNode)
            out[x] = hash_(leaf_hash_input(x >> 1, leaf))
        # Every child hash has the suite's hash length: one length prefix for all.
        prefix = encode_varint(len(out[0]))
        k = 1
        while (1 << k) - 1 < width:
            half = 1 << (k - 1)
            for x in range((1 << k) - 1, width, 1 << (k + 1)):
                node = nodes[x]
                assert node is None or isinstance(node, ParentNode)
                # TreeHashInput of a parent (§7.8), as parent_hash_input_for_tree builds it.
                head = b"\x02\x00" if node is None else b"\x02\x01" + node.to_bytes()
                out[x] = hash_(head + prefix + out[x - half] + prefix + out[x + half])
            k += 1

    def node_hash(self, x: int) -> bytes:
        cached = self._hashes.get(x)
        if cached is not None:
            return cached
        if not self._hashes:
            # A new tree (decoded, or grown by an Add): hash it all level by
            # level; its root hash is always needed next.
            self._hash_all()
            return self._hashes[x]
        node = self.nodes[x]
        if x & 1 == 0:
            assert node is None or isinstance(node, LeafNode)
            h = self.cs.hash(leaf_hash_input(x >> 1, node))
        else:
            assert node is None or isinstance(node, ParentNode)
            # Children of x at level k: x -/+ 2**(k-1), k = trailing one bits of x.
            half = ((x ^ (x + 1)) + 1) >> 2
            h = self.cs.hash(parent_hash_input_for_tree(
                node, self.node_hash(x - half), self.node_hash(x + half)))
        self._hashes[x] = h
        return h

    def _hash_excluding(self, x: int, exclude: frozenset[int]) -> bytes:
        """Tree hash of ``x`` with leaves in ``exclude`` blanked and removed from
        every unmerged_leaves list (the "original" tree of §7.9.1)."""
        if not exclude or not any(u in exclude for u in tm.leaves_of(x)):
            return self.node_hash(x)
        if x % 2 == 0:
            return self.cs.hash(leaf_hash_input(x // 2, None))
        node = self.nodes[x]
        assert node is None or isinstance(node, ParentNode)
        if node is not None:
            kept = tuple(u for u in node.unmerged_leaves if u not in exclude)
            node = ParentNode(node.encryption_key, node.parent_hash, kept)
        return self.cs.hash(parent_hash_input_for_tree(
            node, self._hash_excluding(tm.left(x), exclude),
            self._hash_excluding(tm.right(x), exclude)))

    # -- parent hash (§7.9) -------------------------------------------------------
    def parent_hash_of(self, p: int, sibling: int) -> bytes:
        """ParentHash of node ``p`` as seen from the child whose sibling is ``sibling``."""
        node = self.nodes[p]
        assert isinstance(node, ParentNode)
        osth = self._hash_excluding(sibling, frozenset(node.unmerged_leaves))
        return self.cs.hash(parent_hash_input(node.encryption_key, node.parent_hash, osth))

    def verify_parent_hashes(self) -> bool:
        """Every non-blank parent node is parent-hash valid (§7.9.2): some node
        in one child's resolution (minus the parent's unmerged leaves) carries
        the parent's hash computed against the other child."""
        for p in range(1, len(self.nodes), 2):
            node = self.nodes[p]
            if node is None:
                continue
            assert isinstance(node, ParentNode)
            unmerged = frozenset(node.unmerged_leaves)
            if not any(
                self._linked(p, child, sib, unmerged)
                for child, sib in ((tm.left(p), tm.right(p)), (tm.right(p), tm.left(p)))
            ):
                return False
        return True

    def _linked(self, p: int, child: int, sib: int, unmerged: frozenset[int]) -> bool:
        expected = self.parent_hash_of(p, sib)
        for d in self.resolution(child, unmerged):
            dn = self.nodes[d]
            if dn is not None and dn.parent_hash == expected:
                return True
        return False

    def path_parent_hashes(
        self, leaf_index: int, path: Sequence[int], keys: Sequence[bytes]
    ) -> tuple[list[bytes], bytes]:
        """Parent hashes along a new filtered direct path ``path`` with public
        ``keys`` (§7.9): the ``parent_hash`` of each path node (bottom-up) and
        the one the leaf must carry. Copath subtrees are untouched by the path,
        so their cached tree hashes stay valid."""
        copath_child = dict(
            zip(self.direct_path(leaf_index), self.copath(leaf_index), strict=True))
        out = [b""] * len(path)
        ph = b""
        for k in range(len(path) - 1, -1, -1):
            out[k] = ph
            ph = self.cs.hash(parent_hash_input(keys[k], ph, self.node_hash(copath_child[path[k]])))
        return out, ph

    # -- edits (§7.7, §12.1) -------------------------------------------------------
    def add_leaf(self, leaf: LeafNode) -> tuple[RatchetTree, int]:
        """Insert at the leftmost blank leaf, extending the tree if full (§7.7)."""
        tree, (index,) = self.add_leaves([leaf])
        return tree, index

    def add_leaves(self, leaves: Sequence[LeafNode]) -> tuple[RatchetTree, list[int]]:
        """:meth:`add_leaf` for each of ``leaves`` in order (§7.7, §12.1.1), on
        one copy of the tree: a commit adding many members copies the node
        list and caches once, not once per member."""
        nodes = list(self.nodes)
        hint = self._blank_hint
        grown = False
        changed: list[int] = []
        indices: list[int] = []
        for leaf in leaves:
            n = len(nodes) // 2 + 1
            index = None
            for i in range(hint, n):
                if nodes[2 * i] is None:
                    index = i
                    break
            if index is None:
                index = n
                nodes += [None] * len(nodes) + [None]  # double: n leaves -> 2n leaves
                grown = True
                n *= 2
            nodes[2 * index] = leaf
            # The new leaf is unmerged at every non-blank parent above it (§7.7).
            for p in tm.direct_path(2 * index, n):
                node = nodes[p]
                if node is not None:
                    assert isinstance(node, ParentNode)
                    nodes[p] = ParentNode(
                        node.encryption_key, node.parent_hash, (*node.unmerged_leaves, index))
            hint = index + 1
            changed.append(2 * index)
            indices.append(index)
        # A grown tree starts with empty caches; otherwise the changed leaves'
        # direct paths (which hold every parent edited above) are invalidated.
        tree = RatchetTree(self.cs, nodes) if grown else self._derive(nodes, changed)
        tree._blank_hint = hint
        return tree, indices

    def blank_path(self, leaf_index: int, keep_leaf: LeafNode | None) -> RatchetTree:
        """Set the leaf (or blank it) and blank its direct path."""
        nodes = list(self.nodes)
        nodes[2 * leaf_index] = keep_leaf
        for p in self.direct_path(leaf_index):
            nodes[p] = None
        return self._derive(nodes, [2 * leaf_index])

    def update_leaf(self, leaf_index: int, leaf: LeafNode) -> RatchetTree:
        """Update proposal: replace the leaf, blank its direct path (§12.1.2)."""
        return self.blank_path(leaf_index, leaf)

    def remove_leaf(self, leaf_index: int) -> RatchetTree:
        """Remove proposal: blank the leaf and its direct path, then truncate (§12.1.3)."""
        return self.blank_path(leaf_index, None).truncate()

    def truncate(self) -> RatchetTree:
        """Halve the tree while its right half is entirely blank (§7.7)."""
        nodes = self.nodes
        n = self.n_leaves
        while n > 1 and all(x is None for x in nodes[n:]):
            n //= 2
            nodes = nodes[: tm.node_width(n)]
        if len(nodes) == len(self.nodes):
            return self
        return RatchetTree(self.cs, nodes)

    def merge_update_path(
        self, leaf_index: int, leaf: LeafNode, path_keys: Sequence[bytes], *,
        path: Sequence[int] | None = None, hashes: Sequence[bytes] | None = None,
    ) -> RatchetTree:
        """Apply an UpdatePath's public part (§7.5): the new leaf, new keys with
        parent hashes on the filtered direct path, the rest of the path blanked.
        Checking the leaf's parent_hash against :meth:`path_parent_hashes` is
        the caller's job. ``path`` (this tree's filtered direct path of the
        leaf) and ``hashes`` (:meth:`path_parent_hashes` for ``path_keys``)
        spare recomputing them when the caller already has them."""
        if path is None:
            path = self.filtered_direct_path(leaf_index)
        if len(path) != len(path_keys):
            raise ValidationError(
                f"UpdatePath has {len(path_keys)} nodes, the filtered direct path {len(path)}")
        if hashes is None:
            hashes, _ = self.path_parent_hashes(leaf_index, path, path_keys)
        nodes = list(self.nodes)
        for p in self.direct_path(leaf_index):
            nodes[p] = None
        for p, key, ph in zip(path, path_keys, hashes, strict=True):
            nodes[p] = ParentNode(key, ph, ())
        nodes[2 * leaf_index] = leaf
        return self._derive(nodes, [2 * leaf_index])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RatchetTree) and self.nodes == other.nodes

    def __hash__(self) -> int:
        return hash(tuple(self.nodes))
