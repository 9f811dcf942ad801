"""Joining a group: from a Welcome (RFC 9420 §12.4.3.1) or by an external
commit (§12.4.3.2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from .. import key_schedule as ks
from .. import tree_math as tm
from ..commit import Commit
from ..crypto import CipherSuite, CryptoProvider
from ..errors import (
    DecodeError,
    SignatureError,
    ValidationError,
)
from ..extensions import ExtensionType, ExternalPub, check_unique_extensions, find_extension
from ..framing import (
    AuthenticatedContent,
    ContentType,
    FramedContent,
    FramedContentAuthData,
    Sender,
    SenderType,
    WireFormat,
)
from ..group_info import GroupInfo
from ..key_package import KeyPackage
from ..leaf_node import LeafNodeSource, Lifetime
from ..message import MLSMessage
from ..proposals import ExternalInit, PreSharedKey, Proposal, ProposalOrRef, Remove
from ..psk import PreSharedKeyID, PSKType, ResumptionPSKUsage, psk_secret
from ..public_message import PublicMessage
from ..ratchet_tree import RatchetTree
from ..secret_tree import SecretTree
from ..signature_key import check_signature_key
from ..transcript import check_confirmation_tag, interim_transcript_hash
from ..treekem import TreeKemPrivate, create_update_path, private_from_path_secret
from ..welcome import GroupSecrets, Welcome, open_group_secrets
from .base import read_ratchet_tree_ext
from .config import GroupConfig, config_now
from .epoch import ProposalEntry, apply_proposals, epoch_keys, next_epoch, provisional_context
from .group import Group
from .identity import KeyPackageBundle, Signer, make_leaf_node
from .state import GroupState, Status
from .validation import check_leaf_node, check_proposal_list, check_tree_on_join


def _psk_values(
    cs: CipherSuite, ids: Sequence[PreSharedKeyID], config: GroupConfig,
    resumption: Mapping[tuple[bytes, int], bytes],
) -> bytes:
    values = []
    for pid in ids:
        if pid.psktype == PSKType.EXTERNAL:
            v = config.psks.get(pid.psk_id)
        else:
            v = resumption.get((pid.psk_group_id, pid.psk_epoch))
        if v is None:
            raise ValidationError("the Welcome needs a PSK this client does not have (§12.4.3.1)")
        values.append((pid, v))
    return psk_secret(cs, values)


def check_group_info_signature(cs: CipherSuite, gi: GroupInfo, signature_key: bytes) -> None:
    """The GroupInfo is signed by ``signature_key`` (§12.4.3.1)."""
    if not gi.verify(cs, signature_key):
        raise SignatureError("GroupInfo signature is invalid (§12.4.3.1)")


def verified_tree(cs: CipherSuite, gi: GroupInfo, ratchet_tree: bytes | None,
                  config: GroupConfig) -> RatchetTree:
    """The tree a joiner gets with a GroupInfo, after checking the GroupInfo's
    signature by its signer's leaf and the tree itself (§12.4.3, §12.4.3.1)."""
    check_unique_extensions(gi.extensions, "GroupInfo")
    check_unique_extensions(gi.group_context.extensions, "GroupContext")
    tree = read_ratchet_tree_ext(cs, gi, ratchet_tree)
    signer_leaf = tree.leaf(gi.signer)
    if signer_leaf is None:
        raise ValidationError("GroupInfo signer is not a member (§12.4.3.1)")
    # The signer's key encoding first, so a bad key is reported as such (§5.1.1).
    check_signature_key(cs, signer_leaf.signature_key)
    check_group_info_signature(cs, gi, signer_leaf.signature_key)
    ctx = gi.group_context
    check_tree_on_join(cs, tree, ctx.group_id, ctx.tree_hash, ctx.extensions, config)
    return tree


@dataclass(frozen=True)
class OpenedWelcome:
    """A Welcome's contents for one KeyPackage, decrypted (§12.4.3.1)."""

    cs: CipherSuite
    secrets: GroupSecrets
    psk_secret: bytes
    group_info: GroupInfo


def open_welcome(
    cs: CipherSuite, w: Welcome, kp: KeyPackage, init_priv: bytes, config: GroupConfig,
    resumption: Mapping[tuple[bytes, int], bytes],
) -> OpenedWelcome:
    """Find and decrypt our GroupSecrets, check the PSKs, decrypt the GroupInfo
    (§12.4.3.1); signature, tree and confirmation tag are checked afterwards."""
    if w.cipher_suite != kp.cipher_suite or cs.id != w.cipher_suite:
        raise ValidationError("Welcome cipher suite differs from the KeyPackage's (§12.4.3.1)")
    entry = w.find_secrets(kp.ref(cs))
    if entry is None:
        raise ValidationError("the Welcome has no secrets for this KeyPackage (§12.4.3.1)")
    secrets = open_group_secrets(cs, init_priv, w.encrypted_group_info,
                                 entry.encrypted_group_secrets)
    special = [pid for pid in secrets.psks if pid.psktype == PSKType.RESUMPTION
               and pid.usage != ResumptionPSKUsage.APPLICATION]
    if len(special) > 1:
        raise ValidationError("a Welcome may carry at most one reinit/branch PSK (§12.4.3.1)")
    psk = _psk_values(cs, secrets.psks, config, resumption)
    key, nonce = ks.welcome_key_nonce(cs, ks.welcome_secret(cs, secrets.joiner_secret, psk))
    gi_bytes = cs.provider.aead_open(cs.params.aead, key, nonce, b"", w.encrypted_group_info)
    try:
        gi = GroupInfo.deserialize(gi_bytes)
    except DecodeError as e:
        raise DecodeError(f"malformed GroupInfo in Welcome: {e}") from None
    ctx = gi.group_context
    if ctx.cipher_suite != cs.id or ctx.version != kp.version:
        raise ValidationError("GroupInfo version or cipher suite mismatch (§12.4.3.1)")
    if special and ctx.epoch != 1:
        raise ValidationError("a reinit/branch PSK is only valid when joining epoch 1 of the "
                              "new group (§12.4.3.1)")
    return OpenedWelcome(cs, secrets, psk, gi)


def welcome_epoch(opened: OpenedWelcome) -> ks.EpochSecrets:
    """The epoch's secrets from the joiner secret, after checking the
    GroupInfo's confirmation tag with them (§12.4.3.1)."""
    cs, gi = opened.cs, opened.group_info
    epoch = ks.from_joiner(cs, opened.secrets.joiner_secret, opened.psk_secret, gi.group_context)
    check_confirmation_tag(cs, epoch.confirmation_key, gi.group_context.confirmed_transcript_hash,
                           gi.confirmation_tag, "GroupInfo confirmation_tag (§12.4.3.1)")
    return epoch


def join_from_welcome(
    provider: CryptoProvider,
    welcome: bytes | MLSMessage,
    bundle: KeyPackageBundle,
    *,
    ratchet_tree: bytes | None = None,
    config: GroupConfig | None = None,
    resumption_psks: Mapping[tuple[bytes, int], bytes] | None = None,
) -> Group:
    """Join with a Welcome addressed to ``bundle``'s KeyPackage (§12.4.3.1)."""
    config = config or GroupConfig()
    msg = welcome if isinstance(welcome, MLSMessage) else MLSMessage.deserialize(welcome)
    if not isinstance(msg.body, Welcome):
        raise ValidationError(f"expected a Welcome, got {msg.wire_format.name}")
    kp = bundle.key_package
    # open_welcome checks that the Welcome's suite is the KeyPackage's (§12.4.3.1).
    cs = CipherSuite(kp.cipher_suite, provider)
    opened = open_welcome(cs, msg.body, kp, bundle.init_priv, config,
                          {**config.resumption_psks, **(resumption_psks or {})})
    secrets, gi = opened.secrets, opened.group_info
    ctx = gi.group_context
    tree = verified_tree(cs, gi, ratchet_tree, config)
    mine = kp.leaf_node
    # The encryption key first: a cheap test that fails for every other leaf
    # (the tree has no duplicate keys) before the full comparison.
    key, nodes = mine.encryption_key, tree.nodes
    my_leaf = next((x >> 1 for x in range(0, len(nodes), 2)
                    if (node := nodes[x]) is not None and node.encryption_key == key
                    and node == mine), None)
    if my_leaf is None:
        raise ValidationError("our KeyPackage's leaf is not in the tree (§12.4.3.1)")
    if secrets.path_secret is not None:
        lca = tm.common_ancestor(2 * my_leaf, 2 * gi.signer)
        private = private_from_path_secret(cs, tree, my_leaf, bundle.encryption_priv, lca,
                                           secrets.path_secret)
    else:
        private = TreeKemPrivate(my_leaf, {2 * my_leaf: bundle.encryption_priv})
    epoch = welcome_epoch(opened)
    state = GroupState(
        cs=cs, context=ctx, tree=tree, private=private, signature_priv=bundle.signature_priv,
        interim_transcript_hash=interim_transcript_hash(cs, ctx.confirmed_transcript_hash,
                                                        gi.confirmation_tag),
        keys=epoch_keys(epoch),
        secret_tree=SecretTree(cs, epoch.encryption_secret, tree.n_leaves, config.ratchet),
        confirmation_tag=gi.confirmation_tag)
    return Group(state, config)


@dataclass(frozen=True)
class ExternalJoin:
    """The group as it will be once ``commit`` is accepted, and the commit."""

    group: Group
    commit: bytes


def join_external(
    provider: CryptoProvider,
    group_info: bytes | MLSMessage,
    signer: Signer,
    *,
    ratchet_tree: bytes | None = None,
    remove_prior: int | None = None,
    config: GroupConfig | None = None,
    authenticated_data: bytes = b"",
    psks: Sequence[PreSharedKeyID] = (),
) -> ExternalJoin:
    """Join by external commit from a GroupInfo with ``external_pub`` (§12.4.3.2).

    ``remove_prior`` removes our old leaf when resynchronising; ``psks`` are
    PreSharedKey proposals to include, their values in ``config.psks``. If the
    delivery service rejects the commit, drop the returned group and retry
    with a fresh GroupInfo.
    """
    config = config or GroupConfig()
    msg = group_info if isinstance(group_info, MLSMessage) else MLSMessage.deserialize(group_info)
    if not isinstance(msg.body, GroupInfo):
        raise ValidationError(f"expected a GroupInfo, got {msg.wire_format.name}")
    gi = msg.body
    ctx = gi.group_context
    cs = CipherSuite(ctx.cipher_suite, provider)
    tree = verified_tree(cs, gi, ratchet_tree, config)
    ext = find_extension(gi.extensions, ExtensionType.EXTERNAL_PUB)
    if ext is None:
        raise ValidationError("GroupInfo has no external_pub extension (§12.4.3.2)")
    try:
        external_pub = ExternalPub.deserialize(ext).external_pub
    except DecodeError as e:
        raise DecodeError(f"malformed external_pub extension, not an ExternalPub struct "
                          f"(§12.4.3.2): {e}") from None
    # A bare key of the right size rarely parses as a struct; when it does, the key
    # inside has the wrong size: name the cause instead of failing in the KEM.
    cs.check_hpke_public_key(external_pub, "the external_pub of an ExternalPub (§12.4.3.2)")
    kem_output, hctx = cs.hpke.setup_base_s(external_pub, b"")
    init_secret = hctx.export(b"MLS 1.0 external init secret", cs.hash_length)
    # A stand-in for "the current epoch" as far as the joiner can know it.
    base = GroupState(
        cs=cs, context=ctx, tree=tree, private=TreeKemPrivate(0, {}),
        signature_priv=signer.signature_priv,
        interim_transcript_hash=interim_transcript_hash(cs, ctx.confirmed_transcript_hash,
                                                        gi.confirmation_tag),
        keys=epoch_keys(ks.from_joiner(cs, bytes(cs.hash_length), bytes(cs.hash_length), ctx)),
        secret_tree=SecretTree(cs, bytes(cs.hash_length), tree.n_leaves),
        confirmation_tag=gi.confirmation_tag)
    committer = Sender(SenderType.NEW_MEMBER_COMMIT)
    proposals: list[Proposal] = [ExternalInit(kem_output)]
    if remove_prior is not None:
        proposals.append(Remove(remove_prior))
    proposals.extend(PreSharedKey(pid) for pid in psks)
    entries = [ProposalEntry(p, committer, None) for p in proposals]
    check_proposal_list(cs, [(p, committer) for p in proposals], committer, tree,
                        ctx.extensions, config, ctx.epoch, [], signer.credential,
                        group_id=ctx.group_id)
    prov = apply_proposals(base, entries, config)
    enc_priv, enc_pub = cs.generate_hpke_key_pair()
    template = make_leaf_node(cs, signer, enc_pub,
                              lifetime=Lifetime.starting(config_now(config), config.lifetime))
    t2, my_leaf = prov.tree.add_leaf(template)
    check_leaf_node(cs, template, LeafNodeSource.KEY_PACKAGE, prov.tree, prov.extensions, config,
                    group_id=None, leaf_index=None, check_signature=False)
    prov = replace(prov, tree=t2)
    base = replace(base, private=TreeKemPrivate(my_leaf, {2 * my_leaf: enc_priv}))

    def context_for(t: RatchetTree) -> object:
        return provisional_context(base, t, prov.extensions)

    created = create_update_path(cs, t2, my_leaf, template, signer.signature_priv,
                                 ctx.group_id, context_for)  # type: ignore[arg-type]
    commit = Commit(tuple(ProposalOrRef(proposal=p) for p in proposals), created.update_path)
    framed = FramedContent(ctx.group_id, ctx.epoch, committer, authenticated_data,
                           ContentType.COMMIT, commit)
    ac = AuthenticatedContent.sign(cs, WireFormat.PUBLIC_MESSAGE, framed, signer.signature_priv,
                                   ctx)
    nxt = next_epoch(base, prov, ac, created.tree, created.private, created.commit_secret,
                     init_secret, config)
    ac = replace(ac, auth=FramedContentAuthData(ac.auth.signature, nxt.confirmation_tag))
    message = MLSMessage.wrap(PublicMessage.protect(cs, ac, None, ctx)).serialize()
    # With remove_prior our new leaf may take the slot of the leaf it removes,
    # which next_epoch would read as our own removal: the joiner is active.
    state = replace(nxt.state, past_epochs=(), resumption_psks=(),
                    last_own_commit=cs.hash(message), status=Status.ACTIVE)
    return ExternalJoin(Group(state, config), message)
