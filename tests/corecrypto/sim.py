"""A delivery-service model for group simulations: one totally ordered log
per group, first commit of an epoch wins, members read the log in order."""

from __future__ import annotations

from dataclasses import dataclass, field

from corecrypto import (
    ApplicationReceived,
    CommitReceived,
    CoreCrypto,
    OwnMessageEcho,
    ProposalReceived,
)
from mls.framing import ContentType
from mls.message import MLSMessage
from mls.private_message import PrivateMessage
from mls.public_message import PublicMessage

GID = b"sim-group"


def header(message: bytes) -> tuple[int, int]:
    """(epoch, content type) as a delivery service reads them."""
    body = MLSMessage.deserialize(message).body
    if isinstance(body, PublicMessage):
        return body.content.epoch, body.content.content_type
    assert isinstance(body, PrivateMessage)
    return body.epoch, body.content_type


@dataclass
class Entry:
    message: bytes
    epoch: int
    content_type: int
    sender: str
    plaintext: bytes | None = None  # application messages
    members: frozenset[str] = frozenset()  # who was in the group when it was sent


@dataclass
class Sim:
    clients: dict[str, CoreCrypto] = field(default_factory=dict)
    log: list[Entry] = field(default_factory=list)
    cursor: dict[str, int] = field(default_factory=dict)
    epoch: int = 0
    members: set[str] = field(default_factory=set)
    former: dict[str, CoreCrypto] = field(default_factory=dict)
    decrypted: dict[str, list[bytes]] = field(default_factory=dict)
    counter: int = 0

    def new_client(self) -> CoreCrypto:
        self.counter += 1
        c = CoreCrypto.create(f"user{self.counter}", "d1")
        self.clients[c.identity] = c
        return c

    def start(self) -> CoreCrypto:
        c = self.new_client()
        c.create_group(GID)
        self.members = {c.identity}
        self.cursor[c.identity] = 0
        return c

    # -- the delivery service ------------------------------------------------------------
    def post(self, sender: str, message: bytes, plaintext: bytes | None = None) -> bool:
        epoch, ct = header(message)
        if ct == ContentType.COMMIT:
            if epoch != self.epoch:
                return False  # 409: another commit won this epoch
            self.epoch += 1
        elif epoch != self.epoch and ct != ContentType.APPLICATION:
            return False
        self.log.append(Entry(message, epoch, ct, sender, plaintext, frozenset(self.members)))
        return True

    def sync(self, identity: str) -> None:
        """Deliver the log to a member, in order, from its cursor."""
        c = self.clients[identity]
        while self.cursor[identity] < len(self.log):
            e = self.log[self.cursor[identity]]
            self.cursor[identity] += 1
            r = c.process_message(GID, e.message)
            if e.sender == identity:
                assert isinstance(r, OwnMessageEcho | CommitReceived), r
                if isinstance(r, CommitReceived):
                    assert r.own
                continue
            if e.content_type == ContentType.APPLICATION:
                assert isinstance(r, ApplicationReceived)
                assert r.sender == e.sender and r.plaintext == e.plaintext
                self.decrypted.setdefault(identity, []).append(r.plaintext)
            elif e.content_type == ContentType.PROPOSAL:
                assert isinstance(r, ProposalReceived)
            else:
                assert isinstance(r, CommitReceived)
                if r.self_removed:
                    self.cursor.pop(identity)
                    self.former[identity] = self.clients.pop(identity)
                    return

    def sync_all(self) -> None:
        for identity in list(self.clients):
            if identity in self.cursor:
                self.sync(identity)

    # -- operations ---------------------------------------------------------------------
    def commit(self, committer: str, make: str, *args: object) -> bool:
        """Create a commit with ``make`` and let the delivery service decide."""
        c = self.clients[committer]
        self.sync(committer)
        welcome = None
        if make == "add":
            joiner = self.new_client()
            commit, welcome = c.add_member(GID, joiner.generate_key_packages(1)[0])
        elif make == "remove":
            commit = c.remove_member(GID, str(args[0]))
        elif make == "update":
            commit = c.self_update(GID)
        else:
            commit, welcome = c.commit_pending_proposals(GID)
        return self.settle(committer, commit, welcome)

    def settle(self, committer: str, commit: bytes, welcome: bytes | None) -> bool:
        c = self.clients[committer]
        if not self.post(committer, commit):
            c.clear_pending_commit(GID)
            return False
        c.merge_pending_commit(GID)
        self.cursor[committer] = len(self.log)
        self.members = set(c.members(GID))
        if welcome is not None:
            for identity in self.members - set(self.cursor):
                joiner = self.clients[identity]
                joiner.process_welcome(welcome)
                self.cursor[identity] = len(self.log)
        return True

    def send(self, sender: str, text: bytes) -> None:
        self.sync(sender)
        assert self.post(sender, self.clients[sender].encrypt_message(GID, text), text)

    def propose_leave(self, leaver: str) -> None:
        self.sync(leaver)
        assert self.post(leaver, self.clients[leaver].leave_group(GID))
