"""The caches added for speed (issue 13 §4) never change a result.

A :class:`RatchetTree` caches node hashes (§7.8) and resolutions (§4.1.1) and
invalidates them on every edit; a :class:`LeafNode` keeps its encoding; a
:class:`CipherSuite` keeps its loaded signing key. Each test compares the
cached answer with one computed from scratch after every kind of change,
driven by a seeded random sequence so failures reproduce.
"""

from __future__ import annotations

import random
from dataclasses import replace

from mls import tree_math as tm
from mls.credentials import Credential
from mls.crypto import CipherSuite, default_provider
from mls.group import Group, Signer, create_key_package, join_from_welcome
from mls.leaf_node import Capabilities, LeafNode, LeafNodeSource, Lifetime
from mls.nodes import Node, ParentNode
from mls.proposals import Add, Remove
from mls.ratchet_tree import RatchetTree

P = default_provider()
CS = CipherSuite(1, P)


def leaf(rng: random.Random, source: LeafNodeSource = LeafNodeSource.COMMIT) -> LeafNode:
    """A leaf with random keys: tree hashing does not check signatures."""
    return LeafNode(
        encryption_key=rng.randbytes(32), signature_key=rng.randbytes(32),
        credential=Credential.basic(rng.randbytes(4)),
        capabilities=Capabilities((1,), (1,)), leaf_node_source=source,
        lifetime=Lifetime(0, 2**40) if source == LeafNodeSource.KEY_PACKAGE else None,
        parent_hash=rng.randbytes(32) if source == LeafNodeSource.COMMIT else b"",
        signature=rng.randbytes(64))


def assert_caches_fresh(tree: RatchetTree) -> None:
    """Every node's cached hash and resolution equals a cache-free computation."""
    fresh = RatchetTree(tree.cs, list(tree.nodes))
    assert tree.tree_hash() == fresh.tree_hash()
    for x in range(len(tree.nodes)):
        assert tree.node_hash(x) == fresh.node_hash(x), f"stale hash of node {x}"
        assert tree.resolution(x) == fresh.resolution(x), f"stale resolution of node {x}"
    members = [i for i, _ in tree.leaves()]
    if members:
        excl = frozenset(members[::2])
        for x in range(len(tree.nodes)):
            assert tree.resolution(x, excl) == fresh.resolution(x, excl)


def reference_resolution(tree: RatchetTree, x: int, exclude: frozenset[int]) -> list[int]:
    """RFC 9420 §4.1.1 written out directly, as the cache's oracle."""
    node = tree.nodes[x]
    if x % 2 == 0:
        return [] if node is None or x // 2 in exclude else [x]
    if node is None:
        return (reference_resolution(tree, tm.left(x), exclude)
                + reference_resolution(tree, tm.right(x), exclude))
    assert isinstance(node, ParentNode)
    return [x] + [2 * u for u in node.unmerged_leaves if u not in exclude]


def test_tree_caches_survive_random_edits() -> None:
    rng = random.Random(1309)
    tree = RatchetTree.one_member(CS, leaf(rng))
    kinds: dict[str, int] = {}
    for _ in range(300):
        members = [i for i, _ in tree.leaves()]
        op = rng.choice(["add", "add", "adds", "update", "remove", "path", "path", "hash"])
        if op == "remove" and len(members) < 2:
            op = "add"
        kinds[op] = kinds.get(op, 0) + 1
        before = tree.tree_hash()
        if op == "add":
            new = leaf(rng, LeafNodeSource.KEY_PACKAGE)
            _, want = RatchetTree(tree.cs, list(tree.nodes)).add_leaf(new)
            tree, got = tree.add_leaf(new)
            assert got == want, "add_leaf must fill the leftmost blank leaf (§7.7)"
        elif op == "adds":  # a commit's Adds in one edit: as if added one by one
            new_leaves = [leaf(rng, LeafNodeSource.KEY_PACKAGE) for _ in range(rng.randint(1, 6))]
            one_by_one = RatchetTree(tree.cs, list(tree.nodes))
            wants = []
            for new in new_leaves:
                one_by_one, i = one_by_one.add_leaf(new)
                wants.append(i)
            tree, gots = tree.add_leaves(new_leaves)
            assert gots == wants and tree.nodes == one_by_one.nodes
        elif op == "update":
            tree = tree.update_leaf(rng.choice(members), leaf(rng, LeafNodeSource.UPDATE))
        elif op == "remove":
            tree = tree.remove_leaf(rng.choice(members))
        elif op == "path":
            who = rng.choice(members)
            keys = [rng.randbytes(32) for _ in tree.filtered_direct_path(who)]
            tree = tree.merge_update_path(who, leaf(rng), keys)
        else:  # only reads: warm the caches of a random subtree
            tree.node_hash(rng.randrange(len(tree.nodes)))
        assert_caches_fresh(tree)
        if op != "hash":
            # Every edit here changes some node, so the root hash must change.
            assert tree.tree_hash() != before
        excl = frozenset(rng.sample(range(tree.n_leaves), k=min(2, tree.n_leaves)))
        for x in range(len(tree.nodes)):
            assert tree.resolution(x, excl) == reference_resolution(tree, x, excl)
    assert min(kinds.values()) > 10, kinds  # every kind of edit was exercised


def test_edit_leaves_the_original_tree_and_its_caches_intact() -> None:
    rng = random.Random(7)
    tree = RatchetTree.one_member(CS, leaf(rng))
    for _ in range(6):
        tree, _ = tree.add_leaf(leaf(rng, LeafNodeSource.KEY_PACKAGE))
    tree = tree.merge_update_path(0, leaf(rng), [rng.randbytes(32)
                                                 for _ in tree.filtered_direct_path(0)])
    assert_caches_fresh(tree)  # every cache entry is warm now
    snapshot = (list(tree.nodes), tree.tree_hash())
    edited, _ = tree.add_leaf(leaf(rng, LeafNodeSource.KEY_PACKAGE))
    edited = edited.update_leaf(3, leaf(rng, LeafNodeSource.UPDATE))
    assert_caches_fresh(edited)
    assert (tree.nodes, tree.tree_hash()) == snapshot
    assert_caches_fresh(tree)


def test_leaf_encoding_cache_matches_fresh_encoding() -> None:
    rng = random.Random(3)
    for source in LeafNodeSource:
        node = leaf(rng, source)
        data = node.serialize()
        decoded = LeafNode.deserialize(data)
        assert decoded == node and decoded.serialize() == data
        rebuilt = LeafNode(*(getattr(decoded, f) for f in (
            "encryption_key", "signature_key", "credential", "capabilities",
            "leaf_node_source", "lifetime", "parent_hash", "extensions", "signature")))
        assert rebuilt.content_bytes() == decoded.content_bytes()
        # A copy with another field must not keep the old encoding.
        changed = replace(decoded, encryption_key=rng.randbytes(32))
        assert changed.content_bytes() != decoded.content_bytes()
        assert LeafNode.deserialize(changed.serialize()) == changed


def test_signing_key_cache_follows_the_key() -> None:
    a, b = CS.generate_signature_key_pair(), CS.generate_signature_key_pair()
    for priv, pub in (a, b, a, (bytes(bytearray(a[0])), a[1]), b):
        sig = CS.sign_with_label(priv, b"label", b"content")
        assert CS.verify_with_label(pub, b"label", b"content", sig)
        other = b[1] if pub == a[1] else a[1]
        assert not CS.verify_with_label(other, b"label", b"content", sig)


def test_group_trees_stay_consistent_through_commits() -> None:
    """Real commits (adds, removes, full paths) between members whose trees
    carry warm caches: every member's cached tree hash matches a fresh one."""
    rng = random.Random(42)
    creator = Group.create(P, 1, b"caches", Signer.generate(CS, b"m/0"))
    bundles = [create_key_package(CS, Signer.generate(CS, f"m/{i}".encode())) for i in (1, 2)]
    out = creator.commit([Add(b.key_package) for b in bundles])
    creator.merge_pending_commit()
    members = [creator] + [join_from_welcome(P, out.welcome or b"", b) for b in bundles]
    n = 3
    for step in range(10):
        committer = rng.choice(members)
        op = rng.choice(["add", "remove", "update"])
        others = [g for g in members if g is not committer]
        if op == "add":
            bundle = create_key_package(CS, Signer.generate(CS, f"m/{n}".encode()))
            n += 1
            out = committer.commit([Add(bundle.key_package)])
        elif op == "remove" and others:
            gone = rng.choice(others)
            out = committer.commit([Remove(gone.leaf_index)])
            others.remove(gone)
            members.remove(gone)
        else:
            out = committer.commit()
        committer.merge_pending_commit()
        for g in others:
            g.process(out.commit)
        if op == "add":
            members.append(join_from_welcome(P, out.welcome or b"", bundle))
        hashes = {g.tree.tree_hash() for g in members}
        assert len(hashes) == 1, f"step {step}: members disagree"
        for g in members:
            assert_caches_fresh(g.tree)
        exported = creator.export_state() if creator in members else None
        if exported is not None:
            assert Group.from_state(P, exported).export_state() == exported


def test_member_index_agrees_with_the_walk_over_members() -> None:
    """The index a bulk Add uses decides exactly as the per-member walk (§7.3)."""
    from mls.group.validation import MemberIndex

    rng = random.Random(99)

    def member_walk_ok(tree: RatchetTree, new: LeafNode) -> bool:
        for _, other in tree.leaves():
            if (new.credential.credential_type not in other.capabilities.credentials
                    or other.credential.credential_type not in new.capabilities.credentials
                    or other.encryption_key == new.encryption_key
                    or other.signature_key == new.signature_key):
                return False
        return True

    def random_leaf(pool: list[LeafNode]) -> LeafNode:
        base = leaf(rng, LeafNodeSource.KEY_PACKAGE)
        creds = tuple(sorted(rng.sample([1, 2, 3], k=rng.randint(1, 3))))
        # Credential types 1 (basic) and 2 (x509) in use, 1-3 supported: the
        # index never encodes the leaf, so the x509 chain can stay empty.
        ctype = rng.choice([c for c in creds if c < 3] or [1])
        node = replace(base, credential=Credential(ctype, identity=base.credential.identity),
                       capabilities=Capabilities((1,), (1,), credentials=creds))
        if pool and rng.random() < 0.2:  # reuse a member's key now and then
            src = rng.choice(pool)
            node = replace(node, **{rng.choice(["encryption_key", "signature_key"]):
                                    getattr(src, rng.choice(["encryption_key", "signature_key"]))})
        return node

    outcomes = set()
    for _ in range(200):
        pool: list[LeafNode] = []
        tree = RatchetTree.one_member(CS, random_leaf(pool))
        pool.append(tree.leaf(0))  # type: ignore[arg-type]
        for _ in range(rng.randint(0, 6)):
            node = random_leaf(pool)
            tree, _ = tree.add_leaf(node)
            pool.append(node)
        candidate = random_leaf(pool)
        want = member_walk_ok(tree, candidate)
        assert MemberIndex(tree).fits(candidate) == want
        outcomes.add(want)
    assert outcomes == {True, False}


def test_fast_tree_decoder_agrees_with_the_reader() -> None:
    """A joiner decodes the tree without the Reader when it can: on a real
    tree and on random corruptions of it, the fast decoder either hands over
    (``None``) or yields exactly what the Reader does, encodings included."""
    from mls.codec import Reader
    from mls.errors import MLSError
    from mls.nodes import decode_tree_nodes, decode_tree_nodes_fast

    def reader(data: bytes) -> list[Node | None] | None:
        try:
            r = Reader(data)
            nodes = decode_tree_nodes(r)
            r.finish("ratchet_tree")
            return list(nodes)
        except MLSError:
            return None

    def encodings(nodes: list[Node | None] | None) -> list[bytes | None]:
        return [n.serialize() if n is not None else None for n in nodes or []]

    creator = Group.create(P, 1, b"fast", Signer.generate(CS, b"m/0"))
    creator.commit([Add(create_key_package(CS, Signer.generate(CS, f"m/{i}".encode()))
                        .key_package) for i in range(1, 6)])
    creator.merge_pending_commit()
    creator.commit()
    creator.merge_pending_commit()
    data = creator.tree.serialize()
    fast = decode_tree_nodes_fast(data)
    assert fast is not None and fast == reader(data)
    assert encodings(fast) == encodings(reader(data))
    rng = random.Random(13)
    accepted = handed_over = 0
    for _ in range(1500):
        d = bytearray(data)
        op = rng.randrange(3)
        if op == 0:
            d[rng.randrange(len(d))] = rng.randrange(256)
        elif op == 1:
            del d[rng.randrange(len(d)):]
        else:
            d.insert(rng.randrange(len(d)), rng.randrange(256))
        got = decode_tree_nodes_fast(bytes(d))
        if got is None:
            handed_over += 1
            continue
        want = reader(bytes(d))
        assert want is not None and got == want
        assert encodings(got) == encodings(want)
        accepted += 1
    assert accepted > 100 and handed_over > 100


def test_state_evolve_is_replace() -> None:
    """GroupState.evolve, the fast copy every message and commit makes, gives
    what dataclasses.replace gives, field by field, and refuses unknown fields."""
    import pytest

    from mls.group.state import Status

    g = Group.create(P, 1, b"evolve", Signer.generate(CS, b"m/0"))
    st = g.state
    changes: list[dict[str, object]] = [
        {}, {"last_own_commit": b"x"}, {"status": Status.REMOVED, "pending_commit": None},
        {"secret_tree": st.secret_tree.copy(), "proposals": ()}]
    for change in changes:
        got, want = st.evolve(**change), replace(st, **change)  # type: ignore[arg-type]
        assert got == want and got.to_bytes() == want.to_bytes()
    with pytest.raises(TypeError):
        st.evolve(no_such_field=1)
