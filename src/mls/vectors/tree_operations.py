"""Tree operation vectors: Add, Update and Remove applied to a tree (RFC 9420 §12.1)."""

from __future__ import annotations

from ..codec import Reader
from ..crypto import CipherSuite, CryptoProvider
from ..proposals import Add, Remove, Update, decode_proposal
from ..ratchet_tree import RatchetTree
from .registry import Case, VectorMismatch
from .util import expect, h


def check(case: Case, provider: CryptoProvider) -> None:
    cs = CipherSuite(case["cipher_suite"], provider)
    tree = RatchetTree.decode(cs, h(case["tree_before"]))
    expect("tree_hash_before", tree.tree_hash(), h(case["tree_hash_before"]))
    r = Reader(h(case["proposal"]))
    proposal = decode_proposal(r)
    r.finish("proposal")
    if isinstance(proposal, Add):
        tree, _ = tree.add_leaf(proposal.key_package.leaf_node)
    elif isinstance(proposal, Update):
        tree = tree.update_leaf(case["proposal_sender"], proposal.leaf_node)
    elif isinstance(proposal, Remove):
        tree = tree.remove_leaf(proposal.removed)
    else:
        raise VectorMismatch(f"unexpected proposal type {proposal.TYPE}")
    expect("tree_after", tree.serialize(), h(case["tree_after"]))
    expect("tree_hash_after", tree.tree_hash(), h(case["tree_hash_after"]))
