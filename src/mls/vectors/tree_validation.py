"""Tree validation vectors: resolutions, tree hashes, parent hashes and leaf
signatures of ratchet trees (RFC 9420 §4.1.1, §7.8, §7.9.2, §7.3)."""

from __future__ import annotations

from ..crypto import CipherSuite, CryptoProvider
from ..ratchet_tree import RatchetTree
from .registry import Case
from .util import expect, expect_true, h


def check(case: Case, provider: CryptoProvider) -> None:
    cs = CipherSuite(case["cipher_suite"], provider)
    tree = RatchetTree.decode(cs, h(case["tree"]))
    group_id = h(case["group_id"])
    expect("node count", len(tree.nodes), len(case["resolutions"]))
    for i, want in enumerate(case["resolutions"]):
        expect(f"resolution[{i}]", tree.resolution(i), want)
    for i, want in enumerate(case["tree_hashes"]):
        expect(f"tree_hash[{i}]", tree.node_hash(i), h(want))
    expect_true("parent hashes", tree.verify_parent_hashes())
    for index, leaf in tree.leaves():
        expect_true(f"leaf {index} signature", leaf.verify(cs, group_id, index))
