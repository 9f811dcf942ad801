"""Forged inputs, part 2: the ratchet tree (RFC 9420 §7, §12.4.2, §12.4.3.1):
trees received on join, and UpdatePaths received in commits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from mls.errors import ValidationError
from mls.extensions import Extension
from mls.group import Group, KeyPackageBundle
from mls.leaf_node import LeafNode, LeafNodeSource
from mls.nodes import ParentNode
from mls.proposals import Add, Remove
from mls.ratchet_tree import RatchetTree

from . import forge as f


# -- trees on join (§12.4.3.1) ------
def welcome_for(a: Group, *others: Group) -> tuple[bytes, KeyPackageBundle]:
    bundle = f.key_package(a.cipher_suite, b"joiner/1")
    out = a.commit([Add(bundle.key_package)])
    a.merge_pending_commit()
    for g in others:
        g.process(out.commit)
    assert out.welcome is not None
    return out.welcome, bundle


def rejected_join(welcome: bytes, bundle: KeyPackageBundle, signer: Group,
                  tree: Callable[[RatchetTree], RatchetTree], section: str, match: str,
                  **kw: bool) -> None:
    bad = f.reforge_welcome(welcome, bundle, signer.state.signature_priv, tree=tree, **kw)
    f.assert_join_rejected(lambda: f.join_from_welcome_(bad, bundle), ValidationError, section,
                           match)
    joined = f.join_from_welcome_(welcome, bundle)  # the genuine Welcome still works
    assert joined.epoch_authenticator == signer.epoch_authenticator


def test_tree_hash_must_match_the_group_context() -> None:
    a, _b = f.make_group(2)
    welcome, bundle = welcome_for(a)
    bad = f.reforge_welcome(welcome, bundle, a.state.signature_priv, tree=lambda t: t,
                            group_info=lambda gi: replace(gi, group_context=replace(
                                gi.group_context, tree_hash=bytes(32))))
    f.assert_join_rejected(lambda: f.join_from_welcome_(bad, bundle), ValidationError,
                           "§12.4.3.1", "tree hash")
    assert f.join_from_welcome_(welcome, bundle).epoch == a.epoch


def test_parent_hashes_on_join() -> None:
    a, _b, _c = f.make_group(3)
    welcome, bundle = welcome_for(a)
    root = a.tree.root
    assert a.tree.nodes[root] is not None

    def new_root_key(t: RatchetTree) -> RatchetTree:
        node = t.nodes[root]
        assert isinstance(node, ParentNode)
        return f.set_node(t, root, replace(node, encryption_key=a.cipher_suite
                                           .generate_hpke_key_pair()[1]))

    rejected_join(welcome, bundle, a, new_root_key, "§7.9.2", "parent-hash")


def test_node_types_on_join() -> None:
    a, _b = f.make_group(2)
    welcome, bundle = welcome_for(a)

    def parent_in_a_leaf_slot(t: RatchetTree) -> RatchetTree:
        return f.set_node(t, 2, ParentNode(a.cipher_suite.generate_hpke_key_pair()[1]))

    bad = f.reforge_welcome(welcome, bundle, a.state.signature_priv, tree=parent_in_a_leaf_slot,
                            fix_tree_hash=False)
    f.assert_join_rejected(lambda: f.join_from_welcome_(bad, bundle), ValidationError,
                           "§12.4.3.3", "leaf position")
    assert f.join_from_welcome_(welcome, bundle).epoch == a.epoch


def test_leaf_in_a_parent_slot_on_join() -> None:
    a, _b = f.make_group(2)
    welcome, bundle = welcome_for(a)
    a_leaf = a.member(0)
    assert a_leaf is not None
    bad = f.reforge_welcome(welcome, bundle, a.state.signature_priv,
                            tree=lambda t: f.set_node(t, 1, a_leaf), fix_tree_hash=False)
    f.assert_join_rejected(lambda: f.join_from_welcome_(bad, bundle), ValidationError,
                           "§12.4.3.3", "parent position")
    assert f.join_from_welcome_(welcome, bundle).epoch == a.epoch


def _a_adds_b_and_c() -> tuple[Group, KeyPackageBundle, KeyPackageBundle, bytes, LeafNode]:
    """a adds b (leaf 1) and c (leaf 2) without a path: a, b's and c's bundles, the
    Welcome, and a's leaf."""
    (a,) = f.make_group(1)
    b, c = f.key_package(a.cipher_suite, b"b/1"), f.key_package(a.cipher_suite, b"c/1")
    out = a.commit([Add(b.key_package), Add(c.key_package)], force_path=False)
    a.merge_pending_commit()
    assert out.welcome is not None
    a_leaf = a.member(0)
    assert a_leaf is not None
    return a, b, c, out.welcome, a_leaf


def test_duplicate_signature_key_on_join() -> None:
    # c's leaf carries a's signature key, signed with a's key: valid but for the duplicate.
    a, b, _c, welcome, a_leaf = _a_adds_b_and_c()
    cs = a.cipher_suite

    def c_copies_a_signature_key(t: RatchetTree) -> RatchetTree:
        leaf = t.leaf(2)
        assert leaf is not None
        return f.set_node(t, 4, f.resign_leaf(cs, leaf, a.state.signature_priv,
                                              signature_key=a_leaf.signature_key))

    rejected_join(welcome, b, a, c_copies_a_signature_key, "§7.3", "duplicates")


def test_duplicate_keys_on_join() -> None:
    a, b, c, welcome, a_leaf = _a_adds_b_and_c()
    cs = a.cipher_suite

    def c_copies_a_key(t: RatchetTree) -> RatchetTree:
        leaf = t.leaf(2)
        assert leaf is not None
        return f.set_node(t, 4, f.resign_leaf(cs, leaf, c.signature_priv,
                                              encryption_key=a_leaf.encryption_key))

    rejected_join(welcome, b, a, c_copies_a_key, "§7.3", "duplicates")


def unmerged_scenario() -> tuple[Group, bytes, KeyPackageBundle]:
    """8 leaves; d (leaf 3) set nodes 3 and 7 while leaf 2 was blank; f was then
    added at leaf 2 without a path, so nodes 3 and 7 both list leaf 2 as unmerged."""
    a, b, c, d, e = f.make_group(5)
    out = a.commit([Remove(2)])
    a.merge_pending_commit()
    for g in (b, d, e):
        g.process(out.commit)
    out = d.commit()
    d.merge_pending_commit()
    for g in (a, b, e):
        g.process(out.commit)
    bundle = f.key_package(a.cipher_suite, b"f/1")
    out = a.commit([Add(bundle.key_package)], force_path=False)
    a.merge_pending_commit()
    assert out.welcome is not None
    nodes = a.tree.nodes
    assert [n.unmerged_leaves for n in (nodes[3], nodes[7])] == [(2,), (2,)]  # type: ignore[union-attr]
    del c
    return a, out.welcome, bundle


def with_unmerged(x: int, unmerged: tuple[int, ...]) -> Callable[[RatchetTree], RatchetTree]:
    def change(t: RatchetTree) -> RatchetTree:
        node = t.nodes[x]
        assert isinstance(node, ParentNode)
        return f.set_node(t, x, replace(node, unmerged_leaves=unmerged))
    return change


def test_unmerged_leaf_must_be_a_member() -> None:
    a, welcome, bundle = unmerged_scenario()
    rejected_join(welcome, bundle, a, with_unmerged(7, (2, 5)), "§12.4.3.1", "blank or absent")


def test_unmerged_leaf_must_be_below_its_node() -> None:
    a, welcome, bundle = unmerged_scenario()
    rejected_join(welcome, bundle, a, with_unmerged(3, (2, 4)), "§12.4.3.1", "outside")


def test_unmerged_leaf_must_be_listed_by_every_node_in_between() -> None:
    a, welcome, bundle = unmerged_scenario()
    rejected_join(welcome, bundle, a, with_unmerged(3, ()), "§12.4.3.1", "between leaf 2")


# -- UpdatePaths in commits (§7.5, §7.6, §7.9.2, §12.4.2) ------
def test_update_path_parent_hash() -> None:
    a, b, _c = f.make_group(3)

    def wrong_parent_hash(path: f.UpdatePath, tree: RatchetTree) -> f.UpdatePath:
        return replace(path, leaf_node=f.resign_leaf(a.cipher_suite, path.leaf_node,
                                                     a.state.signature_priv, a.group_id, 0,
                                                     parent_hash=bytes(32)))

    forged = f.forge_commit(a, tamper_path=wrong_parent_hash)
    f.assert_rejected(b, forged.message, ValidationError, "§7.9.2", then=f.genuine_commit(a))


def test_update_path_key_must_match_the_path_secret() -> None:
    a, b, c = f.make_group(3)
    cs = a.cipher_suite

    def new_root_key(path: f.UpdatePath, tree: RatchetTree) -> f.UpdatePath:
        keys = [n.encryption_key for n in path.nodes]
        keys[-1] = cs.generate_hpke_key_pair()[1]
        return f.repath(a, tree, 0, path, keys)

    forged = f.forge_commit(a, tamper_path=new_root_key)
    for g in (b, c):
        f.assert_rejected(g, forged.message, ValidationError, "§7.5", "derived public key")
    genuine = f.genuine_commit(a)()
    for g in (b, c):
        g.process(genuine)


def test_update_path_key_already_in_the_tree() -> None:
    a, b, _c = f.make_group(3)
    b_leaf = b.member(1)
    assert b_leaf is not None

    def reuse_b_key(path: f.UpdatePath, tree: RatchetTree) -> f.UpdatePath:
        keys = [n.encryption_key for n in path.nodes]
        keys[-1] = b_leaf.encryption_key
        return f.repath(a, tree, 0, path, keys)

    forged = f.forge_commit(a, tamper_path=reuse_b_key)
    f.assert_rejected(b, forged.message, ValidationError, "§12.4.2", "already appears",
                      then=f.genuine_commit(a))


def test_committer_leaf_must_get_a_new_encryption_key() -> None:
    a, b, _c = f.make_group(3)
    old = a.member(0)
    assert old is not None

    def keep_key(path: f.UpdatePath, tree: RatchetTree) -> f.UpdatePath:
        return f.repath(a, tree, 0, path, encryption_key=old.encryption_key)

    forged = f.forge_commit(a, tamper_path=keep_key)
    f.assert_rejected(b, forged.message, ValidationError, "§12.4.2", "current encryption_key",
                      then=f.genuine_commit(a))


def test_update_path_length() -> None:
    a, b, _c = f.make_group(3)

    def drop_root(path: f.UpdatePath, tree: RatchetTree) -> f.UpdatePath:
        return replace(path, nodes=path.nodes[:-1])

    forged = f.forge_commit(a, tamper_path=drop_root, reencrypt=False)
    f.assert_rejected(b, forged.message, ValidationError, "§12.4.2", "filtered direct path",
                      then=f.genuine_commit(a))


def test_update_path_resolution_size_on_a_node_the_receiver_does_not_decrypt() -> None:
    # b (leaf 1) decrypts at node 1; the root's ciphertext count is wrong (for c).
    a, b, _c = f.make_group(3)

    def extra_ciphertext(path: f.UpdatePath, tree: RatchetTree) -> f.UpdatePath:
        root = path.nodes[-1]
        return replace(path, nodes=(*path.nodes[:-1], replace(
            root, encrypted_path_secret=root.encrypted_path_secret * 2)))

    forged = f.forge_commit(a, tamper_path=extra_ciphertext, reencrypt=False)
    f.assert_rejected(b, forged.message, ValidationError, "§7.6", "ciphertexts",
                      then=f.genuine_commit(a))


def test_update_path_leaf_source_must_be_commit() -> None:
    a, b, _c = f.make_group(3)

    def update_source(path: f.UpdatePath, tree: RatchetTree) -> f.UpdatePath:
        return f.repath(a, tree, 0, path, leaf_node_source=LeafNodeSource.UPDATE,
                        parent_hash=b"")

    forged = f.forge_commit(a, tamper_path=update_source)
    f.assert_rejected(b, forged.message, ValidationError, "§7.3", "leaf_node_source",
                      then=f.genuine_commit(a))


def test_joiner_group_extensions_must_be_supported() -> None:
    # A GroupContext extension the members do not list in their capabilities.
    a, _b = f.make_group(2)
    welcome, bundle = welcome_for(a)
    bad = f.reforge_welcome(welcome, bundle, a.state.signature_priv, group_info=lambda gi: replace(
        gi, group_context=replace(gi.group_context, extensions=(Extension(0xFF00, b""),))))
    f.assert_join_rejected(lambda: f.join_from_welcome_(bad, bundle), ValidationError,
                           "§12.1.7", "does not support")
    assert f.join_from_welcome_(welcome, bundle).epoch == a.epoch
