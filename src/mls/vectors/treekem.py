"""TreeKEM vectors: processing and creating UpdatePaths (RFC 9420 §7.4-§7.9)."""

from __future__ import annotations

from dataclasses import replace

from .. import treekem
from ..commit import UpdatePath
from ..crypto import CipherSuite, CryptoProvider
from ..group_context import GroupContext
from ..leaf_node import PROTOCOL_VERSION_MLS10
from ..ratchet_tree import RatchetTree
from .registry import Case, VectorMismatch
from .util import expect, expect_true, h


def check(case: Case, provider: CryptoProvider) -> None:
    cs = CipherSuite(case["cipher_suite"], provider)
    tree = RatchetTree.decode(cs, h(case["ratchet_tree"]))
    group_id = h(case["group_id"])
    base = GroupContext(PROTOCOL_VERSION_MLS10, cs.id, group_id, case["epoch"], b"",
                        h(case["confirmed_transcript_hash"]))

    def context_for(t: RatchetTree) -> GroupContext:
        return replace(base, tree_hash=t.tree_hash())

    privates: dict[int, treekem.TreeKemPrivate] = {}
    signature_privs: dict[int, bytes] = {}
    for lp in case["leaves_private"]:
        i = lp["index"]
        keys = {2 * i: h(lp["encryption_priv"])}
        for ps in lp["path_secrets"]:
            keys[ps["node"]], _ = treekem.node_key_pair(cs, h(ps["path_secret"]))
        priv = treekem.TreeKemPrivate(i, keys)
        expect_true(f"leaf {i} private state matches tree",
                    treekem.check_private_matches(cs, tree, priv))
        privates[i] = priv
        signature_privs[i] = h(lp["signature_priv"])

    for u, up in enumerate(case["update_paths"]):
        sender = up["sender"]
        path = UpdatePath.deserialize(h(up["update_path"]))
        treekem.verify_path_leaf(cs, tree, sender, path, group_id)
        merged = tree.merge_update_path(sender, path.leaf_node,
                                        [n.encryption_key for n in path.nodes])
        expect_true(f"path {u} parent hashes", merged.verify_parent_hashes())
        expect(f"path {u} tree_hash_after", merged.tree_hash(), h(up["tree_hash_after"]))
        for j, _leaf in tree.leaves():
            if j == sender:
                continue
            if j not in privates:
                raise VectorMismatch(f"no private state for leaf {j}")
            applied = treekem.apply_update_path(cs, tree, sender, path, privates[j], context_for)
            expect(f"path {u} leaf {j} path_secret", applied.path_secret,
                   h(up["path_secrets"][j]))
            expect(f"path {u} leaf {j} commit_secret", applied.commit_secret,
                   h(up["commit_secret"]))

        template = tree.leaf(sender)
        if template is None:
            raise VectorMismatch(f"sender leaf {sender} is blank")
        created = treekem.create_update_path(cs, tree, sender, template, signature_privs[sender],
                                             group_id, context_for)
        expect_true(f"path {u} created parent hashes", created.tree.verify_parent_hashes())
        for j, _leaf in tree.leaves():
            if j == sender:
                continue
            applied = treekem.apply_update_path(cs, tree, sender, created.update_path,
                                                privates[j], context_for)
            expect(f"path {u} leaf {j} new commit_secret", applied.commit_secret,
                   created.commit_secret)
