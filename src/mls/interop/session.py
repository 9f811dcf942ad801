"""The operations of the MLS working group's ``MLSClient`` service over this
library, in plain Python values (bytes and ints in, bytes and ints out).

:mod:`mls.interop.service` maps the gRPC messages onto these methods. State,
KeyPackage, reinit and signer handles are small integers, as in
``mls_client.proto``; every method either succeeds or raises and leaves the
handle it was given as it was (the library's groups are transactional).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from ..crypto import SUITES, CipherSuite, CryptoProvider, default_provider
from ..errors import DecodeError, StateError, ValidationError
from ..extensions import (
    Extension,
    ExtensionType,
    ExternalSender,
    decode_external_senders,
    encode_external_senders,
)
from ..group import (
    ApplicationMessage,
    CommitMessage,
    Group,
    GroupConfig,
    KeyPackageBundle,
    OwnMessage,
    ProposalMessage,
    Signer,
    create_key_package,
    join_external,
    join_from_welcome,
)
from ..group.base import read_ratchet_tree_ext
from ..group.external import external_proposal, new_member_add_proposal
from ..group_info import GroupInfo
from ..key_package import KeyPackage
from ..leaf_node import PROTOCOL_VERSION_MLS10
from ..message import MLSMessage
from ..proposals import (
    Add,
    GroupContextExtensions,
    PreSharedKey,
    Proposal,
    ReInit,
    Remove,
)
from ..psk import PreSharedKeyID, ResumptionPSKUsage
from ..ratchet_tree import RatchetTree

NAME = "intellacc-mls (Python, RFC 9420)"

T = TypeVar("T")


class UnknownHandle(LookupError):
    """A state, transaction, reinit or signer id this client never issued (or freed)."""


@dataclass(frozen=True)
class ProposalSpec:
    """A ``ProposalDescription`` of the proto: what to propose, by value.

    ``kind`` is one of add, remove, externalPSK, resumptionPSK,
    groupContextExtensions, reinit (the proto's names), or update (our own
    Update proposal, for :meth:`InteropSession.propose`).
    """

    kind: str
    key_package: bytes = b""
    removed_id: bytes = b""
    psk_id: bytes = b""
    epoch_id: int = 0
    extensions: tuple[Extension, ...] = ()
    group_id: bytes = b""
    cipher_suite: int = 0


@dataclass(frozen=True)
class Joined:
    state_id: int
    epoch_authenticator: bytes


@dataclass(frozen=True)
class Committed:
    commit: bytes
    welcome: bytes
    ratchet_tree: bytes


@dataclass(frozen=True)
class ReInitStarted:
    reinit_id: int
    key_package: bytes
    epoch_authenticator: bytes


@dataclass(frozen=True)
class Subgroup:
    state_id: int
    welcome: bytes
    ratchet_tree: bytes
    epoch_authenticator: bytes


@dataclass(frozen=True)
class NewKeyPackage:
    transaction_id: int
    message: bytes  # the KeyPackage (or the new member's Add proposal) as an MLSMessage
    init_priv: bytes
    encryption_priv: bytes
    signature_priv: bytes


@dataclass
class _Member:
    group: Group
    signer: Signer
    psks: dict[bytes, bytes]


@dataclass
class _Pending:
    """A KeyPackage waiting for its Welcome."""

    bundle: KeyPackageBundle
    signer: Signer
    psks: dict[bytes, bytes] = field(default_factory=dict)


@dataclass
class _ReInit:
    """A member of a reinitialized group, with its KeyPackage for the new group (§11.2)."""

    old: _Member
    reinit: ReInit
    pending: _Pending


def _key_package(data: bytes) -> KeyPackage:
    """A KeyPackage sent as an MLSMessage (as the interop harness does) or bare."""
    try:
        msg = MLSMessage.deserialize(data)
    except DecodeError:
        return KeyPackage.deserialize(data)
    if not isinstance(msg.body, KeyPackage):
        raise ValidationError(f"expected a KeyPackage, got {msg.wire_format.name}")
    return msg.body


def _group_info(data: bytes) -> GroupInfo:
    msg = MLSMessage.deserialize(data)
    if not isinstance(msg.body, GroupInfo):
        raise ValidationError(f"expected a GroupInfo, got {msg.wire_format.name}")
    return msg.body


def _leaf_of(tree: RatchetTree, identity: bytes) -> int:
    found = [i for i, leaf in tree.leaves() if leaf.credential.identity == identity]
    if len(found) != 1:
        raise ValidationError(f"{len(found)} members have identity {identity!r}")
    return found[0]


class InteropSession:
    """Everything one ``MLSClient`` endpoint holds: groups, pending KeyPackages,
    reinitializations and external signers, by id. Thread-safe."""

    def __init__(self, provider: CryptoProvider | None = None,
                 suites: Sequence[int] | None = None) -> None:
        self.provider = provider or default_provider()
        self.suites = tuple(sorted(suites if suites is not None else SUITES))
        self._lock = threading.Lock()
        self._next_id = 1
        self._members: dict[int, _Member] = {}
        self._pending: dict[int, _Pending] = {}
        self._reinits: dict[int, _ReInit] = {}
        self._signers: dict[int, Signer] = {}

    # -- bookkeeping ---------------------------------------------------------------
    def locked(self, fn: Callable[[], T]) -> T:
        """Run one operation under the session lock (gRPC serves from a thread pool)."""
        with self._lock:
            return fn()

    def _new_id(self) -> int:
        i = self._next_id
        self._next_id += 1
        return i

    @staticmethod
    def _get(table: dict[int, T], ident: int, what: str) -> T:
        try:
            return table[ident]
        except KeyError:
            raise UnknownHandle(f"unknown {what} id {ident}") from None

    def _suite(self, suite: int) -> CipherSuite:
        if suite not in self.suites:
            raise ValidationError(f"cipher suite {suite} is not supported here")
        return CipherSuite(suite, self.provider)

    def _config(self, encrypt: bool, psks: dict[bytes, bytes],
                resumption: dict[tuple[bytes, int], bytes] | None = None) -> GroupConfig:
        return GroupConfig(handshake_as_private=encrypt, psks=psks,
                           resumption_psks=resumption or {})

    def _store_member(self, m: _Member) -> int:
        i = self._new_id()
        self._members[i] = m
        return i

    def _member(self, state_id: int) -> _Member:
        return self._get(self._members, state_id, "state")

    # -- becoming a member ---------------------------------------------------------------
    def create_group(self, group_id: bytes, suite: int, encrypt: bool, identity: bytes) -> int:
        cs = self._suite(suite)
        signer = Signer.generate(cs, identity)
        psks: dict[bytes, bytes] = {}
        group = Group.create(self.provider, suite, group_id, signer,
                             config=self._config(encrypt, psks))
        return self._store_member(_Member(group, signer, psks))

    def _new_pending(self, cs: CipherSuite, identity: bytes) -> _Pending:
        signer = Signer.generate(cs, identity)
        return _Pending(create_key_package(cs, signer), signer)

    def create_key_package(self, suite: int, identity: bytes) -> NewKeyPackage:
        pending = self._new_pending(self._suite(suite), identity)
        tid = self._new_id()
        self._pending[tid] = pending
        b = pending.bundle
        return NewKeyPackage(tid, MLSMessage.wrap(b.key_package).serialize(), b.init_priv,
                             b.encryption_priv, b.signature_priv)

    def join_group(self, transaction_id: int, welcome: bytes, encrypt: bool,
                   ratchet_tree: bytes) -> Joined:
        p = self._get(self._pending, transaction_id, "transaction")
        group = join_from_welcome(self.provider, welcome, p.bundle,
                                  ratchet_tree=ratchet_tree or None,
                                  config=self._config(encrypt, p.psks))
        sid = self._store_member(_Member(group, p.signer, p.psks))
        return Joined(sid, group.epoch_authenticator)

    def external_join(self, group_info: bytes, ratchet_tree: bytes, encrypt: bool,
                      identity: bytes, remove_prior: bool,
                      psks: Sequence[tuple[bytes, bytes]]) -> tuple[Joined, bytes]:
        gi = _group_info(group_info)
        cs = self._suite(gi.group_context.cipher_suite)
        prior = None
        if remove_prior:
            tree = read_ratchet_tree_ext(cs, gi, ratchet_tree or None)
            prior = _leaf_of(tree, identity)
        store = dict(psks)
        ids = [PreSharedKeyID.external(pid, cs.random(cs.hash_length)) for pid, _ in psks]
        signer = Signer.generate(cs, identity)
        joined = join_external(self.provider, group_info, signer,
                               ratchet_tree=ratchet_tree or None, remove_prior=prior,
                               config=self._config(encrypt, store), psks=ids)
        sid = self._store_member(_Member(joined.group, signer, store))
        return Joined(sid, joined.group.epoch_authenticator), joined.commit

    # -- reading a group ---------------------------------------------------------------------
    def group_info(self, state_id: int, external_tree: bool) -> tuple[bytes, bytes]:
        g = self._member(state_id).group
        gi = g.group_info(with_ratchet_tree=not external_tree)
        return gi, (g.tree.serialize() if external_tree else b"")

    def state_auth(self, state_id: int) -> bytes:
        return self._member(state_id).group.epoch_authenticator

    def export(self, state_id: int, label: str, context: bytes, length: int) -> bytes:
        return self._member(state_id).group.export_secret(label.encode(), context, length)

    def protect(self, state_id: int, authenticated_data: bytes, plaintext: bytes) -> bytes:
        return self._member(state_id).group.encrypt(plaintext, authenticated_data)

    def unprotect(self, state_id: int, ciphertext: bytes) -> tuple[bytes, bytes]:
        result = self._member(state_id).group.process(ciphertext)
        if not isinstance(result, ApplicationMessage):
            raise ValidationError(f"expected application data, got {type(result).__name__}")
        return result.authenticated_data, result.data

    def store_psk(self, ident: int, psk_id: bytes, secret: bytes) -> None:
        holder = self._members.get(ident) or self._pending.get(ident)
        if holder is None:
            raise UnknownHandle(f"unknown state or transaction id {ident}")
        holder.psks[psk_id] = secret

    # -- proposals -------------------------------------------------------------------------------
    def _proposal(self, cs: CipherSuite, spec: ProposalSpec, group_id: bytes,
                  tree: Callable[[], RatchetTree]) -> Proposal:
        kind = spec.kind
        if kind == "add":
            return Add(_key_package(spec.key_package))
        if kind == "remove":
            return Remove(_leaf_of(tree(), spec.removed_id))
        if kind == "externalPSK":
            return PreSharedKey(PreSharedKeyID.external(spec.psk_id, cs.random(cs.hash_length)))
        if kind == "resumptionPSK":
            return PreSharedKey(PreSharedKeyID.resumption(
                ResumptionPSKUsage.APPLICATION, group_id, spec.epoch_id,
                cs.random(cs.hash_length)))
        if kind == "groupContextExtensions":
            return GroupContextExtensions(spec.extensions)
        if kind == "reinit":
            return ReInit(spec.group_id, PROTOCOL_VERSION_MLS10, spec.cipher_suite,
                          spec.extensions)
        raise ValidationError(f"unknown proposal type {kind!r}")

    def propose(self, state_id: int, spec: ProposalSpec) -> bytes:
        m = self._member(state_id)
        g = m.group
        if spec.kind == "update":
            return g.propose_update()
        return g.propose(self._proposal(g.cipher_suite, spec, g.group_id, lambda: g.tree))

    def add_external_signer(self, state_id: int, external_sender: bytes) -> bytes:
        """A GroupContextExtensions proposal appending one external sender (§12.1.8.1)."""
        g = self._member(state_id).group
        new = ExternalSender.deserialize(external_sender)
        exts = list(g.context.extensions)
        for i, e in enumerate(exts):
            if e.extension_type == ExtensionType.EXTERNAL_SENDERS:
                senders = (*decode_external_senders(e.extension_data), new)
                exts[i] = Extension(ExtensionType.EXTERNAL_SENDERS,
                                    encode_external_senders(senders))
                break
        else:
            exts.append(Extension(ExtensionType.EXTERNAL_SENDERS,
                                  encode_external_senders((new,))))
        return g.propose_group_context_extensions(exts)

    # -- commits ---------------------------------------------------------------------------------
    @staticmethod
    def _take_proposals(g: Group, proposals: Sequence[bytes]) -> None:
        for raw in proposals:
            result = g.process(raw)
            if not isinstance(result, ProposalMessage | OwnMessage):
                raise ValidationError(f"expected a proposal, got {type(result).__name__}")

    def commit(self, state_id: int, by_reference: Sequence[bytes],
               by_value: Sequence[ProposalSpec], force_path: bool,
               external_tree: bool) -> Committed:
        m = self._member(state_id)
        g = m.group
        self._take_proposals(g, by_reference)
        values = [self._proposal(g.cipher_suite, s, g.group_id, lambda: g.tree)
                  for s in by_value]
        out = g.commit(values, force_path=force_path, with_ratchet_tree=not external_tree)
        tree = b""
        pc = g.state.pending_commit
        if external_tree and pc is not None:
            tree = pc.next_state.tree.serialize()
        return Committed(out.commit, out.welcome or b"", tree)

    def handle_commit(self, state_id: int, proposals: Sequence[bytes], commit: bytes) -> bytes:
        g = self._member(state_id).group
        self._take_proposals(g, proposals)
        result = g.process(commit)
        if not isinstance(result, CommitMessage):
            raise ValidationError(f"expected a commit, got {type(result).__name__}")
        if result.removed_self:
            raise StateError("this member was removed by the commit")
        return g.epoch_authenticator

    def handle_pending_commit(self, state_id: int) -> bytes:
        g = self._member(state_id).group
        g.merge_pending_commit()
        return g.epoch_authenticator

    # -- reinitialization (§11.2) ------------------------------------------------------------------
    def _start_reinit(self, m: _Member) -> ReInitStarted:
        reinit = m.group.pending_reinit
        if reinit is None:
            raise ValidationError("the commit did not reinitialize the group (§11.2)")
        cs = self._suite(reinit.cipher_suite)
        pending = self._new_pending(cs, m.signer.credential.identity)
        rid = self._new_id()
        self._reinits[rid] = _ReInit(m, reinit, pending)
        return ReInitStarted(rid, MLSMessage.wrap(pending.bundle.key_package).serialize(),
                             m.group.epoch_authenticator)

    def handle_pending_reinit_commit(self, state_id: int) -> ReInitStarted:
        self.handle_pending_commit(state_id)
        return self._start_reinit(self._member(state_id))

    def handle_reinit_commit(self, state_id: int, proposals: Sequence[bytes],
                             commit: bytes) -> ReInitStarted:
        self.handle_commit(state_id, proposals, commit)
        return self._start_reinit(self._member(state_id))

    def _subgroup(self, old: _Member, usage: ResumptionPSKUsage, suite: int, group_id: bytes,
                  extensions: Sequence[Extension], signer: Signer,
                  key_packages: Sequence[bytes], force_path: bool,
                  external_tree: bool) -> Subgroup:
        """A new group whose first commit adds ``key_packages`` and binds it to
        ``old`` with a resumption PSK of the given usage (§11.2, §11.3)."""
        og = old.group
        pid, value = og.resumption_psk(usage)
        psks: dict[bytes, bytes] = {}
        config = self._config(og.config.handshake_as_private, psks,
                              {(og.group_id, og.epoch): value})
        group = Group.create(self.provider, suite, group_id, signer,
                             extensions=tuple(extensions), config=config)
        adds: list[Proposal] = [Add(_key_package(kp)) for kp in key_packages]
        out = group.commit([*adds, PreSharedKey(pid)], force_path=force_path,
                           with_ratchet_tree=not external_tree)
        group.merge_pending_commit()
        sid = self._store_member(_Member(group, signer, psks))
        return Subgroup(sid, out.welcome or b"", group.tree.serialize() if external_tree else b"",
                        group.epoch_authenticator)

    def reinit_welcome(self, reinit_id: int, key_packages: Sequence[bytes], force_path: bool,
                       external_tree: bool) -> Subgroup:
        r = self._get(self._reinits, reinit_id, "reinit")
        ri = r.reinit
        return self._subgroup(r.old, ResumptionPSKUsage.REINIT, ri.cipher_suite, ri.group_id,
                              ri.extensions, r.pending.signer, key_packages, force_path,
                              external_tree)

    @staticmethod
    def _resumption(m: _Member) -> dict[tuple[bytes, int], bytes]:
        g = m.group
        table = {(g.group_id, e): v for e, v in g.state.resumption_psks}
        table[(g.group_id, g.epoch)] = g.state.keys.resumption_psk
        return table

    def handle_reinit_welcome(self, reinit_id: int, welcome: bytes,
                              ratchet_tree: bytes) -> Joined:
        r = self._get(self._reinits, reinit_id, "reinit")
        p = r.pending
        group = join_from_welcome(
            self.provider, welcome, p.bundle, ratchet_tree=ratchet_tree or None,
            config=self._config(r.old.group.config.handshake_as_private, p.psks,
                                self._resumption(r.old)))
        ri = r.reinit
        ctx = group.context
        if (ctx.group_id, ctx.cipher_suite, ctx.extensions) != (
                ri.group_id, ri.cipher_suite, ri.extensions):
            raise ValidationError("the new group does not match the ReInit proposal (§11.2)")
        sid = self._store_member(_Member(group, p.signer, p.psks))
        return Joined(sid, group.epoch_authenticator)

    # -- branching (§11.3) ---------------------------------------------------------------------
    def create_branch(self, state_id: int, group_id: bytes, extensions: Sequence[Extension],
                      key_packages: Sequence[bytes], force_path: bool,
                      external_tree: bool) -> Subgroup:
        m = self._member(state_id)
        return self._subgroup(m, ResumptionPSKUsage.BRANCH, m.group.cipher_suite.id, group_id,
                              extensions, m.signer, key_packages, force_path, external_tree)

    def handle_branch(self, state_id: int, transaction_id: int, welcome: bytes,
                      ratchet_tree: bytes) -> Joined:
        m = self._member(state_id)
        p = self._get(self._pending, transaction_id, "transaction")
        group = join_from_welcome(
            self.provider, welcome, p.bundle, ratchet_tree=ratchet_tree or None,
            config=self._config(m.group.config.handshake_as_private, p.psks,
                                self._resumption(m)))
        sid = self._store_member(_Member(group, p.signer, p.psks))
        return Joined(sid, group.epoch_authenticator)

    # -- external proposals (§12.1.8) ----------------------------------------------------------
    def new_member_add_proposal(self, group_info: bytes, identity: bytes) -> NewKeyPackage:
        ctx = _group_info(group_info).group_context
        cs = self._suite(ctx.cipher_suite)
        pending = self._new_pending(cs, identity)
        proposal = new_member_add_proposal(cs, ctx, pending.bundle)
        tid = self._new_id()
        self._pending[tid] = pending
        b = pending.bundle
        return NewKeyPackage(tid, proposal, b.init_priv, b.encryption_priv, b.signature_priv)

    def create_external_signer(self, suite: int, identity: bytes) -> tuple[int, bytes]:
        signer = Signer.generate(self._suite(suite), identity)
        sid = self._new_id()
        self._signers[sid] = signer
        return sid, ExternalSender(signer.signature_pub, signer.credential).serialize()

    def external_signer_proposal(self, signer_id: int, group_info: bytes, ratchet_tree: bytes,
                                 spec: ProposalSpec) -> bytes:
        signer = self._get(self._signers, signer_id, "signer")
        gi = _group_info(group_info)
        ctx = gi.group_context
        cs = self._suite(ctx.cipher_suite)
        proposal = self._proposal(cs, spec, ctx.group_id,
                                  lambda: read_ratchet_tree_ext(cs, gi, ratchet_tree or None))
        return external_proposal(cs, ctx, signer, proposal)

    def free(self, state_id: int) -> None:
        self._members.pop(state_id, None)


__all__ = [
    "NAME",
    "Committed",
    "InteropSession",
    "Joined",
    "NewKeyPackage",
    "ProposalSpec",
    "ReInitStarted",
    "Subgroup",
    "UnknownHandle",
]
