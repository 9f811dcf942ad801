"""Moving a group from one epoch to the next (RFC 9420 §12.3, §12.4).

Shared by the committer and by every receiver: applying a proposal list to a
provisional tree and context, and deriving the next epoch's state from the
commit's AuthenticatedContent. Functions here are pure: they build new
values and never touch the state they are given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .. import key_schedule as ks
from ..crypto import CipherSuite
from ..errors import ValidationError
from ..extensions import Extension
from ..framing import AuthenticatedContent, Sender
from ..group_context import GroupContext
from ..key_package import KeyPackage
from ..leaf_node import LeafNode, LeafNodeSource
from ..proposals import (
    Add,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    Proposal,
    ReInit,
    Remove,
    Update,
)
from ..psk import PreSharedKeyID, PSKType, ResumptionPSKUsage, psk_secret
from ..ratchet_tree import RatchetTree
from ..secret_tree import SecretTree
from ..transcript import confirmed_transcript_hash, interim_transcript_hash
from ..treekem import TreeKemPrivate
from .config import GroupConfig
from .state import EpochKeys, GroupState, PastEpoch, Status
from .validation import MemberIndex, check_group_extensions, check_leaf_node

# Proposal types whose presence requires an UpdatePath (§12.4).
_PATH_REQUIRED = (Update, Remove, ExternalInit, GroupContextExtensions)


@dataclass(frozen=True)
class ProposalEntry:
    proposal: Proposal
    sender: Sender
    ref: bytes | None  # set when included by reference


@dataclass
class Provisional:
    """The tree and context extensions after a commit's proposals (§12.3)."""

    tree: RatchetTree
    extensions: tuple[Extension, ...]
    added: list[tuple[int, KeyPackage]] = field(default_factory=list)
    removed: list[tuple[int, LeafNode]] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    psk_ids: list[PreSharedKeyID] = field(default_factory=list)
    reinit: ReInit | None = None
    external_init: ExternalInit | None = None
    own_update_priv: bytes | None = None


def path_required(entries: Sequence[ProposalEntry]) -> bool:
    """An empty commit, or one with Update/Remove/ExternalInit/GCE needs a path."""
    return not entries or any(isinstance(e.proposal, _PATH_REQUIRED) for e in entries)


def apply_proposals(
    st: GroupState, entries: Sequence[ProposalEntry], config: GroupConfig
) -> Provisional:
    """Apply proposals in the order of §12.3: GroupContextExtensions, Update,
    Remove, Add, then collect PSKs, ReInit and ExternalInit. The list must have
    passed :func:`~mls.group.validation.check_proposal_list` first."""
    cs = st.cs
    tree = st.tree
    prov = Provisional(tree, st.context.extensions)
    for e in entries:
        if isinstance(e.proposal, GroupContextExtensions):
            prov.extensions = e.proposal.extensions
    for e in entries:
        p = e.proposal
        if not isinstance(p, Update):
            continue
        s = e.sender.index
        old = tree.leaf(s)
        if old is None:
            raise ValidationError(f"Update from blank leaf {s} (§12.1.2)")
        check_leaf_node(cs, p.leaf_node, LeafNodeSource.UPDATE, tree, prov.extensions, config,
                        group_id=st.context.group_id, leaf_index=s, replacing=s)
        if p.leaf_node.encryption_key == old.encryption_key:
            raise ValidationError("Update must change the leaf encryption_key (§12.1.2)")
        tree = tree.update_leaf(s, p.leaf_node)
        prov.updated.append(s)
        if s == st.leaf_index:
            priv = dict(st.update_keys).get(e.ref or b"")
            if priv is None:
                raise ValidationError("commit applies an Update of ours that we did not send")
            prov.own_update_priv = priv
    for e in entries:
        p = e.proposal
        if isinstance(p, Remove):
            old = tree.leaf(p.removed)
            if old is None:
                raise ValidationError(f"Remove targets blank leaf {p.removed} (§12.1.3)")
            prov.removed.append((p.removed, old))
            tree = tree.remove_leaf(p.removed)
    adds = [e.proposal for e in entries if isinstance(e.proposal, Add)]
    if len(adds) == 1:  # one Add: a walk over the members is cheapest
        kp = adds[0].key_package
        check_leaf_node(cs, kp.leaf_node, LeafNodeSource.KEY_PACKAGE, tree, prov.extensions,
                        config, group_id=None, leaf_index=None, check_signature=False)
        tree, index = tree.add_leaf(kp.leaf_node)
        prov.added.append((index, kp))
    elif adds:
        # check_proposal_list already verified the KeyPackages and their leaves'
        # signatures; here each leaf is checked against the group it joins,
        # members added by earlier Adds included, through an index of the
        # members; the leaves then go into the tree in one edit.
        members = MemberIndex(tree)
        indices: list[int] = []
        for i, p in enumerate(adds):
            leaf = p.key_package.leaf_node
            if not members.fits(leaf):
                # About to fail: give the walk (which names the member at
                # fault) the tree with the earlier Adds in it.
                earlier = [a.key_package.leaf_node for a in adds[len(indices):i]]
                tree, placed = tree.add_leaves(earlier)
                indices += placed
            check_leaf_node(cs, leaf, LeafNodeSource.KEY_PACKAGE, tree, prov.extensions,
                            config, group_id=None, leaf_index=None, check_signature=False,
                            members=members)
            members.add(leaf)
        tree, placed = tree.add_leaves([a.key_package.leaf_node for a in adds[len(indices):]])
        indices += placed
        prov.added.extend((index, p.key_package) for index, p in zip(indices, adds, strict=True))
    for e in entries:
        p = e.proposal
        if isinstance(p, PreSharedKey):
            prov.psk_ids.append(p.psk)
        elif isinstance(p, ReInit):
            prov.reinit = p
        elif isinstance(p, ExternalInit):
            prov.external_init = p
    if prov.extensions != st.context.extensions:
        check_group_extensions(cs, prov.extensions, tree)
    prov.tree = tree
    return prov


def resolve_psks(st: GroupState, ids: Sequence[PreSharedKeyID], config: GroupConfig) -> bytes:
    """psk_secret for the PSKs of a commit (§8.4)."""
    values = []
    past = dict(st.resumption_psks)
    for pid in ids:
        if pid.psktype == PSKType.EXTERNAL:
            value = config.psks.get(pid.psk_id)
        elif (pid.psk_group_id != st.context.group_id
              or pid.usage != ResumptionPSKUsage.APPLICATION):
            # A reinit or branch PSK always comes from the previous group, which
            # may have had the same group_id (§11.2).
            value = config.resumption_psks.get((pid.psk_group_id, pid.psk_epoch))
        elif pid.psk_epoch == st.epoch:
            value = st.keys.resumption_psk
        else:
            value = past.get(pid.psk_epoch)
        if value is None:
            raise ValidationError("a PSK of the commit is not available (§8.4)")
        values.append((pid, value))
    return psk_secret(st.cs, values)


def provisional_context(st: GroupState, tree: RatchetTree, extensions: tuple[Extension, ...]
                        ) -> GroupContext:
    """The context UpdatePath secrets are encrypted under (§12.4.2): next
    epoch, new tree hash, old confirmed transcript hash, new extensions."""
    c = st.context
    return GroupContext(c.version, c.cipher_suite, c.group_id, c.epoch + 1, tree.tree_hash(),
                        c.confirmed_transcript_hash, extensions)


@dataclass(frozen=True)
class NextEpoch:
    state: GroupState
    secrets: ks.EpochSecrets
    confirmation_tag: bytes


def next_epoch(
    st: GroupState,
    prov: Provisional,
    ac: AuthenticatedContent,
    tree: RatchetTree,
    private: TreeKemPrivate,
    commit_secret: bytes,
    init_secret: bytes,
    config: GroupConfig,
) -> NextEpoch:
    """Transcript hashes, key schedule and the next GroupState (§8, §8.2)."""
    cs: CipherSuite = st.cs
    confirmed = confirmed_transcript_hash(cs, st.interim_transcript_hash, ac)
    ctx = GroupContext(st.context.version, cs.id, st.context.group_id, st.epoch + 1,
                       tree.tree_hash(), confirmed, prov.extensions)
    psk = resolve_psks(st, prov.psk_ids, config)
    secrets = ks.derive_epoch(cs, init_secret, commit_secret, psk, ctx)
    tag = cs.mac(secrets.confirmation_key, confirmed)
    past = st.past_epochs
    if config.max_past_epochs > 0:
        members = tuple((i, leaf.signature_key, leaf.credential) for i, leaf in st.tree.leaves())
        past = ((*past, PastEpoch(st.context, st.secret_tree, st.keys.sender_data_secret,
                                  members))
                [-config.max_past_epochs:])
    else:
        past = ()
    psks = ((*st.resumption_psks, (st.epoch, st.keys.resumption_psk))
            [-config.max_resumption_psks:]) if config.max_resumption_psks > 0 else ()
    me = private.leaf_index
    removed_self = tree.leaf(me) is None or any(i == me for i, _ in prov.removed)
    status = Status.ACTIVE
    if prov.reinit is not None:
        status = Status.REINIT
    if removed_self:
        status = Status.REMOVED
    state = GroupState(
        cs=cs,
        context=ctx,
        tree=tree,
        private=private,
        signature_priv=st.signature_priv,
        interim_transcript_hash=interim_transcript_hash(cs, confirmed, tag),
        keys=epoch_keys(secrets),
        secret_tree=SecretTree(cs, secrets.encryption_secret, tree.n_leaves, config.ratchet),
        confirmation_tag=tag,
        past_epochs=past,
        resumption_psks=psks,
        status=status,
        reinit=prov.reinit,
    )
    return NextEpoch(state, secrets, tag)


def epoch_keys(s: ks.EpochSecrets) -> EpochKeys:
    return EpochKeys(s.sender_data_secret, s.exporter_secret, s.epoch_authenticator,
                     s.external_secret, s.confirmation_key, s.membership_key, s.resumption_psk,
                     s.init_secret)
