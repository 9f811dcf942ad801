"""State, inspection and the pending-commit flow shared by every part of
:class:`~mls.group.Group` (RFC 9420 §8.5, §8.7, §12.4.3, §14)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..credentials import Credential
from ..crypto import CipherSuite
from ..errors import (
    PendingCommitError,
    StateError,
    ValidationError,
)
from ..extensions import (
    Extension,
    ExtensionType,
    ExternalPub,
    find_extension,
)
from ..framing import (
    Sender,
)
from ..group_context import GroupContext
from ..group_info import GroupInfo
from ..key_schedule import external_key_pair, mls_exporter
from ..leaf_node import LeafNode
from ..message import MLSMessage
from ..proposals import (
    ReInit,
)
from ..psk import PreSharedKeyID, ResumptionPSKUsage
from ..ratchet_tree import RatchetTree
from .config import GroupConfig
from .epoch import (
    ProposalEntry,
)
from .state import GroupState, PendingProposal, Status
from .validation import (
    check_proposal_list,
)


class GroupBase:
    """One member's view of one MLS group: its state and what can be read from it."""

    __slots__ = ("_state", "config")

    def __init__(self, state: GroupState, config: GroupConfig | None = None) -> None:
        self._state = state
        self.config = config or GroupConfig()

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
        # The nonce is sized for the group that uses the PSK (§8.4): after a
        # ReInit that is the new group's suite.
        cs = st.cs
        if usage == ResumptionPSKUsage.REINIT and st.reinit is not None:
            cs = CipherSuite(st.reinit.cipher_suite, cs.provider)
        pid = PreSharedKeyID.resumption(usage, st.context.group_id, st.epoch,
                                        cs.random(cs.hash_length))
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

    def pending_group_info(self, *, with_ratchet_tree: bool = True,
                           with_external_pub: bool = True) -> bytes:
        """The signed GroupInfo of the epoch our pending commit creates (§12.4.3): the
        delivery service stores it with the commit and hands it to external joiners."""
        pc = self._state.pending_commit
        if pc is None:
            raise PendingCommitError("no pending commit")
        return GroupBase(pc.next_state, self.config).group_info(
            with_ratchet_tree=with_ratchet_tree, with_external_pub=with_external_pub)

    def _require_active(self) -> GroupState:
        st = self._state
        if st.status == Status.REMOVED:
            raise StateError("we were removed from this group")
        if st.status == Status.REINIT:
            raise StateError("this group was reinitialized; continue in the new group (§11.2)")
        return st

    def _check_list(self, st: GroupState, entries: Sequence[ProposalEntry], committer: Sender,
                    joiner: Credential | None = None) -> None:
        check_proposal_list(
            st.cs, [(e.proposal, e.sender) for e in entries], committer, st.tree,
            st.context.extensions, self.config, st.epoch, [e for e, _ in st.resumption_psks],
            joiner, group_id=st.context.group_id)

    def merge_pending_commit(self) -> None:
        """The delivery service accepted our commit: enter the new epoch."""
        st = self._state
        pc = st.pending_commit
        if pc is None:
            raise PendingCommitError("no pending commit to merge")
        # The epoch we leave is kept with its secret tree as it is now, not as it
        # was when the commit was made: keys of messages received meanwhile are
        # used up (§9.2), so those messages cannot be accepted a second time.
        nxt = pc.next_state
        past = tuple(replace(p, secret_tree=st.secret_tree) if p.context.epoch == st.epoch
                     else p for p in nxt.past_epochs)
        self._state = nxt.evolve(past_epochs=past, last_own_commit=st.cs.hash(pc.message))

    def clear_pending_commit(self) -> None:
        """Another commit won the epoch: forget ours (the epoch goes on)."""
        st = self._state
        if st.pending_commit is None:
            raise PendingCommitError("no pending commit to clear")
        self._state = st.evolve(pending_commit=None)


def read_ratchet_tree_ext(cs: CipherSuite, gi: GroupInfo, tree: bytes | None) -> RatchetTree:
    """The tree from the GroupInfo's ratchet_tree extension or from out of band."""
    data = find_extension(gi.extensions, ExtensionType.RATCHET_TREE)
    if data is None and tree is None:
        raise ValidationError("no ratchet tree: not in the GroupInfo and none given (§12.4.3.3)")
    return RatchetTree.decode(cs, data if data is not None else tree or b"")
