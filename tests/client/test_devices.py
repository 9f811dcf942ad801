"""A user is their devices (issue 11 §2), against the real delivery service: a
new device joins every conversation of its user by itself, a wiped device comes
back as a new leaf and its old leaf goes, adding a user adds the devices that are
missing (and only those), retired devices are removed, two devices of one user
committing at once converge, and the trust layer sees every device."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from corecrypto import ApplicationReceived
from corecrypto.chat import SENT, gid_str, unb64
from corecrypto.messenger import NO_HISTORY, Messenger
from mls.errors import MLSError

from .conftest import People, conversation, eventually, system_lines, texts

pytestmark = pytest.mark.asyncio


async def key_package_count(m: Messenger) -> int:
    """The device's stock in the suite new conversations use."""
    r = await m.transport.request(
        "GET", f"/api/mls/key-packages/count?cipher_suite={m.default_suite}", token=m.token)
    return int(r.body["count"])


def joined(m: Messenger, gid: bytes) -> bool:
    return gid in m.conversations and m.core_.has_group(gid) and m.conversations[gid].active


async def test_a_second_device_joins_every_conversation_and_can_send(people: People) -> None:
    alice, bob, carol = await people("alice"), await people("bob"), await people("carol")
    one = await conversation(alice, "One", bob)
    two = await conversation(carol, "Two", bob)
    await alice.send_text(one, "before the second device")
    await eventually(lambda: texts(bob, one) == ["before the second device"])

    bob2 = await people.device(bob)
    await eventually(lambda: joined(bob2, one) and joined(bob2, two), what="bob2 joined both")
    for gid, name in ((one, "One"), (two, "Two")):
        await eventually(lambda gid=gid, name=name: bob2.conversations[gid].name == name,
                         what="the name reaches the new device")
        assert bob2.conversations[gid].joined_late
        assert system_lines(bob2, gid)[0] == NO_HISTORY
        assert texts(bob2, gid) == []  # MLS gives a new device no history
    await eventually(lambda: bob2.identity in alice.members(one), what="alice sees bob2")
    assert any(f"{bob.user_id} joined from a new device" in t for t in system_lines(alice, one))

    await alice.send_text(one, "to both of bob's devices")
    await eventually(lambda: texts(bob2, one) == ["to both of bob's devices"])
    await eventually(lambda: texts(bob, one)[-1:] == ["to both of bob's devices"])
    await bob2.send_text(one, "from bob's second device")
    await eventually(lambda: texts(alice, one)[-1:] == ["from bob's second device"])
    line = alice.conversations[one].messages[-1]
    assert line.user == bob.user_id and line.sender == bob2.identity and not line.own
    await eventually(lambda: texts(bob, one)[-1:] == ["from bob's second device"])
    mine = bob.conversations[one].messages[-1]
    assert mine.own and mine.state == SENT and mine.user == bob.user_id
    await carol.send_text(two, "hello bob, wherever you are")
    await eventually(lambda: texts(bob2, two) == ["hello bob, wherever you are"])


async def test_a_wiped_device_comes_back_and_its_old_leaf_is_removed(people: People) -> None:
    alice, bob = await people("alice"), await people("bob")
    gid = await conversation(alice, "Wipe", bob)
    await alice.send_text(gid, "before the wipe")
    await eventually(lambda: texts(bob, gid) == ["before the wipe"])
    old_identity, old_token = alice.identity, alice.token
    # The panic wipe: the device is retired on the server, its state is gone.
    await alice.stop()
    await alice.server_cleanup()()
    r = await bob.transport.request("GET", "/api/mls/key-packages/count", token=old_token)
    assert r.status == 401  # the wiped device's sessions are revoked

    alice2 = await people.device(alice)
    assert alice2.identity != old_identity
    await eventually(lambda: joined(alice2, gid), what="alice is back in her conversation")
    # The old leaf went with the new device's external commit (resync).
    await eventually(lambda: sorted(bob.members(gid)) == sorted([alice2.identity, bob.identity]),
                     what="bob sees the old leaf removed")
    assert sorted(alice2.members(gid)) == sorted([alice2.identity, bob.identity])
    assert alice2.core_.epoch_authenticator(gid) == bob.core_.epoch_authenticator(gid)
    assert NO_HISTORY in system_lines(alice2, gid)
    await alice2.send_text(gid, "back again")
    await eventually(lambda: texts(bob, gid)[-1:] == ["back again"])
    await bob.send_text(gid, "welcome back")
    await eventually(lambda: texts(alice2, gid) == ["back again", "welcome back"])
    # Post-compromise security: a copy of the wiped device's state, taken before the
    # wipe, reads nothing sent after its leaf was removed, even with every ciphertext.
    stolen, cursor = alice.core_, alice.cursors[gid]
    r = await bob.transport.request("GET", f"/api/mls/messages/{gid_str(gid)}?after={cursor}",
                                    token=bob.token)
    read = []
    for ev in r.body["messages"]:
        with contextlib.suppress(MLSError):
            got = stolen.process_message(gid, unb64(ev["data"]))
            if isinstance(got, ApplicationReceived):
                read.append(got.plaintext)
    assert not any(b"welcome back" in p or b"back again" in p for p in read)
    assert not stolen.is_active(gid)


async def test_a_wiped_device_removes_its_old_leaf_itself_when_no_one_else_is_online(
        people: People) -> None:
    """Nobody else is online to remove the wiped device's leaf: the new device's
    external commit removes it (resync, RFC 9420 §12.4.3.2)."""
    alice, bob = await people("alice"), await people("bob")
    gid = await conversation(alice, "Resync", bob)
    await bob.stop()
    old_identity = alice.identity
    await alice.stop()
    await alice.server_cleanup()()
    alice2 = await people.device(alice)
    await eventually(lambda: joined(alice2, gid), what="alice is back")
    assert old_identity not in alice2.members(gid)
    assert any(t.startswith("Your retired device") for t in system_lines(alice2, gid))
    again = await Messenger.load(bob.transport, bob.store)
    assert again is not None
    people.made.append(again)
    await again.sync()
    assert sorted(again.members(gid)) == sorted([alice2.identity, bob.identity])
    assert any("is back on a new device" in t for t in system_lines(again, gid))
    assert again.core_.epoch_authenticator(gid) == alice2.core_.epoch_authenticator(gid)
    again.start()
    await alice2.send_text(gid, "I am back")
    await eventually(lambda: texts(again, gid)[-1:] == ["I am back"])


async def test_a_retired_device_is_removed_by_the_next_commit(people: People) -> None:
    alice, bob = await people("alice"), await people("bob")
    bob2 = await people.device(bob)
    gid = await conversation(alice, "Retire", bob)
    await eventually(lambda: joined(bob2, gid))
    assert {bob.identity, bob2.identity} <= set(alice.members(gid))
    await bob.retire_device(bob2.device_id, people.passwords[bob.user_id])
    await eventually(lambda: bob2.identity not in alice.members(gid), what="leaf removed")
    await eventually(lambda: bob2.identity not in bob.members(gid))
    await alice.send_text(gid, "after the retirement")
    await eventually(lambda: texts(bob, gid)[-1:] == ["after the retirement"])


async def test_adding_a_user_adds_the_missing_devices_and_only_those(people: People) -> None:
    alice, bob = await people("alice"), await people("bob")
    gid = await conversation(alice, "Add", bob)
    # A second device of bob that has not been online since it was made.
    bob2 = await people.device(bob, start=False)
    kps_bob1, kps_bob2 = await key_package_count(bob), await key_package_count(bob2)
    report = await alice.add_members(gid, [bob.user_id])
    assert report.added == [bob2.identity]
    (outcome,) = report.outcomes
    assert outcome.present == [bob.device_id] and outcome.added == [bob2.device_id]
    assert await key_package_count(bob) == kps_bob1  # nothing claimed for bob's first device
    assert await key_package_count(bob2) == kps_bob2 - 1
    assert system_lines(alice, gid)[-1] == report.summary
    assert "1 more device" in report.summary
    await bob2.sync()
    bob2.start()
    assert joined(bob2, gid) and NO_HISTORY in system_lines(bob2, gid)
    await alice.send_text(gid, "to all of bob")
    await eventually(lambda: texts(bob2, gid) == ["to all of bob"])
    # Again: nothing to add, nothing claimed, and it says so.
    again = await alice.add_members(gid, [bob.user_id])
    assert again.added == [] and "already in this conversation on all 2 devices" in again.summary
    assert system_lines(alice, gid)[-1] == again.summary
    assert await key_package_count(bob) == kps_bob1
    assert await key_package_count(bob2) == kps_bob2 - 1


async def test_a_user_without_key_packages_is_invited_and_joins_by_themselves(
        people: People) -> None:
    """None of carol's devices can be added now (no KeyPackage): she is invited, and
    her device joins by external commit as soon as the server tells it (push)."""
    alice, carol = await people("alice"), await people("carol")
    r = await carol.transport.request("DELETE", "/api/mls/key-packages", token=carol.token)
    assert r.status in (200, 204)
    gid = await conversation(alice, "Invite")
    report = await alice.add_members(gid, [carol.user_id])
    (outcome,) = report.outcomes
    assert report.added == [] and outcome.invited and outcome.unavailable == [carol.device_id]
    assert "invited" in report.summary and system_lines(alice, gid)[-1] == report.summary
    await eventually(lambda: joined(carol, gid), what="carol joined by herself")
    await eventually(lambda: carol.identity in alice.members(gid))
    assert NO_HISTORY in system_lines(carol, gid)
    await eventually(lambda: carol.conversations[gid].name == "Invite")
    await alice.send_text(gid, "hi carol")
    await eventually(lambda: texts(carol, gid) == ["hi carol"])


async def test_a_new_conversation_includes_every_device(people: People) -> None:
    alice, bob = await people("alice"), await people("bob")
    alice2, bob2 = await people.device(alice), await people.device(bob)
    gid = await conversation(alice, "Everyone", bob)
    assert sorted(alice.members(gid)) == sorted(
        [alice.identity, alice2.identity, bob.identity, bob2.identity])
    for m in (alice2, bob2):
        await eventually(lambda m=m: joined(m, gid) and m.conversations[gid].name == "Everyone")
    await alice2.send_text(gid, "from alice's other device")
    await eventually(lambda: texts(bob2, gid) == ["from alice's other device"])
    await eventually(lambda: texts(alice, gid) == ["from alice's other device"])
    assert alice.conversations[gid].messages[-1].own


async def test_concurrent_commits_from_two_devices_of_one_user_converge(
        people: People) -> None:
    alice, bob, carol = await people("alice"), await people("bob"), await people("carol")
    bob2 = await people.device(bob)
    gid = await conversation(alice, "Race", bob)
    await eventually(lambda: joined(bob2, gid))
    reports = await asyncio.gather(bob.add_members(gid, [carol.user_id]),
                                   bob2.add_members(gid, [carol.user_id]))
    assert sorted(len(r.added) for r in reports) == [0, 1]
    assert any("already in this conversation" in r.summary for r in reports)
    await asyncio.gather(bob.self_update(gid), bob2.self_update(gid))
    everyone = (alice, bob, bob2, carol)
    await eventually(lambda: all(joined(m, gid) for m in everyone))
    await eventually(lambda: len({m.core_.epoch(gid) for m in everyone}) == 1,
                     what="one epoch")
    assert len({m.core_.epoch_authenticator(gid) for m in everyone}) == 1
    assert alice.member_users(gid)[carol.user_id] == [carol.device_id]
    await bob2.send_text(gid, "converged")
    for m in (alice, bob, carol):
        await eventually(lambda m=m: texts(m, gid)[-1:] == ["converged"])


async def test_a_new_device_of_a_verified_contact_unverifies_them(people: People) -> None:
    alice, bob = await people("alice"), await people("bob")
    gid = await conversation(alice, "Trust", bob)
    await alice.mark_verified(bob.user_id)
    events: list[tuple[str, str]] = []
    alice.on_event(lambda kind, d: events.append((d["event"], d["user"])) if kind == "trust"
                   else None)
    bob2 = await people.device(bob)
    await eventually(lambda: ("unverified", bob.user_id) in events, what="unverified event")
    assert ("key-change", bob.user_id) in events
    assert not alice.trust.is_verified(bob.user_id)
    assert alice.trust.needs_warning(bob.user_id)
    assert any(t.startswith(f"{bob.user_id}: ") and "changed" in t
               for t in system_lines(alice, gid))
    # The safety number covers both of bob's devices, and all three devices agree.
    sn = await alice.safety_number_with(bob.user_id)
    assert sn.digits == (await bob2.safety_number_with(alice.user_id)).digits
    assert sn.digits == (await bob.safety_number_with(alice.user_id)).digits
