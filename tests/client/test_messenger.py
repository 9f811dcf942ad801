"""The messaging client against the real delivery service: live delivery,
joins and removals, the 409 conflict flow, leaving, reconnection and restart."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from corecrypto.messenger import Messenger
from corecrypto.transport import MemoryStore
from corecrypto.transport.http import HttpTransport

from .conftest import eventually, texts

pytestmark = pytest.mark.asyncio


async def test_live_group_messaging(people: Callable[[str], Awaitable[Messenger]]) -> None:
    alice, bob, carol = await people("alice"), await people("bob"), await people("carol")
    await eventually(lambda: alice.status == bob.status == carol.status == "online")
    conv = await alice.create_conversation("Plans", [bob.user_id])
    gid = conv.group_id
    await eventually(lambda: gid in bob.conversations and bob.conversations[gid].name == "Plans")
    await alice.send_text(gid, "hello bob")
    await eventually(lambda: texts(bob, gid) == ["hello bob"])
    await bob.send_text(gid, "hi alice")
    await eventually(lambda: texts(alice, gid) == ["hello bob", "hi alice"])
    assert [m.state for m in alice.conversations[gid].messages if m.own] == ["sent"]
    # carol joins later and sees only what follows.
    await alice.add_members(gid, [carol.user_id])
    await eventually(lambda: gid in carol.conversations)
    # bob must have seen the commit first: a message bob sends from the epoch before
    # carol's join is (correctly) invisible to her.
    await eventually(lambda: bob.core_.epoch(gid) == alice.core_.epoch(gid))
    await bob.send_text(gid, "welcome carol")
    await eventually(lambda: texts(carol, gid) == ["welcome carol"])
    # bob is removed and receives nothing more.
    await alice.remove_member(gid, bob.user_id)
    await eventually(lambda: not bob.conversations[gid].active)
    await carol.send_text(gid, "bob cannot read this")
    await eventually(lambda: texts(alice, gid)[-1] == "bob cannot read this")
    # bob fetches everything the service will give him (the message is stored by now,
    # alice has it): only then is its absence meaningful.
    await bob.sync()
    assert "bob cannot read this" not in texts(bob, gid)
    assert sorted(alice.members(gid)) == sorted([alice.identity, carol.identity])
    codes = {alice.group_code(gid), carol.group_code(gid)}
    assert len(codes) == 1


async def test_conflicting_commits_resolve(people: Callable[[str], Awaitable[Messenger]]) -> None:
    alice, bob = await people("alice"), await people("bob")
    conv = await alice.create_conversation("Race", [bob.user_id])
    gid = conv.group_id
    await eventually(lambda: gid in bob.conversations)
    await bob.sync()
    # Both update at once: one wins, the other clears, catches up and retries.
    await asyncio.gather(alice.self_update(gid), bob.self_update(gid))
    await alice.sync()
    await bob.sync()
    assert alice.core_.epoch(gid) == bob.core_.epoch(gid)
    assert alice.core_.epoch_authenticator(gid) == bob.core_.epoch_authenticator(gid)
    await alice.send_text(gid, "still friends")
    await eventually(lambda: texts(bob, gid)[-1:] == ["still friends"])


async def test_leave_is_committed_by_another_member(
        people: Callable[[str], Awaitable[Messenger]]) -> None:
    alice, bob, carol = await people("alice"), await people("bob"), await people("carol")
    conv = await alice.create_conversation("Leaving", [bob.user_id, carol.user_id])
    gid = conv.group_id
    await eventually(lambda: gid in bob.conversations and gid in carol.conversations)
    await carol.sync()
    await carol.leave(gid)
    await eventually(lambda: sorted(alice.members(gid)) == sorted([alice.identity, bob.identity]))
    await eventually(lambda: carol.conversations[gid].messages[-1].text.startswith("You were"))


async def test_restart_from_store_and_reconnect(
        people: Callable[[str], Awaitable[Messenger]], client_server: object) -> None:
    alice, bob = await people("alice"), await people("bob")
    conv = await alice.create_conversation("Restart", [bob.user_id])
    gid = conv.group_id
    await eventually(lambda: gid in bob.conversations)
    await bob.stop()
    await alice.send_text(gid, "while you were away")
    # bob restarts from his store and catches up through the push channel.
    bob2 = await Messenger.load(bob.transport, bob.store)
    assert bob2 is not None
    bob2.start()
    try:
        await eventually(lambda: texts(bob2, gid) == ["while you were away"])
        await bob2.send_text(gid, "back")
        await eventually(lambda: texts(alice, gid)[-1:] == ["back"])
    finally:
        await bob2.stop()


async def test_safety_numbers_match_and_verification(
        people: Callable[[str], Awaitable[Messenger]]) -> None:
    alice, bob = await people("alice"), await people("bob")
    a = await alice.safety_number_with(bob.user_id)
    b = await bob.safety_number_with(alice.user_id)
    assert a.digits == b.digits and len(a.groups) == 12
    assert b.matches_scanned(a.qr_payload())
    await alice.mark_verified(bob.user_id)
    assert alice.trust.is_verified(bob.user_id)
    await alice.unverify(bob.user_id)
    assert not alice.trust.is_verified(bob.user_id)


async def test_key_change_drops_verification(
        people: Callable[[str], Awaitable[Messenger]], client_server: object) -> None:
    alice, bob = await people("alice"), await people("bob")
    conv = await alice.create_conversation("Keys", [bob.user_id])
    await alice.mark_verified(bob.user_id)
    events: list[str] = []
    alice.on_event(lambda kind, data: events.append(data.get("event", "")) if kind == "trust"
                   else None)
    # bob signs in on a second device: his key set changes.
    bob2 = Messenger(HttpTransport(client_server.base_url), MemoryStore())  # type: ignore[attr-defined]
    await bob2.login_new_device(bob.user_id, "correct horse bob battery")
    await alice.refresh_trust(conv.group_id)
    assert "key-change" in events and "unverified" in events
    assert not alice.trust.is_verified(bob.user_id)
    assert alice.trust.needs_warning(bob.user_id)
    # The new safety number covers both of bob's devices, and both sides agree on it.
    sn = await alice.safety_number_with(bob.user_id)
    assert sn.digits == (await bob2.safety_number_with(alice.user_id)).digits
