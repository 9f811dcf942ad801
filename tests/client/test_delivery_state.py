"""Delivery state that tells the truth (issue 11 §3), against the real delivery
service: "sending" until the server accepted a line, then "sent"; "failed" with a
reason when it was refused, the epoch moved on or the network failed, and a retry
that never delivers a line twice; an undecryptable message becomes a system line
naming its sender."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from corecrypto.chat import FAILED, SENDING, SENT, b64
from corecrypto.messenger import Messenger, MessengerError
from corecrypto.transport import (
    MemoryStore,
    Response,
    Transport,
    TransportError,
    WebSocketConnection,
)

from .conftest import People, conversation, eventually, system_lines, texts

pytestmark = pytest.mark.asyncio


class FlakyNetwork:
    """The real transport, except that the next message post can be lost on the
    way to the server ("request") or on the way back ("response")."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.lose: str | None = None
        self.before_post: Callable[[], None] | None = None  # e.g. a crash snapshot

    async def request(self, method: str, path: str, *, json: Any = None,
                      token: str | None = None) -> Response:
        lose, self.lose = (self.lose, None) if path == "/api/mls/messages/group" else (None,
                                                                                      self.lose)
        if path == "/api/mls/messages/group" and self.before_post is not None:
            hook, self.before_post = self.before_post, None
            hook()
        if lose == "request":
            raise TransportError("network down")
        r = await self.inner.request(method, path, json=json, token=token)
        if lose == "response":
            raise TransportError("connection reset")
        return r

    async def websocket(self, path: str) -> WebSocketConnection:
        return await self.inner.websocket(path)


async def pair(people: People, name: str) -> tuple[Messenger, Messenger, bytes, FlakyNetwork]:
    net = FlakyNetwork(people.transport())
    alice = await people("alice", transport=net)
    bob = await people("bob")
    return alice, bob, await conversation(alice, name, bob), net


def states(m: Messenger, gid: bytes) -> list[str]:
    return [x.state for x in m.conversations[gid].messages if x.kind == "text" and x.own]


async def test_sending_then_sent_with_events(people: People) -> None:
    alice, bob, gid, _ = await pair(people, "States")
    seen: list[tuple[str, str]] = []
    alice.on_event(lambda kind, d: seen.append((kind, d["message"]["state"] if kind == "message"
                                                else d.get("state", ""))))
    msg = await alice.send_text(gid, "hello")
    assert msg.state == SENT and msg.seq is not None
    assert ("message", SENDING) in seen and ("message-state", SENT) in seen
    assert seen.index(("message", SENDING)) < seen.index(("message-state", SENT))
    await eventually(lambda: texts(bob, gid) == ["hello"])


async def test_a_line_sent_in_a_stale_epoch_fails_and_retry_delivers_it_once(
        people: People) -> None:
    alice, bob, gid, _ = await pair(people, "Stale")
    await alice.stop()  # alice is away while bob moves the group 4 epochs on
    for _ in range(4):
        await bob.self_update(gid)
    msg = await alice.send_text(gid, "from the past")
    assert msg.state == FAILED and "moved on" in msg.reason
    assert states(alice, gid) == [FAILED]
    await alice.retry(gid, msg.local_id)
    assert msg.state == SENT
    await eventually(lambda: texts(bob, gid) == ["from the past"])
    bob_epoch = bob.core_.epoch(gid)
    assert alice.core_.epoch(gid) == bob_epoch
    # The state survives a reload as it is.
    again = await Messenger.load(alice.transport, alice.store)
    assert again is not None and states(again, gid) == [SENT]


async def test_a_refused_line_fails_with_the_reason(people: People) -> None:
    alice, bob, gid, _ = await pair(people, "Refused")
    await alice.stop()  # alice is away: bob removes her meanwhile
    await bob.remove_member(gid, alice.user_id)
    msg = await alice.send_text(gid, "am I still here?")
    assert msg.state == FAILED and msg.reason.startswith("refused by the server: ")
    # Catching up, alice learns why; her line stays failed and cannot be retried.
    await alice.sync()
    assert not alice.conversations[gid].active
    assert msg.state == FAILED
    with pytest.raises(MessengerError):
        await alice.retry(gid, msg.local_id)


async def test_network_failures_never_show_sent_wrongly_nor_deliver_twice(
        people: People) -> None:
    alice, bob, gid, net = await pair(people, "Flaky")
    # Lost on the way out: failed; the retry re-sends the same bytes.
    net.lose = "request"
    first = await alice.send_text(gid, "first")
    assert first.state == FAILED and "reach the server" in first.reason
    await alice.retry(gid, first.local_id)
    assert first.state == SENT
    # Lost on the way back: the server has it. It turns "sent" when its echo
    # arrives, and a retry does not deliver it again.
    net.lose = "response"
    second = await alice.send_text(gid, "second")
    await eventually(lambda: second.state == SENT, what="the echo marks it sent")
    await alice.retry(gid, second.local_id)
    await alice.send_text(gid, "third")
    await eventually(lambda: texts(bob, gid)[-1:] == ["third"])
    assert texts(bob, gid) == ["first", "second", "third"]


async def test_an_undecryptable_message_is_a_system_line_naming_the_sender(
        people: People) -> None:
    """Two writers on one device state (two tabs, before issue 11 §1) reuse a sender
    generation: the receiver says who sent what it could not read."""
    alice, bob, gid, _ = await pair(people, "Replay")
    core = alice.core_
    saved = core.export_group_state(gid)
    await alice.send_text(gid, "first tab")
    core.import_group_state(saved)  # the second tab's stale copy
    ct = core.encrypt_message(gid, json.dumps({"v": 1, "type": "text",
                                               "text": "second tab"}).encode())
    r = await alice.transport.request("POST", "/api/mls/messages/group",
                                      json={"message": b64(ct)}, token=alice.token)
    assert r.status == 201
    await eventually(lambda: any("could not be decrypted" in t
                                 for t in system_lines(bob, gid)))
    line = next(t for t in system_lines(bob, gid) if "could not be decrypted" in t)
    assert line == f"A message from {alice.user_id} could not be decrypted."
    assert "Error" not in line
    assert texts(bob, gid) == ["first tab"]



async def test_a_commit_whose_answer_was_lost_is_merged_from_the_stream(
        people: People) -> None:
    alice, bob, gid, net = await pair(people, "Lost commit")
    net.lose = "response"
    with pytest.raises(TransportError):
        await alice.self_update(gid)
    assert not alice.core_.has_pending_commit(gid)  # the stream said it was accepted
    await eventually(lambda: bob.core_.epoch(gid) == alice.core_.epoch(gid))
    assert bob.core_.epoch_authenticator(gid) == alice.core_.epoch_authenticator(gid)
    await alice.send_text(gid, "same epoch")
    await eventually(lambda: texts(bob, gid) == ["same epoch"])


async def test_a_crash_while_a_commit_is_in_flight_recovers_from_the_stream(
        people: People) -> None:
    """The pending commit is saved before it leaves: after a crash, its echo
    finds it and merges it (else the device could never follow its own commit)."""
    alice, bob, gid, net = await pair(people, "Crash commit")
    crashed = MemoryStore()

    def crash() -> None:
        assert isinstance(alice.store, MemoryStore)
        crashed.records = dict(alice.store.records)

    net.before_post = crash
    await alice.self_update(gid)
    await alice.stop()
    again = await Messenger.load(alice.transport, crashed)
    assert again is not None
    people.made.append(again)
    assert again.core_.has_pending_commit(gid)
    await again.sync()
    assert not again.core_.has_pending_commit(gid)
    assert again.core_.epoch_authenticator(gid) == alice.core_.epoch_authenticator(gid)
    again.start()
    await again.send_text(gid, "after the crash")
    await eventually(lambda: texts(bob, gid) == ["after the crash"])
