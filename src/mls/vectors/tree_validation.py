"""Tree validation vectors: resolutions, tree hashes, parent hashes and leaf
signatures of ratchet trees (RFC 9420 §4.1.1, §7.8, §7.9.2, §7.3), then the
whole tree through the joiner's check, which must also reject a copy with one
leaf signature flipped."""

from __future__ import annotations

from dataclasses import replace

from ..crypto import CipherSuite, CryptoProvider
from ..errors import SignatureError, ValidationError
from ..group import GroupConfig
from ..group.validation import check_tree_on_join
from ..nodes import ParentNode
from ..ratchet_tree import RatchetTree
from .registry import Case
from .util import expect, expect_rejected, expect_true, flip, h


def check(case: Case, provider: CryptoProvider) -> None:
    cs = CipherSuite(case["cipher_suite"], provider)
    tree = RatchetTree.decode(cs, h(case["tree"]))
    group_id = h(case["group_id"])
    expect("node count", len(tree.nodes), len(case["resolutions"]))
    expect("tree hash count", len(case["tree_hashes"]), len(tree.nodes))
    for i, want in enumerate(case["resolutions"]):
        expect(f"resolution[{i}]", tree.resolution(i), want)
    for i, want in enumerate(case["tree_hashes"]):
        expect(f"tree_hash[{i}]", tree.node_hash(i), h(want))
    expect_true("parent hashes", tree.verify_parent_hashes())
    for index, leaf in tree.leaves():
        expect_true(f"leaf {index} signature", leaf.verify(cs, group_id, index))
    # Old vectors: no clock, any lifetime.
    config = GroupConfig(clock=None, max_lifetime=None)
    root_hash = tree.tree_hash()
    check_tree_on_join(cs, tree, group_id, root_hash, (), config)
    # Corrupted variant: a flipped parent hash (or, in a tree of leaves only, a flipped
    # leaf signature: with parents above it, that would break a parent hash first).
    nodes = list(tree.nodes)
    parent = next((x for x in range(1, len(nodes), 2) if nodes[x] is not None), None)
    error: type[Exception]
    if parent is not None:
        node = nodes[parent]
        assert isinstance(node, ParentNode)
        nodes[parent] = replace(node, parent_hash=flip(node.parent_hash or b"\x00"))
        error = ValidationError
    else:
        index, leaf = next(iter(tree.leaves()))
        nodes[2 * index] = replace(leaf, signature=flip(leaf.signature))
        error = SignatureError
    bad = RatchetTree(cs, nodes)
    expect_rejected("corrupted tree", error,
                    lambda: check_tree_on_join(cs, bad, group_id, bad.tree_hash(), (), config))
