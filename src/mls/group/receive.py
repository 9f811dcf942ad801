"""Receiving: PublicMessage and PrivateMessage processing (RFC 9420 §6, §12.4.2).

Our own messages echoed by the delivery service are recognised; any invalid
message raises an :class:`~mls.errors.MLSError` and changes nothing.
"""


from __future__ import annotations

import hmac
from dataclasses import replace

from .. import private_message as pm
from ..commit import Commit
from ..credentials import Credential
from ..errors import (
    CryptoError,
    DecodeError,
    EpochError,
    MembershipTagError,
    SignatureError,
    StateError,
    ValidationError,
)
from ..extensions import (
    ExtensionType,
    decode_external_senders,
    find_extension,
)
from ..framing import (
    AuthenticatedContent,
    ContentType,
    Sender,
    SenderType,
    WireFormat,
)
from ..group_context import GroupContext
from ..key_schedule import external_key_pair
from ..leaf_node import LeafNodeSource
from ..message import Body, MLSMessage
from ..private_message import PrivateMessage
from ..proposals import (
    Add,
    ExternalInit,
    Proposal,
)
from ..public_message import PublicMessage
from ..ratchet_tree import RatchetTree
from ..transcript import check_confirmation_tag
from ..treekem import TreeKemPrivate, apply_update_path, verify_path_leaf
from .base import GroupBase
from .epoch import (
    ProposalEntry,
    apply_proposals,
    next_epoch,
    path_required,
    provisional_context,
)
from .results import (
    ApplicationMessage,
    CommitMessage,
    OwnMessage,
    Processed,
    ProposalMessage,
)
from .state import GroupState, PendingProposal, Status
from .validation import (
    check_leaf_node,
    check_update_path,
    proposal_sender_allowed,
)

_APPLICATION = ContentType.APPLICATION
_CT_NAME = {ContentType.APPLICATION: "application", ContentType.PROPOSAL: "proposal",
            ContentType.COMMIT: "commit"}


def _as_message(data: bytes | MLSMessage) -> tuple[Body, WireFormat, bytes]:
    """The message's body and wire format, and its encoding."""
    if isinstance(data, MLSMessage):
        return data.body, data.wire_format, data.serialize()
    if type(data) is bytes and (body := pm.parse_private_message(data)) is not None:
        return body, WireFormat.PRIVATE_MESSAGE, data  # the common case, read at once
    msg = MLSMessage.deserialize(data)
    return msg.body, msg.wire_format, bytes(data)

class Receiver(GroupBase):
    """Message processing for :class:`~mls.group.Group`."""

    __slots__ = ()

    # -- receiving ----------------------------------------------------------------------------
    def process(self, data: bytes | MLSMessage) -> Processed:
        """Process a PublicMessage or PrivateMessage of this group.

        Returns what it was. Our own messages echoed back are recognised: our
        pending commit is merged, everything else is reported as
        :class:`OwnMessage`. Raises an :class:`~mls.errors.MLSError` and
        changes nothing when the message is invalid.
        """
        body, wire_format, raw = _as_message(data)
        st = self._state
        if isinstance(body, PrivateMessage):
            group_id, epoch = body.group_id, body.epoch
        elif isinstance(body, PublicMessage):
            group_id, epoch = body.content.group_id, body.content.epoch
        else:
            raise ValidationError(f"a {wire_format.name} is not a group message")
        ctx = st.context
        if not hmac.compare_digest(group_id, ctx.group_id):
            raise ValidationError("message is for another group (§6.1)")
        pc = st.pending_commit
        if pc is not None and raw == pc.message:
            self.merge_pending_commit()
            return CommitMessage(Sender.member(st.leaf_index), None, pc.next_state.epoch,
                                 own=True)
        if epoch + 1 == ctx.epoch and st.last_own_commit and hmac.compare_digest(
                st.cs.hash(raw), st.last_own_commit):
            return OwnMessage(epoch, "commit")
        if st.status != Status.ACTIVE and epoch >= ctx.epoch:
            self._require_active()
        if isinstance(body, PrivateMessage):
            return self._process_private(st, body)
        return self._process_public(st, body)

    def _process_private(self, st: GroupState, msg: PrivateMessage) -> Processed:
        cs = st.cs
        past = None
        if msg.epoch == st.context.epoch:
            ctx, tree, sds = st.context, st.secret_tree, st.keys.sender_data_secret
        else:
            past = next((p for p in st.past_epochs if p.context.epoch == msg.epoch), None)
            if past is None or msg.content_type != ContentType.APPLICATION:
                rule = "§15.3" if msg.content_type == ContentType.APPLICATION else "§12.4.2"
                raise EpochError(
                    f"message for epoch {msg.epoch}, group is at epoch {st.epoch} ({rule})")
            ctx, tree, sds = past.context, past.secret_tree, past.sender_data_secret
        sd = pm.decrypt_sender_data(cs, msg, sds)
        if sd.leaf_index == st.private.leaf_index:
            return OwnMessage(msg.epoch, _CT_NAME[msg.content_type])
        if past is None:
            node = st.tree.leaf(sd.leaf_index)
            sender = (node.signature_key, node.credential) if node is not None else None
        else:
            sender = past.member(sd.leaf_index)
        if sender is None:
            raise ValidationError(f"sender leaf {sd.leaf_index} is not a member (§6.3.2)")
        # The secret tree changes (the key is consumed) only once the message is accepted.
        opened = pm.open_content(cs, msg, tree, sd)
        if not opened.verify(cs, sender[0], ctx):
            raise SignatureError("PrivateMessage signature is invalid (§6.1)")
        if msg.content_type == _APPLICATION:
            # Accepted: the key is used up in place, in this epoch's tree or a past one's.
            tree.apply(opened.update)
            assert isinstance(opened.content, bytes)
            return ApplicationMessage(sd.leaf_index, sender[1], opened.content,
                                      msg.authenticated_data, ctx.epoch)
        tree = tree.copy()  # a handshake message: its proposal or commit may still fail
        tree.apply(opened.update)
        return self._dispatch(st.evolve(secret_tree=tree),
                              pm.authenticated_content(msg, sd, opened), sender[1])

    def _process_public(self, st: GroupState, msg: PublicMessage) -> Processed:
        cs = st.cs
        c = msg.content
        if c.epoch != st.epoch:
            raise EpochError(
                f"message for epoch {c.epoch}, group is at epoch {st.epoch} (§12.4.2)")
        if c.content_type == ContentType.APPLICATION:
            raise ValidationError("application data in a PublicMessage (§6.2)")
        ac = msg.authenticated_content
        st_type = c.sender.sender_type
        if st_type == SenderType.MEMBER:
            leaf = st.tree.leaf(c.sender.index)
            if leaf is None:
                raise ValidationError(f"sender leaf {c.sender.index} is not a member (§6.2)")
            if not msg.verify_membership_tag(cs, st.keys.membership_key, st.context):
                raise MembershipTagError("membership_tag is invalid (§6.2)")
            if c.sender.index == st.leaf_index:
                return self._own_public(st, ac)
            if not ac.verify(cs, leaf.signature_key, st.context):
                raise SignatureError("PublicMessage signature is invalid (§6.1)")
        elif st_type == SenderType.EXTERNAL:
            if c.content_type != ContentType.PROPOSAL:
                raise ValidationError("external senders may only send proposals (§12.1.8)")
            data = find_extension(st.context.extensions, ExtensionType.EXTERNAL_SENDERS)
            senders = decode_external_senders(data) if data is not None else ()
            if c.sender.index >= len(senders):
                raise ValidationError("unknown external sender index (§12.1.8.1)")
            if not ac.verify(cs, senders[c.sender.index].signature_key, None):
                raise SignatureError("external proposal signature is invalid (§6.1)")
        elif st_type == SenderType.NEW_MEMBER_PROPOSAL:
            if not isinstance(c.content, Add):
                raise ValidationError("new_member_proposal senders may only propose Add (§12.1.8)")
            if not ac.verify(cs, c.content.key_package.leaf_node.signature_key, None):
                raise SignatureError("new member proposal signature is invalid (§6.1)")
        else:  # new_member_commit
            if not isinstance(c.content, Commit) or c.content.path is None:
                raise ValidationError("an external commit must carry a path (§12.4.3.2)")
            if not ac.verify(cs, c.content.path.leaf_node.signature_key, st.context):
                raise SignatureError("external commit signature is invalid (§6.1)")
        return self._dispatch(st, ac)

    def _own_public(self, st: GroupState, ac: AuthenticatedContent) -> Processed:
        if ac.content.content_type == ContentType.PROPOSAL:
            ref = ac.proposal_ref(st.cs)
            if any(p.ref == ref for p in st.proposals):
                return OwnMessage(st.epoch, "proposal")
            raise ValidationError("a proposal from our own leaf that we did not send (§6.2)")
        raise StateError("a commit from our own leaf that is not our pending commit (§6.2)")

    def _dispatch(self, st: GroupState, ac: AuthenticatedContent,
                  credential: Credential | None = None) -> Processed:
        c = ac.content
        if c.content_type == ContentType.APPLICATION:
            assert credential is not None  # application data only comes in PrivateMessages
            self._state = st
            return self._application(ac, st.epoch, credential)
        if c.content_type == ContentType.PROPOSAL:
            assert not isinstance(c.content, bytes | Commit)
            return self._receive_proposal(st, ac, c.content)
        assert isinstance(c.content, Commit)
        return self._receive_commit(st, ac, c.content)

    def _credential(self, st: GroupState, sender: Sender) -> Credential | None:
        if sender.sender_type == SenderType.MEMBER:
            leaf = st.tree.leaf(sender.index)
            return leaf.credential if leaf is not None else None
        return None

    @staticmethod
    def _application(ac: AuthenticatedContent, epoch: int, credential: Credential
                     ) -> ApplicationMessage:
        assert isinstance(ac.content.content, bytes)
        return ApplicationMessage(ac.content.sender.index, credential, ac.content.content,
                                  ac.content.authenticated_data, epoch)

    def _receive_proposal(self, st: GroupState, ac: AuthenticatedContent, p: Proposal
                          ) -> ProposalMessage:
        if not proposal_sender_allowed(p, ac.content.sender):
            raise ValidationError(
                f"{type(p).__name__} from a {ac.content.sender.sender_type.name} sender is not "
                "allowed (§12.1, §12.1.8)")
        if isinstance(p, ExternalInit):
            raise ValidationError("ExternalInit outside an external commit (§12.1.6)")
        ref = ac.proposal_ref(st.cs)
        if any(pp.ref == ref for pp in st.proposals):
            raise ValidationError("duplicate proposal (same ProposalRef) in this epoch (§12.1)")
        self._state = st.evolve(proposals=(*st.proposals,
                                             PendingProposal(ref, p, ac.content.sender)))
        return ProposalMessage(ac.content.sender, self._credential(st, ac.content.sender), p, ref)

    def _resolve(self, st: GroupState, commit: Commit, committer: Sender) -> list[ProposalEntry]:
        pending = {p.ref: p for p in st.proposals}
        out = []
        for por in commit.proposals:
            if por.reference is not None:
                if committer.sender_type == SenderType.NEW_MEMBER_COMMIT:
                    raise ValidationError("external commits must include proposals by value "
                                          "(§12.4.3.2)")
                pp = pending.get(por.reference)
                if pp is None:
                    raise ValidationError("commit references an unknown proposal (§12.4.2)")
                out.append(ProposalEntry(pp.proposal, pp.sender, pp.ref))
            else:
                assert por.proposal is not None
                out.append(ProposalEntry(por.proposal, committer, None))
        refs = [e.ref for e in out if e.ref is not None]
        if len(refs) != len(set(refs)):
            raise ValidationError("commit includes the same proposal twice (§12.2)")
        return out

    def _receive_commit(self, st: GroupState, ac: AuthenticatedContent, commit: Commit
                        ) -> CommitMessage:
        cs = st.cs
        committer = ac.content.sender
        if ac.auth.confirmation_tag is None:
            raise ValidationError("commit without confirmation_tag (§6.1)")
        entries = self._resolve(st, commit, committer)
        external = committer.sender_type == SenderType.NEW_MEMBER_COMMIT
        self._check_list(st, entries, committer,
                         commit.path.leaf_node.credential if external and commit.path else None)
        if path_required(entries) and commit.path is None:
            raise ValidationError("commit lacks a required path (§12.4.2)")
        prov = apply_proposals(st, entries, self.config)
        tree = prov.tree
        init_secret = st.keys.init_secret
        if external:
            assert commit.path is not None and prov.external_init is not None
            tree, sender_leaf = tree.add_leaf(commit.path.leaf_node)
            ext_priv, _ = external_key_pair(cs, st.keys.external_secret)
            try:
                ctx_r = cs.hpke.setup_base_r(prov.external_init.kem_output, ext_priv, b"")
            except (ValueError, DecodeError, CryptoError) as e:
                raise ValidationError(f"ExternalInit kem_output is invalid (§8.3): {e}") from None
            init_secret = ctx_r.export(b"MLS 1.0 external init secret", cs.hash_length)
            prov = replace(prov, tree=tree)
        else:
            sender_leaf = committer.index
        removed_self = any(i == st.leaf_index for i, _ in prov.removed)
        private = st.private
        if prov.own_update_priv is not None:
            private = TreeKemPrivate(private.leaf_index,
                                     {**private.keys, 2 * st.leaf_index: prov.own_update_priv})
        private = private.prune(tree)
        commit_secret = bytes(cs.hash_length)

        def context_for(t: RatchetTree) -> GroupContext:
            return provisional_context(st, t, prov.extensions)

        if commit.path is not None:
            check_leaf_node(cs, commit.path.leaf_node, LeafNodeSource.COMMIT, tree,
                            prov.extensions, self.config, group_id=st.context.group_id,
                            leaf_index=sender_leaf, replacing=sender_leaf, check_signature=False)
            # The sender's filtered direct path and the path's parent hashes are
            # computed once and shared by the checks and the merge.
            added = frozenset(i for i, _ in prov.added)
            fdp = tree.filtered_direct_path(sender_leaf)
            check_update_path(tree, sender_leaf, commit.path, added, external, fdp=fdp)
            hashes = verify_path_leaf(cs, tree, sender_leaf, commit.path, st.context.group_id,
                                      fdp)
            if removed_self:
                tree = tree.merge_update_path(sender_leaf, commit.path.leaf_node,
                                              [n.encryption_key for n in commit.path.nodes],
                                              path=fdp, hashes=hashes)
            else:
                applied = apply_update_path(cs, tree, sender_leaf, commit.path, private,
                                            context_for, added, fdp, hashes)
                tree, private, commit_secret = applied.tree, applied.private, applied.commit_secret
        nxt = next_epoch(st, prov, ac, tree, private, commit_secret, init_secret, self.config)
        if not removed_self:
            check_confirmation_tag(cs, nxt.secrets.confirmation_key,
                                   nxt.state.context.confirmed_transcript_hash,
                                   ac.auth.confirmation_tag, "confirmation_tag (§12.4.2)")
        new_state = nxt.state
        if removed_self:
            new_state = st.evolve(status=Status.REMOVED, pending_commit=None)
        self._state = new_state
        updated = sorted({*prov.updated, *([sender_leaf] if commit.path is not None else [])})
        return CommitMessage(
            committer, (commit.path.leaf_node.credential if external and commit.path else
                        self._credential(st, committer)),
            new_state.epoch if not removed_self else st.epoch + 1,
            added=[i for i, _ in prov.added],
            removed=[(i, leaf.credential) for i, leaf in prov.removed],
            updated=updated, removed_self=removed_self, reinit=prov.reinit is not None)
