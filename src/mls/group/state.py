"""The state of one member in one group, and its versioned serialization.

Everything a member needs to go on after a restart is here: the public tree
and context, its private keys, the transcript hash, the current epoch's
secrets and secret tree (with ratchet positions and retained out-of-order
keys), proposals received this epoch, retained past epochs, resumption PSKs,
and a pending commit. The encoding is deterministic: equal states encode to
equal bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum
from operator import attrgetter
from typing import Any

from ..codec import Reader, Writer
from ..credentials import Credential
from ..crypto import CipherSuite, CryptoProvider
from ..errors import DecodeError
from ..framing import Sender
from ..group_context import GroupContext
from ..proposals import Proposal, ProposalType, ReInit, decode_proposal, encode_proposal
from ..ratchet_tree import RatchetTree
from ..secret_tree import SecretTree
from ..treekem import TreeKemPrivate

STATE_MAGIC = b"MLSG"
STATE_VERSION = 2  # 2: past epochs keep member credentials


class Status(IntEnum):
    ACTIVE = 0
    REMOVED = 1  # a commit removed us: nothing more can be sent or received
    REINIT = 2  # a ReInit was committed: the group continues elsewhere (§11.2)


@dataclass(frozen=True, slots=True)
class EpochKeys:
    """Secrets of the current epoch kept after the key schedule ran (§8)."""

    sender_data_secret: bytes
    exporter_secret: bytes
    epoch_authenticator: bytes
    external_secret: bytes
    confirmation_key: bytes
    membership_key: bytes
    resumption_psk: bytes
    init_secret: bytes

    def encode(self, w: Writer) -> None:
        for v in (self.sender_data_secret, self.exporter_secret, self.epoch_authenticator,
                  self.external_secret, self.confirmation_key, self.membership_key,
                  self.resumption_psk, self.init_secret):
            w.opaque(v)

    @classmethod
    def decode(cls, r: Reader) -> EpochKeys:
        return cls(*(r.opaque() for _ in range(8)))


@dataclass(frozen=True, slots=True)
class PendingProposal:
    """A proposal received (or sent) in this epoch, for commits by reference."""

    ref: bytes
    proposal: Proposal
    sender: Sender

    def encode(self, w: Writer) -> None:
        w.opaque(self.ref)
        encode_proposal(w, self.proposal)
        self.sender.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> PendingProposal:
        return cls(r.opaque(), decode_proposal(r), Sender.decode(r))


@dataclass(frozen=True, slots=True)
class PastEpoch:
    """What is kept of an earlier epoch to decrypt late application messages:
    its context, secret tree and the members of that epoch (a leaf may hold
    someone else now)."""

    context: GroupContext
    secret_tree: SecretTree
    sender_data_secret: bytes
    members: tuple[tuple[int, bytes, Credential], ...]  # (leaf, signature key, credential)

    def member(self, leaf: int) -> tuple[bytes, Credential] | None:
        for i, key, cred in self.members:
            if i == leaf:
                return key, cred
        return None

    def encode(self, w: Writer) -> None:
        self.context.encode(w)
        self.secret_tree.encode(w)
        w.opaque(self.sender_data_secret)

        def item(w2: Writer, m: tuple[int, bytes, Credential]) -> None:
            w2.u32(m[0])
            w2.opaque(m[1])
            m[2].encode(w2)

        w.vector(self.members, item)

    @classmethod
    def decode(cls, cs: CipherSuite, r: Reader) -> PastEpoch:
        ctx = GroupContext.decode(r)
        st = SecretTree.decode(cs, r)
        sds = r.opaque()

        def item(r2: Reader) -> tuple[int, bytes, Credential]:
            return r2.u32(), r2.opaque(), Credential.decode(r2)

        return cls(ctx, st, sds, tuple(r.vector(item)))


@dataclass(frozen=True, slots=True)
class PendingCommit:
    """A commit we created, waiting for the delivery service's verdict."""

    message: bytes  # the serialized MLSMessage we sent
    next_state: GroupState


@dataclass(frozen=True, slots=True)
class GroupState:
    cs: CipherSuite
    context: GroupContext
    tree: RatchetTree
    private: TreeKemPrivate
    signature_priv: bytes
    interim_transcript_hash: bytes
    keys: EpochKeys
    secret_tree: SecretTree
    confirmation_tag: bytes
    proposals: tuple[PendingProposal, ...] = ()
    # Private keys of our own Update proposals, by proposal ref.
    update_keys: tuple[tuple[bytes, bytes], ...] = ()
    past_epochs: tuple[PastEpoch, ...] = ()
    resumption_psks: tuple[tuple[int, bytes], ...] = ()  # (epoch, resumption_psk)
    status: Status = Status.ACTIVE
    reinit: ReInit | None = None
    pending_commit: PendingCommit | None = None
    # Hash of the last commit of ours that was merged, to recognise its echo.
    last_own_commit: bytes = b""

    def evolve(self, **changes: Any) -> GroupState:
        """``dataclasses.replace(self, **changes)`` at a quarter of its cost:
        every application message and commit makes a new state (§6.3, §12.4),
        and ``replace`` inspects the dataclass's fields on each call."""
        values: list[Any] = list(_STATE_GET(self))
        for name, value in changes.items():
            index = _STATE_INDEX.get(name)
            if index is None:
                raise TypeError(f"GroupState has no field {name!r}")
            values[index] = value
        return GroupState(*values)

    @property
    def epoch(self) -> int:
        return self.context.epoch

    @property
    def leaf_index(self) -> int:
        return self.private.leaf_index

    # -- serialization ------------------------------------------------------------
    def encode(self, w: Writer) -> None:
        w.u16(self.cs.id)
        self.context.encode(w)
        w.opaque(self.tree.serialize())
        self.private.encode(w)
        w.opaque(self.signature_priv)
        w.opaque(self.interim_transcript_hash)
        self.keys.encode(w)
        self.secret_tree.encode(w)
        w.opaque(self.confirmation_tag)
        w.vector(self.proposals, lambda w2, p: p.encode(w2))

        def pair(w2: Writer, kv: tuple[bytes, bytes]) -> None:
            w2.opaque(kv[0])
            w2.opaque(kv[1])

        def epoch_pair(w2: Writer, kv: tuple[int, bytes]) -> None:
            w2.u64(kv[0])
            w2.opaque(kv[1])

        w.vector(self.update_keys, pair)
        w.vector(self.past_epochs, lambda w2, p: p.encode(w2))
        w.vector(self.resumption_psks, epoch_pair)
        w.u8(self.status)

        def reinit(w2: Writer, p: ReInit) -> None:
            w2.u16(ProposalType.REINIT)
            p.encode(w2)

        def pending(w2: Writer, pc: PendingCommit) -> None:
            w2.opaque(pc.message)
            pc.next_state.encode(w2)

        w.optional(self.reinit, reinit)
        w.optional(self.pending_commit, pending)
        w.opaque(self.last_own_commit)

    @classmethod
    def decode(cls, provider: CryptoProvider, r: Reader) -> GroupState:
        cs = CipherSuite(r.u16(), provider)
        context = GroupContext.decode(r)
        tree = RatchetTree.decode(cs, r.opaque())
        private = TreeKemPrivate.decode(r)
        signature_priv = r.opaque()
        interim = r.opaque()
        keys = EpochKeys.decode(r)
        secret_tree = SecretTree.decode(cs, r)
        confirmation_tag = r.opaque()
        proposals = tuple(r.vector(PendingProposal.decode))

        def pair(r2: Reader) -> tuple[bytes, bytes]:
            return r2.opaque(), r2.opaque()

        def epoch_pair(r2: Reader) -> tuple[int, bytes]:
            return r2.u64(), r2.opaque()

        update_keys = tuple(r.vector(pair))
        past = tuple(r.vector(lambda r2: PastEpoch.decode(cs, r2)))
        psks = tuple(r.vector(epoch_pair))
        st = r.u8()
        try:
            status = Status(st)
        except ValueError:
            raise DecodeError(f"unknown group status {st}") from None

        def reinit(r2: Reader) -> ReInit:
            if r2.u16() != ProposalType.REINIT:
                raise DecodeError("stored ReInit has the wrong proposal type")
            return ReInit.decode(r2)

        reinit_p = r.optional(reinit)
        pending = r.optional(lambda r2: PendingCommit(r2.opaque(), cls.decode(provider, r2)))
        last_own = r.opaque()
        return cls(cs, context, tree, private, signature_priv, interim, keys, secret_tree,
                   confirmation_tag, proposals, update_keys, past, psks, status, reinit_p, pending,
                   last_own)

    def to_bytes(self) -> bytes:
        w = Writer()
        w.write(STATE_MAGIC)
        w.u16(STATE_VERSION)
        self.encode(w)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, provider: CryptoProvider, data: bytes) -> GroupState:
        r = Reader(bytes(data))
        if r.read(4) != STATE_MAGIC:
            raise DecodeError("not an exported MLS group state")
        version = r.u16()
        if version != STATE_VERSION:
            raise DecodeError(f"unsupported group state version {version}")
        state = cls.decode(provider, r)
        r.finish("group state")
        return state


# Read-only: GroupState's fields in __init__ order, for GroupState.evolve.
_STATE_FIELDS = tuple(f.name for f in fields(GroupState))
_STATE_GET = attrgetter(*_STATE_FIELDS)
_STATE_INDEX = {name: i for i, name in enumerate(_STATE_FIELDS)}
