"""Post-quantum conversations through the real delivery service (docs/pq.md).

New conversations use the hybrid X25519+ML-KEM-768 suite 0x004F by default; a device
keeps KeyPackage stocks in suite 1 and 0x004F under one Ed25519 identity key, so
safety numbers and the key directory do not change; a user whose app offers only
suite 1 cannot be added to a post-quantum conversation, and is told so.
"""

from __future__ import annotations

import hashlib

import pytest

from corecrypto.messenger import DEFAULT_SUITE, Messenger, MessengerError
from corecrypto.transport import MemoryStore

from .conftest import People, conversation, eventually, system_lines, texts

pytestmark = pytest.mark.asyncio
PQ = 0x004F


def joined(m: Messenger, gid: bytes) -> bool:
    return gid in m.conversations and m.core_.has_group(gid) and m.conversations[gid].active


async def stock(m: Messenger, suite: int) -> tuple[int, bool]:
    r = await m.transport.request("GET", f"/api/mls/key-packages/count?cipher_suite={suite}",
                                  token=m.token)
    return int(r.body["count"]), bool(r.body["last_resort"])


async def classic_only(people: People, name: str) -> Messenger:
    """A user whose app offers suite 1 only (an app without the post-quantum suites)."""
    m = Messenger(people.transport(), MemoryStore(), default_suite=1, offered_suites=(1,))
    user = f"{name}{people.suffix}"
    people.passwords[user] = f"correct horse {name} battery"
    await m.register(user, people.passwords[user])
    await m.login_new_device(user, people.passwords[user])
    await m.sync()
    m.start()
    people.made.append(m)
    await eventually(lambda: m.status == "online", what=f"{m.identity} online")
    return m


async def test_new_conversations_are_post_quantum_by_default(people: People) -> None:
    assert DEFAULT_SUITE == PQ
    alice, bob = await people("alice"), await people("bob")
    # A stock and a last-resort KeyPackage in each offered suite, one identity key.
    for m in (alice, bob):
        assert await stock(m, 1) == (m.key_package_target, True)
        assert await stock(m, PQ) == (m.key_package_target, True)
    gid = await conversation(alice, "Quantum", bob)
    assert alice.conversation_suite(gid) == bob.conversation_suite(gid) == PQ
    summary = bob.summary_of(bob.conversations[gid])
    assert summary["suite"] == PQ and summary["post_quantum"] is True
    assert summary["suite_label"] == "MLKEM768X25519 (post-quantum), 0x004f"
    await bob.send_text(gid, "hello from the future")
    await eventually(lambda: texts(alice, gid) == ["hello from the future"])
    await alice.self_update(gid)
    await alice.send_text(gid, "after an update")
    await eventually(lambda: texts(bob, gid)[-1:] == ["after an update"])

    # Suite 1 on request; the same identity keys, so the same safety numbers.
    classic = (await alice.create_conversation("Classic", [bob.user_id], suite=1)).group_id
    await eventually(lambda: joined(bob, classic))
    assert bob.conversation_suite(classic) == 1
    assert bob.summary_of(bob.conversations[classic])["post_quantum"] is False
    a = await alice.safety_number_with(bob.user_id)
    assert a.digits == (await bob.safety_number_with(alice.user_id)).digits
    keys = alice.core_.member_keys(gid)
    assert keys == alice.core_.member_keys(classic)
    directory = await alice.directory(bob.user_id)
    assert keys[bob.identity] == directory[bob.device_id]
    assert bob.core_.get_identity_fingerprint() == hashlib.sha256(
        directory[bob.device_id]).hexdigest()
    with pytest.raises(MessengerError) as e:
        await alice.create_conversation("P-256?", [], suite=2)
    assert e.value.code == "unsupported_cipher_suite"


async def test_a_user_without_the_suite_cannot_be_added_and_is_told(people: People) -> None:
    alice, dave = await people("alice"), await classic_only(people, "dave")
    r = await alice.transport.request("GET", f"/api/users/{dave.user_id}/devices",
                                      token=alice.token)
    assert [d["cipher_suites"] for d in r.body["devices"]] == [[1]]
    gid = await conversation(alice, "Quantum")
    epoch = alice.core_.epoch(gid)
    with pytest.raises(MessengerError) as e:
        await alice.add_members(gid, [dave.user_id])
    assert e.value.code == "not_added"
    assert "cipher suite" in str(e.value) and "0x004f" in str(e.value)
    assert system_lines(alice, gid)[-1] == str(e.value)
    assert alice.members(gid) == [alice.identity] and alice.core_.epoch(gid) == epoch
    # No invitation either: dave's device could never join.
    r = await dave.transport.request("GET", "/api/mls/groups/joinable", token=dave.token)
    assert r.body["groups"] == []
    # In suite 1 dave is added as before; dave's stock in 0x004F stays empty.
    classic = (await alice.create_conversation("Classic", [dave.user_id], suite=1)).group_id
    await eventually(lambda: joined(dave, classic))
    await dave.send_text(classic, "classic hello")
    await eventually(lambda: texts(alice, classic) == ["classic hello"])
    assert await stock(dave, 1) == (dave.key_package_target - 1, True)


async def test_another_device_joins_a_pq_conversation_by_external_commit(
        people: People) -> None:
    alice, bob = await people("alice"), await people("bob")
    gid = await conversation(alice, "Quantum", bob)
    bob2 = await people.device(bob)
    await eventually(lambda: joined(bob2, gid), what="bob's new device joined")
    assert bob2.conversation_suite(gid) == PQ
    await eventually(lambda: bob2.identity in alice.members(gid))
    await bob2.send_text(gid, "from bob's second device")
    await eventually(lambda: texts(alice, gid) == ["from bob's second device"])
    await eventually(lambda: texts(bob, gid) == ["from bob's second device"])
    await eventually(lambda: len({m.core_.epoch_authenticator(gid)
                                  for m in (alice, bob, bob2)}) == 1)


async def test_a_classic_only_device_is_never_asked_into_a_pq_conversation(
        people: People) -> None:
    """Bob also uses an app without the post-quantum suites: it is not told to join
    (push or list) the PQ conversations bob's other device is in, and adding bob names
    it as unsupported; suite-1 conversations include it as before."""
    alice, bob = await people("alice"), await people("bob")
    old = Messenger(people.transport(), MemoryStore(), default_suite=1, offered_suites=(1,))
    events: list[tuple[str, dict[str, object]]] = []
    old.on_event(lambda kind, data: events.append((kind, data)))
    await old.login_new_device(bob.user_id, people.passwords[bob.user_id])
    await old.sync()
    old.start()
    people.made.append(old)
    await eventually(lambda: old.status == "online", what="bob's old app online")
    gid = await conversation(alice, "Quantum", bob)  # bob's seat: a joinable push
    assert sorted(alice.members(gid)) == sorted([alice.identity, bob.identity])
    assert any(f"device {old.device_id} cannot be added: no KeyPackage in this "
               "conversation's cipher suite" in line for line in system_lines(alice, gid))
    with pytest.raises(MessengerError) as e:  # nothing to add, and one device cannot be
        await alice.add_members(gid, [bob.user_id])
    assert e.value.code == "not_added" and old.device_id in str(e.value)
    classic = (await alice.create_conversation("Classic", [bob.user_id], suite=1)).group_id
    await eventually(lambda: joined(old, classic), what="the old app in the classic one")
    r = await old.transport.request("GET", "/api/mls/groups/joinable", token=old.token)
    assert r.body["groups"] == []
    assert not old.core_.has_group(gid)
    assert [d for k, d in events if k == "device" and d.get("event") == "join-failed"] == []
