"""TreeKEM: creating and processing UpdatePaths (RFC 9420 §7.4-§7.6).

A member's private view of the tree is a :class:`TreeKemPrivate`: the HPKE
private keys it holds, by node index (its leaf and the parents it learnt
path secrets for). Both operations are pure: they return new trees and new
private states and leave their inputs untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from . import tree_math as tm
from .codec import Reader, Writer
from .commit import HPKECiphertext, UpdatePath, UpdatePathNode
from .crypto import CipherSuite
from .errors import DecryptionError, SignatureError, ValidationError
from .group_context import GroupContext
from .key_schedule import derive_secret_info
from .leaf_node import LeafNode, LeafNodeSource
from .nodes import ParentNode
from .ratchet_tree import RatchetTree

ContextFor = Callable[[RatchetTree], GroupContext]


@dataclass(frozen=True, slots=True)
class TreeKemPrivate:
    """The HPKE private keys a member holds, keyed by node index."""

    leaf_index: int
    keys: dict[int, bytes]

    def encode(self, w: Writer) -> None:
        w.u32(self.leaf_index)

        def item(w2: Writer, kv: tuple[int, bytes]) -> None:
            w2.u32(kv[0])
            w2.opaque(kv[1])

        w.vector(sorted(self.keys.items()), item)

    @classmethod
    def decode(cls, r: Reader) -> TreeKemPrivate:
        leaf = r.u32()

        def item(r2: Reader) -> tuple[int, bytes]:
            return r2.u32(), r2.opaque()

        return cls(leaf, dict(r.vector(item)))

    def prune(self, tree: RatchetTree) -> TreeKemPrivate:
        """Drop keys of nodes that were blanked or replaced (forward secrecy)."""
        keep = {}
        for x, priv in self.keys.items():
            if x >= len(tree.nodes) or tree.nodes[x] is None:
                continue
            if x % 2 == 1 and not tm.is_in_subtree(x, 2 * self.leaf_index):
                continue
            keep[x] = priv
        return TreeKemPrivate(self.leaf_index, keep)


# Read-only: the constant HKDF inputs of DeriveSecret(_, "node") and (_, "path").
_NODE_INFO = {nh: derive_secret_info(b"node", nh) for nh in (32, 48, 64)}
_PATH_INFO = {nh: derive_secret_info(b"path", nh) for nh in (32, 48, 64)}


def node_key_pair(cs: CipherSuite, path_secret: bytes) -> tuple[bytes, bytes]:
    """node_secret = DeriveSecret(path_secret, "node"); DeriveKeyPair (§7.4)."""
    nh = cs.hash_length
    return cs.derive_key_pair(cs.mac(path_secret, _NODE_INFO[nh])[:nh])


def next_path_secret(cs: CipherSuite, path_secret: bytes) -> bytes:
    """path_secret[n+1] = DeriveSecret(path_secret[n], "path") (§7.4)."""
    nh = cs.hash_length
    return cs.mac(path_secret, _PATH_INFO[nh])[:nh]


def check_private_matches(cs: CipherSuite, tree: RatchetTree, priv: TreeKemPrivate) -> bool:
    """Every private key corresponds to the public key at its node."""
    for x, sk in priv.keys.items():
        node = tree.nodes[x] if x < len(tree.nodes) else None
        if node is None or cs.hpke_public_key(sk) != node.encryption_key:
            return False
    return True


@dataclass(frozen=True, slots=True)
class CreatedPath:
    update_path: UpdatePath
    tree: RatchetTree
    private: TreeKemPrivate
    commit_secret: bytes
    path_secrets: dict[int, bytes]  # node index -> path secret, for Welcome recipients


def create_update_path(
    cs: CipherSuite,
    tree: RatchetTree,
    leaf_index: int,
    leaf_template: LeafNode,
    signature_priv: bytes,
    group_id: bytes,
    context_for: ContextFor,
    exclude: frozenset[int] = frozenset(),
) -> CreatedPath:
    """Generate fresh path secrets for ``leaf_index`` and encrypt them to the
    copath (§7.5, §7.6). ``tree`` already has the commit's proposals applied;
    ``exclude`` are the leaves those proposals added (they get the path
    secret through the Welcome instead)."""
    fdp = tree.filtered_direct_path(leaf_index)
    leaf_priv, leaf_pub = cs.generate_hpke_key_pair()
    secrets: list[bytes] = []
    keys: list[tuple[bytes, bytes]] = []
    ps = cs.random(cs.hash_length)
    for _ in fdp:
        secrets.append(ps)
        keys.append(node_key_pair(cs, ps))
        ps = next_path_secret(cs, ps)
    commit_secret = ps
    pubs = [pk for _, pk in keys]
    node_phs, leaf_ph = tree.path_parent_hashes(leaf_index, fdp, pubs)
    leaf = replace(leaf_template, encryption_key=leaf_pub, leaf_node_source=LeafNodeSource.COMMIT,
                   lifetime=None, parent_hash=leaf_ph, signature=b"")
    leaf = leaf.signed(cs, signature_priv, group_id, leaf_index)
    new_tree = tree.merge_update_path(leaf_index, leaf, pubs, path=fdp, hashes=node_phs)
    ctx = context_for(new_tree).serialize()
    copath = dict(zip(tree.direct_path(leaf_index), tree.copath(leaf_index), strict=True))
    nodes = []
    for p, secret, (_, pub) in zip(fdp, secrets, keys, strict=True):
        cts = []
        for r in tree.resolution(copath[p], exclude):
            target = tree.nodes[r]
            assert target is not None
            kem_output, ct = cs.encrypt_with_label(target.encryption_key, b"UpdatePathNode", ctx,
                                                   secret)
            cts.append(HPKECiphertext(kem_output, ct))
        nodes.append(UpdatePathNode(pub, tuple(cts)))
    private = {2 * leaf_index: leaf_priv}
    for p, (sk, _) in zip(fdp, keys, strict=True):
        private[p] = sk
    return CreatedPath(
        UpdatePath(leaf, tuple(nodes)), new_tree, TreeKemPrivate(leaf_index, private),
        commit_secret, dict(zip(fdp, secrets, strict=True)))


def verify_path_leaf(
    cs: CipherSuite, tree: RatchetTree, sender: int, path: UpdatePath, group_id: bytes,
    fdp: list[int] | None = None,
) -> list[bytes]:
    """Checks on an UpdatePath's leaf before it is merged (§7.3, §7.9.2, §12.4.2).
    Returns the parent hashes of the path's nodes (for merging it); ``fdp`` is
    the sender's filtered direct path in ``tree`` when the caller has it."""
    leaf = path.leaf_node
    if leaf.leaf_node_source != LeafNodeSource.COMMIT:
        raise ValidationError("UpdatePath leaf_node_source must be commit (§12.4.2)")
    if fdp is None:
        fdp = tree.filtered_direct_path(sender)
    if len(fdp) != len(path.nodes):
        raise ValidationError(
            f"UpdatePath has {len(path.nodes)} nodes but the filtered direct path has "
            f"{len(fdp)} (§12.4.2)")
    hashes, expected = tree.path_parent_hashes(sender, fdp,
                                               [n.encryption_key for n in path.nodes])
    if leaf.parent_hash != expected:
        raise ValidationError("UpdatePath leaf parent_hash does not match the path (§7.9.2)")
    if not leaf.verify(cs, group_id, sender):
        raise SignatureError("UpdatePath leaf node signature is invalid (§7.3)")
    return hashes


@dataclass(frozen=True, slots=True)
class AppliedPath:
    tree: RatchetTree
    private: TreeKemPrivate
    commit_secret: bytes
    path_secret: bytes  # the one decrypted at the common ancestor


def apply_update_path(
    cs: CipherSuite,
    tree: RatchetTree,
    sender: int,
    path: UpdatePath,
    private: TreeKemPrivate,
    context_for: ContextFor,
    exclude: frozenset[int] = frozenset(),
    fdp: list[int] | None = None,
    parent_hashes: list[bytes] | None = None,
) -> AppliedPath:
    """Merge ``path`` from ``sender`` and decrypt our path secret (§7.5).
    ``fdp`` and ``parent_hashes`` (from :func:`verify_path_leaf`) spare
    recomputing the sender's filtered direct path and the path's parent hashes."""
    me = private.leaf_index
    if me == sender:
        raise ValidationError("cannot process one's own UpdatePath")
    if fdp is None:
        fdp = tree.filtered_direct_path(sender)
    if len(fdp) != len(path.nodes):
        raise ValidationError(
            f"UpdatePath has {len(path.nodes)} nodes but the filtered direct path has {len(fdp)}")
    new_tree = tree.merge_update_path(sender, path.leaf_node,
                                      [n.encryption_key for n in path.nodes],
                                      path=fdp, hashes=parent_hashes)
    ctx = context_for(new_tree).serialize()
    copath = dict(zip(tree.direct_path(sender), tree.copath(sender), strict=True))
    lca = tm.common_ancestor(2 * sender, 2 * me)
    if lca not in copath:
        raise ValidationError("sender and receiver share no node on the sender's direct path")
    try:
        k = fdp.index(lca)
    except ValueError:
        raise ValidationError("common ancestor is not on the filtered direct path") from None
    resolution = tree.resolution(copath[lca], exclude)
    node = path.nodes[k]
    if len(node.encrypted_path_secret) != len(resolution):
        raise ValidationError(
            f"UpdatePathNode has {len(node.encrypted_path_secret)} ciphertexts for a "
            f"resolution of {len(resolution)} (§7.6)")
    for pos, r in enumerate(resolution):
        sk = private.keys.get(r)
        if sk is not None:
            ct = node.encrypted_path_secret[pos]
            break
    else:
        raise DecryptionError("no private key for any node in the copath resolution")
    path_secret = cs.decrypt_with_label(sk, b"UpdatePathNode", ctx, ct.kem_output, ct.ciphertext)
    replaced = set(tree.direct_path(sender))
    keys = {x: v for x, v in private.keys.items() if x not in replaced}
    ps = path_secret
    for i in range(k, len(fdp)):
        sk_i, pk_i = node_key_pair(cs, ps)
        if pk_i != path.nodes[i].encryption_key:
            raise ValidationError(
                f"derived public key for node {fdp[i]} does not match the UpdatePath (§7.5)")
        keys[fdp[i]] = sk_i
        ps = next_path_secret(cs, ps)
    return AppliedPath(new_tree, TreeKemPrivate(me, keys).prune(new_tree), ps, path_secret)


def private_from_path_secret(
    cs: CipherSuite, tree: RatchetTree, leaf_index: int, leaf_priv: bytes, node: int,
    path_secret: bytes,
) -> TreeKemPrivate:
    """A joiner's private state: its leaf key plus keys from ``node`` up to the
    root derived from the Welcome's path secret (§12.4.3.1)."""
    keys = {2 * leaf_index: leaf_priv}
    n = tree.n_leaves
    x = node
    ps = path_secret
    while True:
        if tree.nodes[x] is not None:
            sk, pk = node_key_pair(cs, ps)
            parent_node = tree.nodes[x]
            assert isinstance(parent_node, ParentNode)
            if pk != parent_node.encryption_key:
                raise ValidationError(
                    f"path secret does not produce the public key of node {x} (§12.4.3.1)")
            keys[x] = sk
            ps = next_path_secret(cs, ps)
        if x == tree.root:
            break
        x = tm.parent(x, n)
    return TreeKemPrivate(leaf_index, keys)
