"""The group state machine (RFC 9420 §11-§14), sans-IO.

A :class:`Group` turns bytes and decisions into new state and bytes. Every
operation works on new values and swaps them in only when it succeeded, so
any error leaves the group exactly as it was.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import replace

from .. import key_schedule as ks
from .. import private_message as pm
from .. import tree_math as tm
from ..codec import Reader
from ..commit import Commit
from ..credentials import Credential
from ..crypto import CipherSuite, CryptoProvider
from ..errors import (
    ConfirmationTagError,
    DecodeError,
    EpochError,
    MembershipTagError,
    PendingCommitError,
    SignatureError,
    StateError,
    ValidationError,
)
from ..extensions import (
    Extension,
    ExtensionType,
    ExternalPub,
    decode_external_senders,
    find_extension,
)
from ..framing import (
    AuthenticatedContent,
    ContentType,
    FramedContent,
    FramedContentAuthData,
    Sender,
    SenderType,
    WireFormat,
)
from ..group_context import GroupContext
from ..group_info import GroupInfo
from ..key_package import KeyPackage
from ..key_schedule import external_key_pair, mls_exporter, welcome_key_nonce
from ..leaf_node import PROTOCOL_VERSION_MLS10, Capabilities, LeafNode, LeafNodeSource
from ..message import MLSMessage
from ..private_message import PrivateMessage
from ..proposals import (
    Add,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    Proposal,
    ProposalOrRef,
    ReInit,
    Remove,
    Update,
)
from ..psk import PreSharedKeyID, ResumptionPSKUsage
from ..public_message import PublicMessage
from ..ratchet_tree import RatchetTree
from ..secret_tree import SecretTree
from ..transcript import interim_transcript_hash
from ..treekem import TreeKemPrivate, apply_update_path, create_update_path, verify_path_leaf
from ..welcome import EncryptedGroupSecrets, GroupSecrets, Welcome, seal_group_secrets
from .config import GroupConfig
from .epoch import (
    NextEpoch,
    ProposalEntry,
    Provisional,
    apply_proposals,
    epoch_keys,
    next_epoch,
    path_required,
    provisional_context,
)
from .identity import Signer, make_leaf_node
from .results import (
    ApplicationMessage,
    CommitMessage,
    CommitOutput,
    OwnMessage,
    Processed,
    ProposalMessage,
)
from .state import GroupState, PendingCommit, PendingProposal, Status
from .validation import (
    check_group_extensions,
    check_leaf_node,
    check_proposal_list,
    proposal_sender_allowed,
)

_CT_NAME = {ContentType.APPLICATION: "application", ContentType.PROPOSAL: "proposal",
            ContentType.COMMIT: "commit"}


def _as_message(data: bytes | MLSMessage) -> tuple[MLSMessage, bytes]:
    if isinstance(data, MLSMessage):
        return data, data.serialize()
    return MLSMessage.deserialize(data), bytes(data)


class Group:
    """One member's view of one MLS group."""

    __slots__ = ("_state", "config")

    def __init__(self, state: GroupState, config: GroupConfig | None = None) -> None:
        self._state = state
        self.config = config or GroupConfig()

    # -- construction ---------------------------------------------------------------
    @classmethod
    def create(
        cls, provider: CryptoProvider, cipher_suite: int, group_id: bytes, signer: Signer, *,
        extensions: Sequence[Extension] = (), capabilities: Capabilities | None = None,
        config: GroupConfig | None = None,
    ) -> Group:
        """A one-member group at epoch 0 (§11)."""
        config = config or GroupConfig()
        cs = CipherSuite(cipher_suite, provider)
        enc_priv, enc_pub = cs.generate_hpke_key_pair()
        leaf = make_leaf_node(cs, signer, enc_pub, capabilities=capabilities).signed(
            cs, signer.signature_priv)
        tree = RatchetTree.one_member(cs, leaf)
        exts = tuple(extensions)
        check_group_extensions(cs, exts, tree)
        ctx = GroupContext(PROTOCOL_VERSION_MLS10, cs.id, group_id, 0, tree.tree_hash(), b"",
                           exts)
        secrets = ks.derive_epoch(cs, cs.random(cs.hash_length), bytes(cs.hash_length),
                                  bytes(cs.hash_length), ctx)
        tag = cs.mac(secrets.confirmation_key, b"")
        state = GroupState(
            cs=cs, context=ctx, tree=tree, private=TreeKemPrivate(0, {0: enc_priv}),
            signature_priv=signer.signature_priv,
            interim_transcript_hash=interim_transcript_hash(cs, b"", tag),
            keys=epoch_keys(secrets),
            secret_tree=SecretTree(cs, secrets.encryption_secret, 1, config.ratchet),
            confirmation_tag=tag)
        return cls(state, config)

    @classmethod
    def from_state(
        cls, provider: CryptoProvider, data: bytes, config: GroupConfig | None = None
    ) -> Group:
        """Restore a group exported with :meth:`export_state`."""
        return cls(GroupState.from_bytes(provider, data), config)

    def export_state(self) -> bytes:
        """Versioned, deterministic serialization of everything (§ persistence)."""
        return self._state.to_bytes()

    # -- inspection ---------------------------------------------------------------------
    @property
    def state(self) -> GroupState:
        return self._state

    @property
    def cipher_suite(self) -> CipherSuite:
        return self._state.cs

    @property
    def group_id(self) -> bytes:
        return self._state.context.group_id

    @property
    def epoch(self) -> int:
        return self._state.epoch

    @property
    def leaf_index(self) -> int:
        return self._state.leaf_index

    @property
    def context(self) -> GroupContext:
        return self._state.context

    @property
    def tree(self) -> RatchetTree:
        return self._state.tree

    @property
    def status(self) -> Status:
        return self._state.status

    @property
    def epoch_authenticator(self) -> bytes:
        """The epoch authenticator (§8.7): equal for every member of the epoch."""
        return self._state.keys.epoch_authenticator

    @property
    def has_pending_commit(self) -> bool:
        return self._state.pending_commit is not None

    @property
    def pending_proposals(self) -> tuple[PendingProposal, ...]:
        return self._state.proposals

    def members(self) -> list[tuple[int, LeafNode]]:
        return list(self._state.tree.leaves())

    def member(self, leaf_index: int) -> LeafNode | None:
        return self._state.tree.leaf(leaf_index)

    def export_secret(self, label: bytes, context: bytes, length: int) -> bytes:
        """MLS-Exporter (§8.5)."""
        st = self._state
        return mls_exporter(st.cs, st.keys.exporter_secret, label, context, length)

    def resumption_psk(self, usage: ResumptionPSKUsage = ResumptionPSKUsage.REINIT
                       ) -> tuple[PreSharedKeyID, bytes]:
        """This epoch's resumption PSK (§8.6) with a fresh nonce: the id goes in a
        PreSharedKey proposal of the new group's first commit, the value in the
        ``resumption_psks`` of the new group's config and of every joiner."""
        st = self._state
        pid = PreSharedKeyID.resumption(usage, st.context.group_id, st.epoch,
                                        st.cs.random(st.cs.hash_length))
        return pid, st.keys.resumption_psk

    @property
    def pending_reinit(self) -> ReInit | None:
        """The committed ReInit, once the group was reinitialized (§11.2)."""
        return self._state.reinit

    def group_info(self, *, with_ratchet_tree: bool = True, with_external_pub: bool = True
                   ) -> bytes:
        """A signed GroupInfo for this epoch (§12.4.3), e.g. for external joins."""
        st = self._state
        exts: list[Extension] = []
        if with_ratchet_tree:
            exts.append(Extension(ExtensionType.RATCHET_TREE, st.tree.serialize()))
        if with_external_pub:
            _, pub = external_key_pair(st.cs, st.keys.external_secret)
            exts.append(Extension(ExtensionType.EXTERNAL_PUB, ExternalPub(pub).serialize()))
        gi = GroupInfo(st.context, tuple(exts), st.confirmation_tag, st.leaf_index).signed(
            st.cs, st.signature_priv)
        return MLSMessage.wrap(gi).serialize()

    def _require_active(self) -> GroupState:
        st = self._state
        if st.status == Status.REMOVED:
            raise StateError("we were removed from this group")
        if st.status == Status.REINIT:
            raise StateError("this group was reinitialized; continue in the new group (§11.2)")
        return st

    # -- sending ----------------------------------------------------------------------------
    def _frame(self, st: GroupState, ct: ContentType, content: bytes | Proposal | Commit,
               authenticated_data: bytes, wire: WireFormat) -> AuthenticatedContent:
        framed = FramedContent(st.context.group_id, st.epoch, Sender.member(st.leaf_index),
                               authenticated_data, ct, content)
        return AuthenticatedContent.sign(st.cs, wire, framed, st.signature_priv, st.context)

    def _protect(self, st: GroupState, ac: AuthenticatedContent, tree: SecretTree) -> bytes:
        if ac.wire_format == WireFormat.PUBLIC_MESSAGE:
            msg = PublicMessage.protect(st.cs, ac, st.keys.membership_key, st.context)
            return MLSMessage.wrap(msg).serialize()
        pad = self._padding(ac)
        return MLSMessage.wrap(
            pm.encrypt(st.cs, ac, tree, st.keys.sender_data_secret, pad)).serialize()

    def _padding(self, ac: AuthenticatedContent) -> int:
        block = self.config.padding_block
        if block <= 1:
            return 0
        size = len(ac.content.content) if isinstance(ac.content.content, bytes) else 0
        return (-size) % block

    def _handshake_wire(self) -> WireFormat:
        return (WireFormat.PRIVATE_MESSAGE if self.config.handshake_as_private
                else WireFormat.PUBLIC_MESSAGE)

    def encrypt(self, plaintext: bytes, authenticated_data: bytes = b"") -> bytes:
        """An application message as a PrivateMessage (§6.3)."""
        st = self._require_active()
        ac = self._frame(st, ContentType.APPLICATION, plaintext, authenticated_data,
                         WireFormat.PRIVATE_MESSAGE)
        tree = st.secret_tree.copy()
        out = self._protect(st, ac, tree)
        self._state = replace(st, secret_tree=tree)
        return out

    def propose(self, proposal: Proposal, authenticated_data: bytes = b"") -> bytes:
        """Send a proposal; it is kept for our own commits by reference."""
        st = self._require_active()
        if isinstance(proposal, ExternalInit):
            raise ValidationError("ExternalInit is only sent inside external commits (§12.1.6)")
        ac = self._frame(st, ContentType.PROPOSAL, proposal, authenticated_data,
                         self._handshake_wire())
        tree = st.secret_tree.copy()
        out = self._protect(st, ac, tree)
        ref = ac.proposal_ref(st.cs)
        self._state = replace(st, secret_tree=tree, proposals=(
            *st.proposals, PendingProposal(ref, proposal, ac.content.sender)))
        return out

    def propose_add(self, key_package: KeyPackage) -> bytes:
        return self.propose(Add(key_package))

    def propose_remove(self, leaf_index: int) -> bytes:
        return self.propose(Remove(leaf_index))

    def propose_leave(self) -> bytes:
        """Ask to be removed: a Remove of our own leaf for another member to commit."""
        return self.propose(Remove(self.leaf_index))

    def propose_update(self, capabilities: Capabilities | None = None) -> bytes:
        """An Update proposal with a fresh leaf encryption key (§12.1.2)."""
        st = self._require_active()
        cs = st.cs
        old = st.tree.leaf(st.leaf_index)
        assert old is not None
        priv, pub = cs.generate_hpke_key_pair()
        leaf = replace(old, encryption_key=pub, leaf_node_source=LeafNodeSource.UPDATE,
                       lifetime=None, parent_hash=b"",
                       capabilities=capabilities or old.capabilities).signed(
            cs, st.signature_priv, st.context.group_id, st.leaf_index)
        ac = self._frame(st, ContentType.PROPOSAL, Update(leaf), b"", self._handshake_wire())
        tree = st.secret_tree.copy()
        out = self._protect(st, ac, tree)
        ref = ac.proposal_ref(cs)
        self._state = replace(
            st, secret_tree=tree,
            proposals=(*st.proposals, PendingProposal(ref, Update(leaf), ac.content.sender)),
            update_keys=(*st.update_keys, (ref, priv)))
        return out

    # -- committing -----------------------------------------------------------------------------
    def commit(
        self, proposals: Sequence[Proposal] = (), *, include_pending: bool = True,
        force_path: bool = True, authenticated_data: bytes = b"",
        with_ratchet_tree: bool | None = None,
    ) -> CommitOutput:
        """Create a commit; it stays pending until :meth:`merge_pending_commit`.

        Pending proposals are included by reference (those that would make the
        commit invalid are left out, as §12.2 allows); ``proposals`` are
        included by value. With ``force_path`` the commit always carries an
        UpdatePath, which gives post-compromise security (§12.4).
        """
        st = self._require_active()
        if st.pending_commit is not None:
            raise PendingCommitError("a commit is already pending; merge or clear it first")
        cs = st.cs
        me = Sender.member(st.leaf_index)
        entries = [ProposalEntry(p, me, None) for p in proposals]
        for p in proposals:
            if isinstance(p, Update):
                raise ValidationError("the committer updates itself through the path (§12.2)")
            if isinstance(p, ExternalInit):
                raise ValidationError("ExternalInit belongs to external commits only")
        if include_pending:
            entries = self._usable_pending(st, entries) + entries
        self._check_list(st, entries, me)
        prov = apply_proposals(st, entries, self.config)
        use_path = force_path or path_required(entries)
        if path_required(entries) and not use_path:
            raise ValidationError("this commit requires a path (§12.4)")

        def context_for(tree: RatchetTree) -> GroupContext:
            return provisional_context(st, tree, prov.extensions)

        tree = prov.tree
        private = st.private.prune(tree)
        commit_secret = bytes(cs.hash_length)
        path = None
        path_secrets: dict[int, bytes] = {}
        if use_path:
            template = tree.leaf(st.leaf_index)
            assert template is not None
            created = create_update_path(
                cs, tree, st.leaf_index, template, st.signature_priv, st.context.group_id,
                context_for, frozenset(i for i, _ in prov.added))
            tree, private, commit_secret = created.tree, created.private, created.commit_secret
            path, path_secrets = created.update_path, created.path_secrets
        commit = Commit(tuple(
            ProposalOrRef(reference=e.ref) if e.ref is not None
            else ProposalOrRef(proposal=e.proposal)
            for e in entries), path)
        wire = self._handshake_wire()
        ac = self._frame(st, ContentType.COMMIT, commit, authenticated_data, wire)
        nxt = next_epoch(st, prov, ac, tree, private, commit_secret, st.keys.init_secret,
                         self.config)
        ac = replace(ac, auth=FramedContentAuthData(ac.auth.signature, nxt.confirmation_tag))
        sending_tree = st.secret_tree.copy()
        message = self._protect(st, ac, sending_tree)
        welcome = None
        if prov.added:
            welcome = self._welcome(st, nxt, prov, path_secrets, with_ratchet_tree)
        self._state = replace(st, secret_tree=sending_tree,
                              pending_commit=PendingCommit(message, nxt.state))
        return CommitOutput(message, welcome, [i for i, _ in prov.added])

    def _usable_pending(self, st: GroupState, by_value: list[ProposalEntry]) -> list[ProposalEntry]:
        """Pending proposals that can go in our commit, in arrival order."""
        chosen: list[ProposalEntry] = []
        me = Sender.member(st.leaf_index)
        for pp in st.proposals:
            entry = ProposalEntry(pp.proposal, pp.sender, pp.ref)
            if isinstance(pp.proposal, Update) and pp.sender == me:
                continue  # our own Update is superseded by the path
            if isinstance(pp.proposal, Remove) and pp.proposal.removed == st.leaf_index:
                continue  # we cannot commit our own removal; someone else will
            try:
                self._check_list(st, [*chosen, entry, *by_value], me)
                apply_proposals(st, [*chosen, entry, *by_value], self.config)
            except ValidationError:
                continue
            chosen.append(entry)
        return chosen

    def _check_list(self, st: GroupState, entries: Sequence[ProposalEntry], committer: Sender
                    ) -> None:
        check_proposal_list(
            st.cs, [(e.proposal, e.sender) for e in entries], committer, st.tree,
            st.context.extensions, self.config, st.epoch, [e for e, _ in st.resumption_psks])

    def _welcome(self, st: GroupState, nxt: NextEpoch, prov: Provisional,
                 path_secrets: dict[int, bytes], with_ratchet_tree: bool | None) -> bytes:
        """Welcome for the members this commit adds (§12.4.3.1)."""
        cs = st.cs
        tree_ext = self.config.ratchet_tree_extension if with_ratchet_tree is None \
            else with_ratchet_tree
        new = nxt.state
        exts = ((Extension(ExtensionType.RATCHET_TREE, new.tree.serialize()),)
                if tree_ext else ())
        gi = GroupInfo(new.context, exts, nxt.confirmation_tag, st.leaf_index).signed(
            cs, st.signature_priv)
        key, nonce = welcome_key_nonce(cs, nxt.secrets.welcome_secret)
        encrypted_gi = cs.provider.aead_seal(cs.params.aead, key, nonce, b"", gi.serialize())
        secrets = []
        for index, kp in prov.added:
            ps = None
            if path_secrets:
                ps = path_secrets[tm.common_ancestor(2 * st.leaf_index, 2 * index)]
            gs = GroupSecrets(nxt.secrets.joiner_secret, ps, tuple(prov.psk_ids))
            secrets.append(EncryptedGroupSecrets(
                kp.ref(cs), seal_group_secrets(cs, kp.init_key, encrypted_gi, gs)))
        return MLSMessage.wrap(Welcome(cs.id, tuple(secrets), encrypted_gi)).serialize()

    def merge_pending_commit(self) -> None:
        """The delivery service accepted our commit: enter the new epoch."""
        st = self._state
        pc = st.pending_commit
        if pc is None:
            raise PendingCommitError("no pending commit to merge")
        self._state = replace(pc.next_state, last_own_commit=st.cs.hash(pc.message))

    def clear_pending_commit(self) -> None:
        """Another commit won the epoch: forget ours (the epoch goes on)."""
        st = self._state
        if st.pending_commit is None:
            raise PendingCommitError("no pending commit to clear")
        self._state = replace(st, pending_commit=None)

    # -- receiving ----------------------------------------------------------------------------
    def process(self, data: bytes | MLSMessage) -> Processed:
        """Process a PublicMessage or PrivateMessage of this group.

        Returns what it was. Our own messages echoed back are recognised: our
        pending commit is merged, everything else is reported as
        :class:`OwnMessage`. Raises an :class:`~mls.errors.MLSError` and
        changes nothing when the message is invalid.
        """
        msg, raw = _as_message(data)
        st = self._state
        body = msg.body
        if not isinstance(body, PublicMessage | PrivateMessage):
            raise ValidationError(f"a {msg.wire_format.name} is not a group message")
        group_id = body.content.group_id if isinstance(body, PublicMessage) else body.group_id
        epoch = body.content.epoch if isinstance(body, PublicMessage) else body.epoch
        if not hmac.compare_digest(group_id, st.context.group_id):
            raise ValidationError("message is for another group")
        pc = st.pending_commit
        if pc is not None and raw == pc.message:
            self.merge_pending_commit()
            return self._own_commit_result(st, pc.next_state)
        if epoch + 1 == st.epoch and st.last_own_commit and hmac.compare_digest(
                st.cs.hash(raw), st.last_own_commit):
            return OwnMessage(epoch, "commit")
        if st.status != Status.ACTIVE and epoch >= st.epoch:
            self._require_active()
        if isinstance(body, PrivateMessage):
            return self._process_private(st, body)
        return self._process_public(st, body)

    def _own_commit_result(self, old: GroupState, new: GroupState) -> CommitMessage:
        del old
        return CommitMessage(Sender.member(new.leaf_index), None, new.epoch, own=True)

    def _process_private(self, st: GroupState, msg: PrivateMessage) -> Processed:
        cs = st.cs
        if msg.epoch == st.epoch:
            ctx, tree, sds = st.context, st.secret_tree.copy(), st.keys.sender_data_secret

            def member(leaf: int) -> tuple[bytes, Credential] | None:
                node = st.tree.leaf(leaf)
                return (node.signature_key, node.credential) if node is not None else None
        else:
            past = next((p for p in st.past_epochs if p.context.epoch == msg.epoch), None)
            if past is None or msg.content_type != ContentType.APPLICATION:
                raise EpochError(
                    f"message for epoch {msg.epoch}, group is at epoch {st.epoch}")
            ctx, tree, sds = past.context, past.secret_tree.copy(), past.sender_data_secret
            member = past.member
        sd = pm.decrypt_sender_data(cs, msg, sds)
        if sd.leaf_index == st.leaf_index:
            return OwnMessage(msg.epoch, _CT_NAME[msg.content_type])
        sender = member(sd.leaf_index)
        if sender is None:
            raise ValidationError(f"sender leaf {sd.leaf_index} is not a member (§6.3.2)")
        ac = pm.decrypt(cs, msg, tree, sds)
        if not ac.verify(cs, sender[0], ctx):
            raise SignatureError("PrivateMessage signature is invalid (§6.1)")
        if msg.epoch != st.epoch:
            new_past = tuple(replace(p, secret_tree=tree) if p.context.epoch == msg.epoch else p
                             for p in st.past_epochs)
            self._state = replace(st, past_epochs=new_past)
            return self._application(ac, ctx.epoch, sender[1])
        return self._dispatch(replace(st, secret_tree=tree), ac, sender[1])

    def _process_public(self, st: GroupState, msg: PublicMessage) -> Processed:
        cs = st.cs
        c = msg.content
        if c.epoch != st.epoch:
            raise EpochError(f"message for epoch {c.epoch}, group is at epoch {st.epoch}")
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
            raise ValidationError("a proposal from our own leaf that we did not send")
        raise StateError("a commit from our own leaf that is not our pending commit")

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
                f"{type(p).__name__} from a {ac.content.sender.sender_type.name} sender (§12.1)")
        if isinstance(p, ExternalInit):
            raise ValidationError("ExternalInit outside an external commit (§12.1.6)")
        ref = ac.proposal_ref(st.cs)
        if any(pp.ref == ref for pp in st.proposals):
            raise ValidationError("duplicate proposal (same ProposalRef) in this epoch")
        self._state = replace(st, proposals=(*st.proposals,
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
            raise ValidationError("commit without confirmation_tag")
        entries = self._resolve(st, commit, committer)
        self._check_list(st, entries, committer)
        external = committer.sender_type == SenderType.NEW_MEMBER_COMMIT
        if path_required(entries) and commit.path is None:
            raise ValidationError("commit lacks a required path (§12.4)")
        prov = apply_proposals(st, entries, self.config)
        tree = prov.tree
        init_secret = st.keys.init_secret
        if external:
            assert commit.path is not None and prov.external_init is not None
            tree, sender_leaf = tree.add_leaf(commit.path.leaf_node)
            ext_priv, _ = external_key_pair(cs, st.keys.external_secret)
            try:
                ctx_r = cs.hpke.setup_base_r(prov.external_init.kem_output, ext_priv, b"")
            except (ValueError, DecodeError) as e:
                raise ValidationError(f"ExternalInit kem_output is invalid: {e}") from None
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
            verify_path_leaf(cs, tree, sender_leaf, commit.path, st.context.group_id)
            if removed_self:
                tree = tree.merge_update_path(sender_leaf, commit.path.leaf_node,
                                              [n.encryption_key for n in commit.path.nodes])
            else:
                applied = apply_update_path(cs, tree, sender_leaf, commit.path, private,
                                            context_for, frozenset(i for i, _ in prov.added))
                tree, private, commit_secret = applied.tree, applied.private, applied.commit_secret
        nxt = next_epoch(st, prov, ac, tree, private, commit_secret, init_secret, self.config)
        if not removed_self and not hmac.compare_digest(nxt.confirmation_tag,
                                                        ac.auth.confirmation_tag):
            raise ConfirmationTagError("confirmation_tag is invalid (§12.4.2)")
        new_state = nxt.state
        if removed_self:
            new_state = replace(st, status=Status.REMOVED, pending_commit=None)
        self._state = new_state
        updated = sorted({*prov.updated, *([sender_leaf] if commit.path is not None else [])})
        return CommitMessage(
            committer, (commit.path.leaf_node.credential if external and commit.path else
                        self._credential(st, committer)),
            new_state.epoch if not removed_self else st.epoch + 1,
            added=[i for i, _ in prov.added],
            removed=[(i, leaf.credential) for i, leaf in prov.removed],
            updated=updated, removed_self=removed_self, reinit=prov.reinit is not None)

    # -- reinit ---------------------------------------------------------------------------
    def propose_reinit(self, group_id: bytes, cipher_suite: int,
                       extensions: Sequence[Extension] = ()) -> bytes:
        return self.propose(ReInit(group_id, PROTOCOL_VERSION_MLS10, cipher_suite,
                                   tuple(extensions)))

    def propose_psk(self, psk_id: PreSharedKeyID) -> bytes:
        return self.propose(PreSharedKey(psk_id))

    def propose_group_context_extensions(self, extensions: Sequence[Extension]) -> bytes:
        return self.propose(GroupContextExtensions(tuple(extensions)))


def read_ratchet_tree_ext(cs: CipherSuite, gi: GroupInfo, tree: bytes | None) -> RatchetTree:
    """The tree from the GroupInfo's ratchet_tree extension or from out of band."""
    data = find_extension(gi.extensions, ExtensionType.RATCHET_TREE)
    if data is None and tree is None:
        raise ValidationError("no ratchet tree: not in the GroupInfo and none given (§12.4.3.3)")
    return RatchetTree.decode(cs, data if data is not None else tree or b"")


__all__ = ["Group", "Reader", "read_ratchet_tree_ext"]
