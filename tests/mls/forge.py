"""A forging toolkit for tests: MLS messages that are valid at every outer layer
and wrong in exactly one place.

Forgeries are built with the real keys of a test group: a commit is signed with
the committer's signature key, MACed with the epoch's membership key (or
encrypted with the sender's ratchet), and carries the confirmation tag a
receiver would compute for exactly that commit if the check under test were
missing. So a rejection can only come from the check under test, and removing
the check makes the forged input go through (which the tests prove with
``accepted_without`` where it matters).

Nothing here is used by the library: it builds on its public structures and on
the same key-schedule functions a receiver runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import pytest

from mls import key_schedule as ks
from mls import private_message as pm
from mls.commit import Commit, HPKECiphertext, UpdatePath
from mls.crypto import CipherSuite, default_provider
from mls.errors import MLSError
from mls.extensions import Extension, ExtensionType, find_extension
from mls.framing import (
    AuthenticatedContent,
    ContentType,
    FramedContent,
    FramedContentAuthData,
    Sender,
    SenderType,
    WireFormat,
    encode_content,
)
from mls.group import Group, GroupConfig, KeyPackageBundle, Signer, create_key_package
from mls.group.config import config_now
from mls.group.identity import make_leaf_node
from mls.group_context import GroupContext
from mls.group_info import GroupInfo
from mls.key_package import KeyPackage
from mls.leaf_node import Capabilities, LeafNode, Lifetime
from mls.message import MLSMessage
from mls.nodes import ParentNode
from mls.private_message import PrivateMessage, SenderData
from mls.proposals import (
    Add,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    Proposal,
    ProposalOrRef,
    Remove,
    Update,
)
from mls.psk import PreSharedKeyID, PSKType, psk_secret
from mls.public_message import PublicMessage
from mls.ratchet_tree import RatchetTree
from mls.secret_tree import RatchetConfig, sender_data_key_nonce
from mls.transcript import confirmed_transcript_hash
from mls.treekem import create_update_path
from mls.welcome import GroupSecrets, Welcome, open_group_secrets, seal_group_secrets

P = default_provider()


# -- groups ------------------------------------------------------------------------------------
def make_group(n: int = 3, suite: int = 1, config: GroupConfig | None = None,
               extensions: Sequence[Extension] = (),
               capabilities: Capabilities | None = None) -> list[Group]:
    """``n`` members m/0..m/n-1 in one epoch, all with ``config``."""
    cs = CipherSuite(suite, P)
    now = config_now(config or GroupConfig())
    groups = [Group.create(P, suite, b"forge-group", Signer.generate(cs, b"m/0"),
                           extensions=extensions, config=config, capabilities=capabilities)]
    bundles = [create_key_package(cs, Signer.generate(cs, f"m/{i}".encode()), now=now,
                                  capabilities=capabilities) for i in range(1, n)]
    if bundles:
        out = groups[0].commit([Add(b.key_package) for b in bundles])
        groups[0].merge_pending_commit()
        assert out.welcome is not None
        groups += [join_from_welcome_(out.welcome, b, config) for b in bundles]
    return groups


def join_from_welcome_(welcome: bytes, bundle: KeyPackageBundle,
                       config: GroupConfig | None = None) -> Group:
    from mls.group import join_from_welcome

    return join_from_welcome(P, welcome, bundle, config=config)


def signer_of(g: Group) -> Signer:
    leaf = g.member(g.leaf_index)
    assert leaf is not None
    return Signer(leaf.credential, g.state.signature_priv, leaf.signature_key)


def key_package(cs: CipherSuite, identity: bytes = b"new/1", **kw: object) -> KeyPackageBundle:
    return create_key_package(cs, Signer.generate(cs, identity), **kw)  # type: ignore[arg-type]


# -- re-signing ----------------------------------------------------------------------------------
def resign_leaf(cs: CipherSuite, leaf: LeafNode, signature_priv: bytes,
                group_id: bytes | None = None, leaf_index: int | None = None,
                **changes: object) -> LeafNode:
    """``leaf`` with ``changes`` applied, signed again (a valid signature over wrong content)."""
    return replace(leaf, **changes).signed(cs, signature_priv, group_id,  # type: ignore[arg-type]
                                           leaf_index)


def resign_key_package(cs: CipherSuite, bundle: KeyPackageBundle,
                       leaf: Callable[[LeafNode], LeafNode] = lambda x: x,
                       **changes: object) -> KeyPackage:
    """The bundle's KeyPackage with its leaf changed by ``leaf`` (then re-signed)
    and ``changes`` applied, signed again with the bundle's key."""
    kp = bundle.key_package
    new_leaf = leaf(kp.leaf_node)
    if new_leaf is not kp.leaf_node:
        new_leaf = new_leaf.signed(cs, bundle.signature_priv)
    return replace(kp, leaf_node=new_leaf, **changes).signed(  # type: ignore[arg-type]
        cs, bundle.signature_priv)


# -- framing ---------------------------------------------------------------------------------
def framed(g: Group, content_type: ContentType, content: bytes | Proposal | Commit, *,
           sender: Sender | None = None, epoch: int | None = None,
           authenticated_data: bytes = b"") -> FramedContent:
    return FramedContent(g.group_id, g.epoch if epoch is None else epoch,
                         sender or Sender.member(g.leaf_index), authenticated_data, content_type,
                         content)


def sign(g: Group, wire: WireFormat, fc: FramedContent, *, signature_priv: bytes | None = None,
         context: GroupContext | None = None) -> AuthenticatedContent:
    """Sign as ``g`` would (the context is bound for member and new_member_commit senders)."""
    ctx = context or g.context
    bound = fc.sender.sender_type in (SenderType.MEMBER, SenderType.NEW_MEMBER_COMMIT)
    return AuthenticatedContent.sign(g.cipher_suite, wire, fc,
                                     signature_priv or g.state.signature_priv,
                                     ctx if bound else None)


def public(g: Group, ac: AuthenticatedContent, *, membership_key: bytes | None = None) -> bytes:
    """A PublicMessage with the membership tag of ``g``'s epoch (for member senders)."""
    key = membership_key or g.state.keys.membership_key
    member = ac.content.sender.sender_type == SenderType.MEMBER
    msg = PublicMessage.protect(g.cipher_suite, ac, key if member else None, g.context)
    return MLSMessage.wrap(msg).serialize()


def public_proposal(g: Group, proposal: Proposal, **kw: object) -> bytes:
    return public(g, sign(g, WireFormat.PUBLIC_MESSAGE,
                          framed(g, ContentType.PROPOSAL, proposal, **kw)))  # type: ignore[arg-type]


def proposal_ref(g: Group, message: bytes) -> bytes:
    """The ProposalRef of a PublicMessage proposal."""
    body = MLSMessage.deserialize(message).body
    assert isinstance(body, PublicMessage)
    return body.authenticated_content.proposal_ref(g.cipher_suite)


def private(g: Group, ac: AuthenticatedContent, *, leaf: int | None = None,
            generation: int | None = None, reuse_guard: bytes = b"\x01\x02\x03\x04",
            content_guard: bytes | None = None, padding: bytes = b"",
            sender_data_leaf: int | None = None) -> bytes:
    """A PrivateMessage from ``g``'s sending ratchet (a copy: ``g`` is unchanged).

    ``generation`` picks a later key of the ratchet; ``content_guard`` encrypts the
    content under a different reuse guard than the sender data announces;
    ``padding`` is appended as is (zeros are valid); ``sender_data_leaf`` names
    another leaf in the sender data than the one whose key encrypted it."""
    cs = g.cipher_suite
    st = g.state
    c = ac.content
    sender_leaf = c.sender.index if leaf is None else leaf
    handshake = c.content_type != ContentType.APPLICATION
    tree = st.secret_tree.copy()
    if generation is None:
        generation, key, nonce = tree.next_key(sender_leaf, handshake)
    else:
        tree.config = RatchetConfig(max_forward_distance=1 << 30, out_of_order_tolerance=0)
        key, nonce = tree.key_for(sender_leaf, handshake, generation)
    w = _content_writer(ac)
    ciphertext = cs.provider.aead_seal(
        cs.params.aead, key, pm._apply_reuse_guard(nonce, content_guard or reuse_guard),
        pm._content_aad(c.group_id, c.epoch, c.content_type, c.authenticated_data),
        w + padding)
    sd_key, sd_nonce = sender_data_key_nonce(cs, st.keys.sender_data_secret, ciphertext)
    sd = SenderData(sender_leaf if sender_data_leaf is None else sender_data_leaf, generation,
                    reuse_guard)
    encrypted_sender_data = cs.provider.aead_seal(
        cs.params.aead, sd_key, sd_nonce,
        pm._sender_data_aad(c.group_id, c.epoch, c.content_type), sd.serialize())
    msg = PrivateMessage(c.group_id, c.epoch, c.content_type, c.authenticated_data,
                         encrypted_sender_data, ciphertext)
    return MLSMessage.wrap(msg).serialize()


def _content_writer(ac: AuthenticatedContent) -> bytes:
    from mls.codec import Writer

    w = Writer()
    encode_content(w, ac.content.content_type, ac.content.content)
    ac.auth.encode_for(w, ac.content.content_type)
    return w.getvalue()


def application(g: Group, data: bytes = b"forged", **kw: object) -> bytes:
    """An application message from ``g``, encrypted with its ratchet (``g`` unchanged)."""
    ac = sign(g, WireFormat.PRIVATE_MESSAGE, framed(g, ContentType.APPLICATION, data))
    return private(g, ac, **kw)  # type: ignore[arg-type]


# -- commits ---------------------------------------------------------------------------------
@dataclass
class Forged:
    """A forged commit and what went into it."""

    message: bytes
    ac: AuthenticatedContent
    path: UpdatePath | None
    tree: RatchetTree  # the tree a receiver ends with (proposals and path applied)
    commit_secret: bytes
    added: list[int] = field(default_factory=list)


def apply_unchecked(tree: RatchetTree, extensions: tuple[Extension, ...],
                    entries: Sequence[tuple[Proposal, Sender]]
                    ) -> tuple[RatchetTree, tuple[Extension, ...], list[int]]:
    """Apply proposals in RFC 9420 §12.3 order without validating anything."""
    added: list[int] = []
    for p, _ in entries:
        if isinstance(p, GroupContextExtensions):
            extensions = p.extensions
    for p, s in entries:
        if isinstance(p, Update):
            tree = tree.update_leaf(s.index, p.leaf_node)
    for p, _ in entries:
        if isinstance(p, Remove) and tree.leaf(p.removed) is not None:
            tree = tree.remove_leaf(p.removed)
    for p, _ in entries:
        if isinstance(p, Add):
            tree, i = tree.add_leaf(p.key_package.leaf_node)
            added.append(i)
    return tree, extensions, added


def forge_commit(
    g: Group,
    proposals: Sequence[Proposal | bytes] = (),
    *,
    path: bool = True,
    tamper_path: Callable[[UpdatePath, RatchetTree], UpdatePath] | None = None,
    sender: Sender | None = None,
    signature_priv: bytes | None = None,
    wire: WireFormat = WireFormat.PUBLIC_MESSAGE,
    confirmation_tag: bytes | None = None,
    epoch: int | None = None,
    psks: dict[bytes, bytes] | None = None,
    external_init_secret: bytes | None = None,
    joiner: Signer | None = None,
    leaf_template: LeafNode | None = None,
    reencrypt: bool = True,
) -> Forged:
    """A commit by ``g`` (or, with ``joiner``, an external commit) over
    ``proposals`` (by value, or ``bytes`` ProposalRefs of ``g``'s pending
    proposals), with an UpdatePath unless ``path`` is False. Nothing is validated;
    the confirmation tag is the one a receiver computes for these exact bytes.
    ``signature_priv`` signs the FramedContent only (the path's leaf keeps the
    committer's key). After ``tamper_path`` the path secrets are encrypted again
    to the context of the tampered tree (unless ``reencrypt`` is False, for
    tests of the ciphertexts themselves)."""
    cs = g.cipher_suite
    st = g.state
    ctx = st.context
    external = joiner is not None
    committer = sender or (Sender(SenderType.NEW_MEMBER_COMMIT) if external
                           else Sender.member(g.leaf_index))
    pending = {pp.ref: pp for pp in st.proposals}
    entries: list[tuple[Proposal, Sender]] = []
    pors: list[ProposalOrRef] = []
    for item in proposals:
        if isinstance(item, bytes):
            pors.append(ProposalOrRef(reference=item))
            if item in pending:
                entries.append((pending[item].proposal, pending[item].sender))
        else:
            pors.append(ProposalOrRef(proposal=item))
            entries.append((item, committer))
    tree, exts, added = apply_unchecked(st.tree, ctx.extensions, entries)
    commit_secret = bytes(cs.hash_length)
    update_path = None
    sig_priv = joiner.signature_priv if joiner else st.signature_priv
    if path:
        if external:
            assert joiner is not None
            _, enc_pub = cs.generate_hpke_key_pair()
            template = leaf_template or make_leaf_node(
                cs, joiner, enc_pub, lifetime=Lifetime.starting(config_now(g.config)))
            tree, me = tree.add_leaf(template)
        else:
            me = g.leaf_index
            template = leaf_template or tree.leaf(me)  # type: ignore[assignment]
            assert template is not None

        def context_for(t: RatchetTree) -> GroupContext:
            return replace(ctx, epoch=ctx.epoch + 1, tree_hash=t.tree_hash(), extensions=exts)

        created = create_update_path(cs, tree, me, template, sig_priv, ctx.group_id, context_for,
                                     frozenset(added))
        update_path = created.update_path
        commit_secret = created.commit_secret
        before = tree
        if tamper_path is not None:
            update_path = tamper_path(update_path, tree)
        try:
            tree = tree.merge_update_path(me, update_path.leaf_node,
                                          [n.encryption_key for n in update_path.nodes])
        except MLSError:
            tree = created.tree  # a malformed path: the tag no longer matters
        else:
            if tamper_path is not None and reencrypt:
                update_path = _reencrypt(cs, before, me, update_path, created.path_secrets,
                                         context_for(tree).serialize(), frozenset(added))
    commit = Commit(tuple(pors), update_path)
    fc = FramedContent(ctx.group_id, ctx.epoch if epoch is None else epoch, committer, b"",
                       ContentType.COMMIT, commit)
    ac = sign(g, wire, fc, signature_priv=signature_priv or sig_priv)
    if confirmation_tag is None:
        confirmation_tag = _tag(g, ac, tree, exts, commit_secret, entries, psks,
                                external_init_secret)
    ac = replace(ac, auth=FramedContentAuthData(ac.auth.signature, confirmation_tag))
    message = public(g, ac) if wire == WireFormat.PUBLIC_MESSAGE else private(g, ac)
    return Forged(message, ac, update_path, tree, commit_secret, added)


def _reencrypt(cs: CipherSuite, tree: RatchetTree, sender: int, path: UpdatePath,
               secrets: dict[int, bytes], context: bytes, exclude: frozenset[int]) -> UpdatePath:
    """Encrypt the path secrets again, as the committer would for this ``context``."""
    copath = dict(zip(tree.direct_path(sender), tree.copath(sender), strict=True))
    nodes = []
    for x, node in zip(tree.filtered_direct_path(sender), path.nodes, strict=True):
        cts = []
        for r in tree.resolution(copath[x], exclude):
            target = tree.nodes[r]
            assert target is not None
            kem_output, ct = cs.encrypt_with_label(target.encryption_key, b"UpdatePathNode",
                                                   context, secrets[x])
            cts.append(HPKECiphertext(kem_output, ct))
        nodes.append(replace(node, encrypted_path_secret=tuple(cts)))
    return replace(path, nodes=tuple(nodes))


def _tag(g: Group, ac: AuthenticatedContent, tree: RatchetTree, exts: tuple[Extension, ...],
         commit_secret: bytes, entries: Sequence[tuple[Proposal, Sender]],
         psks: dict[bytes, bytes] | None, external_init_secret: bytes | None) -> bytes:
    cs = g.cipher_suite
    st = g.state
    confirmed = confirmed_transcript_hash(cs, st.interim_transcript_hash, ac)
    new_ctx = GroupContext(st.context.version, cs.id, st.context.group_id, st.epoch + 1,
                           tree.tree_hash(), confirmed, exts)
    values: list[tuple[PreSharedKeyID, bytes]] = []
    for p, _ in entries:
        if isinstance(p, PreSharedKey):
            pid = p.psk
            if pid.psktype == PSKType.EXTERNAL:
                v = (psks or g.config.psks).get(pid.psk_id, bytes(cs.hash_length))
            else:
                v = dict(st.resumption_psks).get(pid.psk_epoch, bytes(cs.hash_length))
                if pid.psk_epoch == st.epoch:
                    v = st.keys.resumption_psk
            values.append((pid, v))
    init_secret = st.keys.init_secret if external_init_secret is None else external_init_secret
    secrets = ks.derive_epoch(cs, init_secret, commit_secret, psk_secret(cs, values), new_ctx)
    return cs.mac(secrets.confirmation_key, confirmed)


def external_init(g: Group) -> tuple[ExternalInit, bytes]:
    """An ExternalInit for ``g``'s epoch and the init secret it yields."""
    cs = g.cipher_suite
    _, pub = ks.external_key_pair(cs, g.state.keys.external_secret)
    kem_output, hctx = cs.hpke.setup_base_s(pub, b"")
    return ExternalInit(kem_output), hctx.export(b"MLS 1.0 external init secret", cs.hash_length)


def forge_external_commit(g: Group, joiner: Signer, extra: Sequence[Proposal] = (),
                          **kw: object) -> Forged:
    """An external commit into ``g``'s epoch by ``joiner`` (valid unless ``extra`` or
    ``kw`` make it otherwise)."""
    ei, init_secret = external_init(g)
    return forge_commit(g, [ei, *extra], joiner=joiner, external_init_secret=init_secret,
                        **kw)  # type: ignore[arg-type]


# -- Welcome and GroupInfo ---------------------------------------------------------------------
def reforge_welcome(
    welcome: bytes, bundle: KeyPackageBundle, signer_priv: bytes, *,
    group_info: Callable[[GroupInfo], GroupInfo] = lambda gi: gi,
    tree: Callable[[RatchetTree], RatchetTree] | None = None,
    secrets: Callable[[GroupSecrets], GroupSecrets] = lambda s: s,
    fix_tree_hash: bool = True, fix_tag: bool = True, resign: bool = True,
    psks: Sequence[tuple[PreSharedKeyID, bytes]] = (),
) -> bytes:
    """Decrypt a genuine Welcome (without PSKs) for ``bundle`` and rebuild it after
    ``tree``, ``group_info`` and ``secrets`` changed its content: the tree hash in the
    GroupContext, the confirmation tag and the GroupInfo signature are made
    valid again unless told otherwise, and everything is re-encrypted, under the
    welcome secret of ``psks`` (the ids ``secrets`` now names, with their values)."""
    msg = MLSMessage.deserialize(welcome)
    w = msg.body
    assert isinstance(w, Welcome)
    cs = CipherSuite(w.cipher_suite, P)
    kp = bundle.key_package
    entry = w.find_secrets(kp.ref(cs))
    assert entry is not None
    gs = open_group_secrets(cs, bundle.init_priv, w.encrypted_group_info,
                            entry.encrypted_group_secrets)
    psk = psk_secret(cs, [])
    key, nonce = ks.welcome_key_nonce(cs, ks.welcome_secret(cs, gs.joiner_secret, psk))
    gi = GroupInfo.deserialize(cs.provider.aead_open(cs.params.aead, key, nonce, b"",
                                                     w.encrypted_group_info))
    if tree is not None:
        data = find_extension(gi.extensions, ExtensionType.RATCHET_TREE)
        assert data is not None
        new_tree = tree(RatchetTree.decode(cs, data))
        exts = tuple(Extension(ExtensionType.RATCHET_TREE, new_tree.serialize())
                     if e.extension_type == ExtensionType.RATCHET_TREE else e
                     for e in gi.extensions)
        gi = replace(gi, extensions=exts)
        if fix_tree_hash:
            gi = replace(gi, group_context=replace(gi.group_context,
                                                   tree_hash=new_tree.tree_hash()))
    gi = group_info(gi)
    new_gs = secrets(gs)
    psk = psk_secret(cs, list(psks))
    if fix_tag:
        epoch = ks.from_joiner(cs, new_gs.joiner_secret, psk, gi.group_context)
        gi = replace(gi, confirmation_tag=cs.mac(epoch.confirmation_key,
                                                 gi.group_context.confirmed_transcript_hash))
    if resign:
        gi = gi.signed(cs, signer_priv)
    key, nonce = ks.welcome_key_nonce(cs, ks.welcome_secret(cs, new_gs.joiner_secret, psk))
    egi = cs.provider.aead_seal(cs.params.aead, key, nonce, b"", gi.serialize())
    sealed = seal_group_secrets(cs, kp.init_key, egi, new_gs)
    out = Welcome(w.cipher_suite, (replace(entry, encrypted_group_secrets=sealed),), egi)
    return MLSMessage.wrap(out).serialize()


def reforge_group_info(g: Group, change: Callable[[GroupInfo], GroupInfo], *,
                       tree: Callable[[RatchetTree], RatchetTree] | None = None,
                       fix_tree_hash: bool = True, resign: bool = True) -> bytes:
    """``g``'s GroupInfo (with tree and external_pub) changed, signed again by ``g``."""
    cs = g.cipher_suite
    gi = MLSMessage.deserialize(g.group_info()).body
    assert isinstance(gi, GroupInfo)
    if tree is not None:
        new_tree = tree(g.tree)
        gi = replace(gi, extensions=tuple(
            Extension(ExtensionType.RATCHET_TREE, new_tree.serialize())
            if e.extension_type == ExtensionType.RATCHET_TREE else e for e in gi.extensions))
        if fix_tree_hash:
            gi = replace(gi, group_context=replace(gi.group_context,
                                                   tree_hash=new_tree.tree_hash()))
    gi = change(gi)
    if resign:
        gi = gi.signed(cs, g.state.signature_priv)
    return MLSMessage.wrap(gi).serialize()


def repath(g: Group, tree: RatchetTree, sender: int, path: UpdatePath,
           keys: Sequence[bytes] | None = None, **leaf_changes: object) -> UpdatePath:
    """``path`` with node public keys ``keys`` (and leaf changes), its leaf's
    parent_hash recomputed for them and signed again by ``g``: consistent in
    every respect but the keys themselves."""
    cs = g.cipher_suite
    keys = [n.encryption_key for n in path.nodes] if keys is None else list(keys)
    nodes = tuple(replace(n, encryption_key=k) for n, k in zip(path.nodes, keys, strict=True))
    _, ph = tree.path_parent_hashes(sender, tree.filtered_direct_path(sender), keys)
    changes: dict[str, object] = {"parent_hash": ph, **leaf_changes}
    leaf = resign_leaf(cs, path.leaf_node, g.state.signature_priv, g.group_id, sender,
                       **changes)
    return UpdatePath(leaf, nodes)


def set_node(tree: RatchetTree, index: int, node: LeafNode | ParentNode | None) -> RatchetTree:
    nodes = list(tree.nodes)
    nodes[index] = node
    return RatchetTree(tree.cs, nodes)


# -- the assertion every forged-input test makes -----------------------------------------------
def assert_rejected(
    group: Group, message: bytes, error: type[MLSError], section: str,
    match: str | None = None, *, then: Callable[[], bytes] | None = None,
) -> MLSError:
    """``group.process(message)`` raises exactly ``error`` citing RFC 9420
    ``section``, leaves ``export_state()`` byte-identical, and the group still
    processes the next valid message (``then()``, made after the forgery)."""
    before = group.export_state()
    with pytest.raises(MLSError) as info:
        group.process(message)
    err = info.value
    assert type(err) is error, f"expected {error.__name__}, got {type(err).__name__}: {err}"
    assert section in str(err), f"error does not cite {section}: {err}"
    if match is not None:
        assert re.search(match, str(err)), f"{match!r} not in {err}"
    assert group.export_state() == before, "a rejected message changed the group state"
    if then is not None:
        group.process(then())
    return err


def assert_join_rejected(join: Callable[[], object], error: type[MLSError], section: str,
                         match: str | None = None) -> MLSError:
    """A join attempt raises exactly ``error`` citing ``section``."""
    with pytest.raises(MLSError) as info:
        join()
    err = info.value
    assert type(err) is error, f"expected {error.__name__}, got {type(err).__name__}: {err}"
    assert section in str(err), f"error does not cite {section}: {err}"
    if match is not None:
        assert re.search(match, str(err)), f"{match!r} not in {err}"
    return err


def genuine_commit(g: Group) -> Callable[[], bytes]:
    """A callable giving a genuine empty commit of ``g`` (merged on creation)."""
    def make() -> bytes:
        out = g.commit()
        g.merge_pending_commit()
        return out.commit
    return make


def genuine_app(g: Group, text: bytes = b"genuine") -> Callable[[], bytes]:
    return lambda: g.encrypt(text)
