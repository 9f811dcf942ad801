"""One run of one scenario script of the MLS working group (``configs/*.json``)
against ``MLSClient`` endpoints: the actions, read as data.

A script is a list of steps; each step names an ``action``, usually an
``actor``, and parameters; steps refer to earlier steps by index (a KeyPackage,
a proposal, a PSK). Composite actions (``fullCommit``, ``externalJoin``,
``reinit``, ``branch``, ...) drive several endpoints and check that everyone
ends with the same epoch authenticator. ``test-config.md`` describes the
format; parameter names are matched ignoring case and underscores, because
the published files spell some of them both ways (``force_path`` and
``forcePath``).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Every action this runner knows.
ACTIONS = (
    "createGroup", "createKeyPackage", "joinGroup", "externalJoin", "installExternalPSK",
    "groupInfo", "addProposal", "updateProposal", "removeProposal", "externalPSKProposal",
    "resumptionPSKProposal", "groupContextExtensionsProposal", "fullCommit", "commit",
    "handleCommit", "handlePendingCommit", "protect", "unprotect", "reinit", "branch",
    "newMemberAddProposal", "addExternalSigner", "externalSignerProposal",
)

RPC_TIMEOUT = 120.0


class Endpoint(Protocol):
    """What a run needs of an ``MLSClient`` endpoint."""

    name: str
    suites: frozenset[int]

    def call(self, rpc: str, **fields: Any) -> Any:
        """The RPC's response; a failed RPC raises :class:`StepError`."""


class StepError(Exception):
    """A step failed: which endpoint, which RPC, and why."""

    def __init__(self, message: str, endpoint: str = "", rpc: str = "") -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.rpc = rpc


def _norm(key: str) -> str:
    return key.replace("_", "").lower()


class Params:
    """A step's parameters, looked up ignoring case and underscores."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = {_norm(k): v for k, v in raw.items()}

    def get(self, key: str, default: Any = None) -> Any:
        return self._raw.get(_norm(key), default)

    def flag(self, key: str) -> bool:
        return bool(self.get(key, False))

    def names(self, key: str) -> list[str]:
        return list(self.get(key) or [])

    def ints(self, key: str) -> list[int]:
        return [int(i) for i in self.get(key) or []]


def script_actors(steps: Iterable[Mapping[str, Any]]) -> list[str]:
    """The actors of a script in order of first appearance."""
    seen: dict[str, None] = {}
    for raw in steps:
        p = Params(raw)
        for key in ("actor", "joiner", "signer", "proposer", "committer", "welcomer"):
            name = p.get(key)
            if name:
                seen.setdefault(name, None)
        for key in ("members", "joiners", "clients"):
            for name in p.names(key):
                seen.setdefault(name, None)
    return list(seen)


def _extensions(items: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """JSON extensions (data in base64, as Go marshals bytes) to proto fields."""
    return [{"extension_type": int(e["extension_type"]),
             "extension_data": base64.b64decode(e.get("extension_data") or "")}
            for e in items or []]


@dataclass
class Run:
    """The state of one run: which endpoint plays which actor, and what the
    steps produced so far."""

    suite: int
    encrypt: bool
    clients: Mapping[str, Endpoint]
    state: dict[str, int] = field(default_factory=dict)
    transaction: dict[str, int] = field(default_factory=dict)
    signer: dict[str, int] = field(default_factory=dict)
    out: dict[int, dict[str, Any]] = field(default_factory=dict)
    rpcs: int = 0

    # -- plumbing ----------------------------------------------------------------------
    def call(self, actor: str, rpc: str, **fields: Any) -> Any:
        ep = self.clients[actor]
        self.rpcs += 1
        try:
            return ep.call(rpc, **fields)
        except StepError as e:
            raise StepError(f"{actor}@{ep.name} {rpc}: {e}", ep.name, rpc) from e

    def output(self, index: int, key: str) -> Any:
        try:
            return self.out[index][key]
        except KeyError:
            raise StepError(f"step {index} produced no {key!r}") from None

    def store(self, index: int, **values: Any) -> None:
        self.out.setdefault(index, {}).update(values)

    def agree(self, who: str, got: bytes, want: bytes) -> None:
        if got != want:
            raise StepError(f"{who}@{self.clients[who].name} disagrees on the epoch "
                            f"authenticator ({got.hex()[:16]}... != {want.hex()[:16]}...)",
                            self.clients[who].name)

    def group_id(self, change: bool) -> bytes:
        gid: bytes = self.output(0, "group_id")
        return gid + b"++" if change else gid

    def change_suite(self) -> None:
        """Move to another suite every endpoint of the run supports (the next one
        up, cyclically, so repeated runs are reproducible)."""
        common = frozenset.intersection(*(ep.suites for ep in self.clients.values()))
        others = sorted(common - {self.suite})
        if not others:
            raise StepError("no other cipher suite is supported by every client")
        self.suite = next((s for s in others if s > self.suite), others[0])

    def proposal_description(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        p = Params(raw)
        kind = p.get("proposalType")
        d: dict[str, Any] = {"proposal_type": str(kind).encode()}
        if kind == "add":
            d["key_package"] = self.output(int(p.get("keyPackage")), "key_package")
        elif kind == "remove":
            d["removed_id"] = str(p.get("removed")).encode()
        elif kind == "externalPSK":
            d["psk_id"] = self.output(int(p.get("pskID")), "psk_id")
        elif kind == "resumptionPSK":
            d["epoch_id"] = int(p.get("epochID"))
        elif kind == "groupContextExtensions":
            d["extensions"] = _extensions(p.get("extensions"))
        elif kind == "reinit":
            d["extensions"] = _extensions(p.get("extensions"))
            if p.flag("changeCipherSuite"):
                self.change_suite()
            d["cipher_suite"] = self.suite
            d["group_id"] = self.group_id(p.flag("changeGroupID"))
        else:
            raise StepError(f"unknown proposal type {kind!r}")
        return d

    # -- the steps ---------------------------------------------------------------------------
    def step(self, index: int, raw: Mapping[str, Any]) -> None:
        action = raw.get("action")
        handler = _HANDLERS.get(str(action))
        if handler is None:
            raise StepError(f"unknown action {action!r}")
        handler(self, index, str(raw.get("actor", "")), Params(raw))

    def _join(self, joiner: str, welcome: bytes, tree: bytes, want: bytes) -> None:
        if joiner not in self.transaction:
            raise StepError(f"{joiner} has no KeyPackage to join with")
        r = self.call(joiner, "JoinGroup", transaction_id=self.transaction[joiner],
                      welcome=welcome, encrypt_handshake=self.encrypt,
                      identity=joiner.encode(), ratchet_tree=tree)
        self.agree(joiner, r.epoch_authenticator, want)
        self.state[joiner] = r.state_id

    def _handle(self, member: str, proposals: list[bytes], commit: bytes, want: bytes) -> None:
        r = self.call(member, "HandleCommit", state_id=self.state[member], proposal=proposals,
                      commit=commit)
        self.agree(member, r.epoch_authenticator, want)
        self.state[member] = r.state_id

    def create_group(self, index: int, actor: str, p: Params) -> None:
        gid = str(uuid.uuid4()).encode()
        r = self.call(actor, "CreateGroup", group_id=gid, cipher_suite=self.suite,
                      encrypt_handshake=self.encrypt, identity=actor.encode())
        self.state[actor] = r.state_id
        self.store(index, group_id=gid)
        members = p.names("members")
        if not members:
            return
        kps = []
        for m in members:
            k = self.call(m, "CreateKeyPackage", cipher_suite=self.suite, identity=m.encode())
            self.transaction[m] = k.transaction_id
            kps.append({"proposal_type": b"add", "key_package": k.key_package})
        c = self.call(actor, "Commit", state_id=self.state[actor], by_value=kps)
        h = self.call(actor, "HandlePendingCommit", state_id=self.state[actor])
        self.state[actor] = h.state_id
        for m in members:
            self._join(m, c.welcome, b"", h.epoch_authenticator)

    def create_key_package(self, index: int, actor: str, p: Params) -> None:
        r = self.call(actor, "CreateKeyPackage", cipher_suite=self.suite, identity=actor.encode())
        self.transaction[actor] = r.transaction_id
        self.store(index, key_package=r.key_package)

    def join_group(self, index: int, actor: str, p: Params) -> None:
        w = int(p.get("welcome"))
        r = self.call(actor, "JoinGroup", transaction_id=self.transaction[actor],
                      welcome=self.output(w, "welcome"), encrypt_handshake=self.encrypt,
                      identity=actor.encode(), ratchet_tree=self.out[w].get("ratchet_tree", b""))
        self.state[actor] = r.state_id

    def external_join(self, index: int, actor: str, p: Params) -> None:
        joiner = str(p.get("joiner"))
        gi = self.call(actor, "GroupInfo", state_id=self.state[actor],
                       external_tree=p.flag("externalTree"))
        psks = [{"psk_id": self.output(i, "psk_id"), "psk_secret": self.output(i, "psk_secret")}
                for i in p.ints("psks")]
        r = self.call(joiner, "ExternalJoin", group_info=gi.group_info,
                      ratchet_tree=gi.ratchet_tree, encrypt_handshake=self.encrypt,
                      identity=joiner.encode(), remove_prior=p.flag("removePrior"), psks=psks)
        self.state[joiner] = r.state_id
        self.store(index, commit=r.commit, epoch_authenticator=r.epoch_authenticator)
        for m in [*p.names("members"), actor]:
            self._handle(m, [], r.commit, r.epoch_authenticator)

    def install_external_psk(self, index: int, actor: str, p: Params) -> None:
        import secrets

        psk_id, psk_secret = secrets.token_bytes(32), secrets.token_bytes(32)
        self.store(index, psk_id=psk_id, psk_secret=psk_secret)
        for c in p.names("clients"):
            ident = self.state.get(c, self.transaction.get(c, 0))
            self.call(c, "StorePSK", state_or_transaction_id=ident, psk_id=psk_id,
                      psk_secret=psk_secret)

    def group_info(self, index: int, actor: str, p: Params) -> None:
        r = self.call(actor, "GroupInfo", state_id=self.state[actor],
                      external_tree=p.flag("externalTree"))
        self.store(index, group_info=r.group_info, ratchet_tree=r.ratchet_tree)

    def _propose(self, index: int, actor: str, rpc: str, **fields: Any) -> None:
        r = self.call(actor, rpc, state_id=self.state[actor], **fields)
        self.store(index, proposal=r.proposal)

    def add_proposal(self, index: int, actor: str, p: Params) -> None:
        self._propose(index, actor, "AddProposal",
                      key_package=self.output(int(p.get("keyPackage")), "key_package"))

    def update_proposal(self, index: int, actor: str, p: Params) -> None:
        self._propose(index, actor, "UpdateProposal")

    def remove_proposal(self, index: int, actor: str, p: Params) -> None:
        self._propose(index, actor, "RemoveProposal", removed_id=str(p.get("removed")).encode())

    def external_psk_proposal(self, index: int, actor: str, p: Params) -> None:
        self._propose(index, actor, "ExternalPSKProposal",
                      psk_id=self.output(int(p.get("pskID")), "psk_id"))

    def resumption_psk_proposal(self, index: int, actor: str, p: Params) -> None:
        self._propose(index, actor, "ResumptionPSKProposal", epoch_id=int(p.get("epochID")))

    def gce_proposal(self, index: int, actor: str, p: Params) -> None:
        self._propose(index, actor, "GroupContextExtensionsProposal",
                      extensions=_extensions(p.get("extensions")))

    def _commit(self, index: int, actor: str, p: Params) -> tuple[Any, list[bytes]]:
        by_ref = [self.output(i, "proposal") for i in p.ints("byReference")]
        by_value = [self.proposal_description(d) for d in p.get("byValue") or []]
        tree = p.flag("externalTree")
        r = self.call(actor, "Commit", state_id=self.state[actor], by_reference=by_ref,
                      by_value=by_value, force_path=p.flag("forcePath"), external_tree=tree)
        self.store(index, commit=r.commit, welcome=r.welcome,
                   ratchet_tree=r.ratchet_tree if tree else b"")
        return r, by_ref

    def commit(self, index: int, actor: str, p: Params) -> None:
        self._commit(index, actor, p)

    def full_commit(self, index: int, actor: str, p: Params) -> None:
        c, by_ref = self._commit(index, actor, p)
        h = self.call(actor, "HandlePendingCommit", state_id=self.state[actor])
        self.state[actor] = h.state_id
        want = h.epoch_authenticator
        self.store(index, epoch_authenticator=want)
        for m in p.names("members"):
            self._handle(m, by_ref, c.commit, want)
        tree = c.ratchet_tree if p.flag("externalTree") else b""
        for j in p.names("joiners"):
            self._join(j, c.welcome, tree, want)

    def handle_commit(self, index: int, actor: str, p: Params) -> None:
        by_ref = [self.output(i, "proposal") for i in p.ints("byReference")]
        r = self.call(actor, "HandleCommit", state_id=self.state[actor], proposal=by_ref,
                      commit=self.output(int(p.get("commit")), "commit"))
        self.state[actor] = r.state_id

    def handle_pending_commit(self, index: int, actor: str, p: Params) -> None:
        r = self.call(actor, "HandlePendingCommit", state_id=self.state[actor])
        self.state[actor] = r.state_id

    def protect(self, index: int, actor: str, p: Params) -> None:
        ad = str(p.get("authenticatedData", "")).encode()
        pt = str(p.get("plaintext", "")).encode()
        r = self.call(actor, "Protect", state_id=self.state[actor], authenticated_data=ad,
                      plaintext=pt)
        self.store(index, ciphertext=r.ciphertext, authenticated_data=ad, plaintext=pt)

    def unprotect(self, index: int, actor: str, p: Params) -> None:
        i = int(p.get("ciphertext"))
        r = self.call(actor, "Unprotect", state_id=self.state[actor],
                      ciphertext=self.output(i, "ciphertext"))
        if (r.authenticated_data, r.plaintext) != (self.output(i, "authenticated_data"),
                                                   self.output(i, "plaintext")):
            raise StepError(f"{actor}@{self.clients[actor].name} decrypted other data",
                            self.clients[actor].name, "Unprotect")

    def reinit(self, index: int, actor: str, p: Params) -> None:
        proposer = p.get("proposer") or ""
        committer, welcomer = str(p.get("committer")), str(p.get("welcomer"))
        everyone = list(dict.fromkeys([*( [proposer] if proposer else []), committer, welcomer,
                                       *p.names("members")]))
        not_committer = [a for a in everyone if a != committer]
        not_welcomer = [a for a in everyone if a != welcomer]
        new_gid = self.group_id(p.flag("changeGroupID"))
        if p.flag("changeCipherSuite"):
            self.change_suite()
        if proposer:
            r = self.call(proposer, "ReInitProposal", state_id=self.state[proposer],
                          cipher_suite=self.suite, group_id=new_gid,
                          extensions=_extensions(p.get("extensions")))
            proposal = r.proposal
        else:
            proposal = self.output(int(p.get("externalReinitProposal")), "proposal")
        c = self.call(committer, "ReInitCommit", state_id=self.state[committer],
                      by_reference=[proposal])
        h = self.call(committer, "HandlePendingReInitCommit", state_id=self.state[committer])
        reinit_ids = {committer: h.reinit_id}
        kps = {committer: h.key_package}
        for m in not_committer:
            r = self.call(m, "HandleReInitCommit", state_id=self.state[m], proposal=[proposal],
                          commit=c.commit)
            self.agree(m, r.epoch_authenticator, h.epoch_authenticator)
            reinit_ids[m], kps[m] = r.reinit_id, r.key_package
        tree = p.flag("externalTree")
        w = self.call(welcomer, "ReInitWelcome", reinit_id=reinit_ids[welcomer],
                      key_package=[kps[m] for m in not_welcomer],
                      force_path=p.flag("forcePath"), external_tree=tree)
        self.state[welcomer] = w.state_id
        for m in not_welcomer:
            j = self.call(m, "HandleReInitWelcome", reinit_id=reinit_ids[m], welcome=w.welcome,
                          ratchet_tree=w.ratchet_tree if tree else b"")
            self.agree(m, j.epoch_authenticator, w.epoch_authenticator)
            self.state[m] = j.state_id

    def branch(self, index: int, actor: str, p: Params) -> None:
        members = p.names("members")
        tx, kps = {}, []
        for m in members:
            k = self.call(m, "CreateKeyPackage", cipher_suite=self.suite, identity=m.encode())
            tx[m] = k.transaction_id
            kps.append(k.key_package)
        tree = p.flag("externalTree")
        b = self.call(actor, "CreateBranch", state_id=self.state[actor],
                      group_id=str(uuid.uuid4()).encode(),
                      extensions=_extensions(p.get("extensions")), key_packages=kps,
                      force_path=p.flag("forcePath"), external_tree=tree)
        self.state[actor] = b.state_id
        for m in members:
            r = self.call(m, "HandleBranch", state_id=self.state[m], transaction_id=tx[m],
                          welcome=b.welcome, ratchet_tree=b.ratchet_tree if tree else b"")
            self.agree(m, r.epoch_authenticator, b.epoch_authenticator)
            self.state[m] = r.state_id

    def new_member_add_proposal(self, index: int, actor: str, p: Params) -> None:
        joiner = str(p.get("joiner"))
        gi = self.call(actor, "GroupInfo", state_id=self.state[actor], external_tree=False)
        r = self.call(joiner, "NewMemberAddProposal", group_info=gi.group_info,
                      identity=joiner.encode())
        self.transaction[joiner] = r.transaction_id
        self.store(index, proposal=r.proposal)

    def add_external_signer(self, index: int, actor: str, p: Params) -> None:
        signer = str(p.get("signer"))
        s = self.call(signer, "CreateExternalSigner", cipher_suite=self.suite,
                      identity=signer.encode())
        self.signer[signer] = s.signer_id
        self._propose(index, actor, "AddExternalSigner", external_sender=s.external_sender)

    def external_signer_proposal(self, index: int, actor: str, p: Params) -> None:
        member = str(p.get("member"))
        gi = self.call(member, "GroupInfo", state_id=self.state[member], external_tree=True)
        desc = self.proposal_description(p.get("description") or {})
        r = self.call(actor, "ExternalSignerProposal", signer_id=self.signer[actor],
                      group_info=gi.group_info, ratchet_tree=gi.ratchet_tree, description=desc)
        self.store(index, proposal=r.proposal)


_HANDLERS: dict[str, Callable[[Run, int, str, Params], None]] = {
    "createGroup": Run.create_group,
    "createKeyPackage": Run.create_key_package,
    "joinGroup": Run.join_group,
    "externalJoin": Run.external_join,
    "installExternalPSK": Run.install_external_psk,
    "groupInfo": Run.group_info,
    "addProposal": Run.add_proposal,
    "updateProposal": Run.update_proposal,
    "removeProposal": Run.remove_proposal,
    "externalPSKProposal": Run.external_psk_proposal,
    "resumptionPSKProposal": Run.resumption_psk_proposal,
    "groupContextExtensionsProposal": Run.gce_proposal,
    "fullCommit": Run.full_commit,
    "commit": Run.commit,
    "handleCommit": Run.handle_commit,
    "handlePendingCommit": Run.handle_pending_commit,
    "protect": Run.protect,
    "unprotect": Run.unprotect,
    "reinit": Run.reinit,
    "branch": Run.branch,
    "newMemberAddProposal": Run.new_member_add_proposal,
    "addExternalSigner": Run.add_external_signer,
    "externalSignerProposal": Run.external_signer_proposal,
}
assert set(_HANDLERS) == set(ACTIONS)
