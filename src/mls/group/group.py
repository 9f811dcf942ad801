"""The group state machine (RFC 9420 §11-§14), sans-IO.

A :class:`Group` turns bytes and decisions into new state and bytes. Every
operation works on new values and swaps them in only when it succeeded, so
any error leaves the group exactly as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .. import key_schedule as ks
from .. import private_message as pm
from .. import tree_math as tm
from ..commit import Commit
from ..crypto import CipherSuite, CryptoProvider
from ..errors import (
    CryptoError,
    DecodeError,
    PendingCommitError,
    ValidationError,
)
from ..extensions import (
    Extension,
    ExtensionType,
)
from ..framing import (
    AuthenticatedContent,
    ContentType,
    FramedContent,
    FramedContentAuthData,
    Sender,
    WireFormat,
)
from ..group_context import GroupContext
from ..group_info import GroupInfo
from ..key_package import KeyPackage, check_key_package
from ..key_schedule import welcome_key_nonce
from ..leaf_node import PROTOCOL_VERSION_MLS10, Capabilities, LeafNodeSource, Lifetime
from ..message import MLSMessage
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
from ..psk import PreSharedKeyID
from ..public_message import PublicMessage
from ..ratchet_tree import RatchetTree
from ..secret_tree import SecretTree
from ..transcript import interim_transcript_hash
from ..treekem import TreeKemPrivate, create_update_path
from ..welcome import (
    EncryptedGroupSecrets,
    GroupSecrets,
    Welcome,
    seal_group_secrets,
    welcome_encrypt_context,
)
from .config import GroupConfig, config_now
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
from .receive import Receiver
from .results import (
    CommitOutput,
)
from .state import GroupState, PendingCommit, PendingProposal
from .validation import (
    check_group_extensions,
)


class Group(Receiver):
    """One member's view of one MLS group."""

    __slots__ = ()

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
        lifetime = Lifetime.starting(config_now(config), config.lifetime)
        leaf = make_leaf_node(cs, signer, enc_pub, lifetime=lifetime,
                              capabilities=capabilities).signed(cs, signer.signature_priv)
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
        block = self.config.padding_block
        # The ratchet moves on in place once the message is made (§6.3).
        return pm.encrypt_application(
            st.cs, st.context, st.leaf_index, st.signature_priv, st.secret_tree,
            st.keys.sender_data_secret, plaintext, authenticated_data,
            (-len(plaintext)) % block if block > 1 else 0)

    def propose(self, proposal: Proposal, authenticated_data: bytes = b"") -> bytes:
        """Send a proposal; it is kept for our own commits by reference."""
        st = self._require_active()
        if isinstance(proposal, ExternalInit):
            raise ValidationError("ExternalInit is only sent inside external commits (§12.1.6)")
        if isinstance(proposal, Update):
            # Without the new leaf's private key we could not follow the commit that
            # applies it (§12.1.2): propose_update makes and keeps that key.
            raise ValidationError("send Updates with propose_update (§12.1.2)")
        if isinstance(proposal, Add):
            # Refuse a bad KeyPackage now rather than have every commit drop it (§12.2).
            cfg = self.config
            check_key_package(st.cs, proposal.key_package,
                              cfg.clock() if cfg.clock is not None else None, cfg.max_lifetime)
        ac = self._frame(st, ContentType.PROPOSAL, proposal, authenticated_data,
                         self._handshake_wire())
        tree = st.secret_tree.copy()
        out = self._protect(st, ac, tree)
        ref = ac.proposal_ref(st.cs)
        self._state = st.evolve(secret_tree=tree, proposals=(
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
        self._state = st.evolve(secret_tree=sending_tree,
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
            except (ValidationError, CryptoError, DecodeError):
                continue  # e.g. a forged leaf signature: leave it out (§12.2)
            chosen.append(entry)
        return chosen

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
        context = welcome_encrypt_context(encrypted_gi)
        # New members below the same copath node get the same GroupSecrets:
        # each distinct one is encoded once.
        encoded: dict[bytes | None, bytes] = {}
        for index, kp in prov.added:
            ps = None
            if path_secrets:
                ps = path_secrets[tm.common_ancestor(2 * st.leaf_index, 2 * index)]
            gs = encoded.get(ps)
            if gs is None:
                gs = encoded[ps] = GroupSecrets(nxt.secrets.joiner_secret, ps,
                                                tuple(prov.psk_ids)).serialize()
            secrets.append(EncryptedGroupSecrets(
                kp.ref(cs), seal_group_secrets(cs, kp.init_key, encrypted_gi, gs, context)))
        return MLSMessage.wrap(Welcome(cs.id, tuple(secrets), encrypted_gi)).serialize()

    # -- reinit ---------------------------------------------------------------------------
    def propose_reinit(self, group_id: bytes, cipher_suite: int,
                       extensions: Sequence[Extension] = ()) -> bytes:
        return self.propose(ReInit(group_id, PROTOCOL_VERSION_MLS10, cipher_suite,
                                   tuple(extensions)))

    def propose_psk(self, psk_id: PreSharedKeyID) -> bytes:
        return self.propose(PreSharedKey(psk_id))

    def propose_group_context_extensions(self, extensions: Sequence[Extension]) -> bytes:
        return self.propose(GroupContextExtensions(tuple(extensions)))


__all__ = ["Group"]
