"""External joins, GroupInfos and Adds, as an attacker would try them.

Every refusal gets an input valid everywhere else and wrong exactly there, and the
real members keep posting and understanding each other afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from ds_client import Device, add_device, gid_text, next_event, unb64
from ds_mls import external_join, new_client, plaintext_of

from mls.crypto import CipherSuite, default_provider
from mls.framing import (
    AuthenticatedContent,
    ContentType,
    FramedContent,
    Sender,
    SenderType,
    WireFormat,
)
from mls.group import create_key_package
from mls.group_info import GroupInfo
from mls.message import MLSMessage
from mls.proposals import Add
from mls.public_message import PublicMessage

MakeDevice = Callable[..., Awaitable[Device]]


async def _pair(make_device: MakeDevice) -> tuple[Device, Device, bytes]:
    """Alice and Bob in a group, both synced."""
    alice, bob = await make_device(), await make_device()
    await bob.upload_key_packages(1)
    gid = await alice.create_group()
    await alice.add(gid, [bob])
    assert await bob.join_from_inbox() == [gid]
    bob.cursors[gid] = alice.cursors[gid]
    return alice, bob, gid


async def _still_talking(gid: bytes, *devices: Device) -> None:
    """Every device sends a message and commits once; every other one reads them."""
    for sender in devices:
        for other in devices:
            await other.sync(gid)
        r = await sender.send(sender.mls.encrypt_message(gid, b"from " + sender.identity))
        assert r.status_code == 201, r.text
        r = await sender.send(sender.mls.self_update(gid))
        assert r.status_code == 201, r.text
        sender.mls.merge_pending_commit(gid)
        sender.cursors[gid] = r.json()["seq"]
        for other in devices:
            if other is not sender:
                texts = [plaintext_of(x) for x in await other.sync(gid)]
                assert b"from " + sender.identity in texts
    assert len({d.mls.epoch_authenticator(gid) for d in devices}) == 1


async def _group_info(device: Device, gid: bytes) -> Any:
    return await device.get(f"/api/mls/groups/{gid_text(gid)}/group-info")


async def _invite(inviter: Device, gid: bytes, user: str, **extra: Any) -> Any:
    return await inviter.post(f"/api/mls/groups/{gid_text(gid)}/invitations",
                              {"user_id": user, **extra})


def _new_member_proposal(device: Device, group_info: bytes) -> bytes:
    """A signed new-member proposal (RFC 9420 §12.1.8): ``device`` asks to be added."""
    gi = MLSMessage.deserialize(group_info).body
    assert isinstance(gi, GroupInfo)
    cs = CipherSuite(gi.group_context.cipher_suite, default_provider())
    kp = create_key_package(cs, device.mls.signer).key_package
    content = FramedContent(gi.group_context.group_id, gi.group_context.epoch,
                            Sender(SenderType.NEW_MEMBER_PROPOSAL), b"", ContentType.PROPOSAL,
                            Add(kp))
    ac = AuthenticatedContent.sign(cs, WireFormat.PUBLIC_MESSAGE, content,
                                   device.mls.signer.signature_priv, None)
    return MLSMessage.wrap(PublicMessage(ac.content, ac.auth)).serialize()


async def _epoch(device: Device, gid: bytes) -> int:
    r = await device.get(f"/api/mls/groups/{gid_text(gid)}")
    assert r.status_code == 200, r.text
    epoch: int = r.json()["epoch"]
    return epoch


async def test_outsiders_external_commit_is_refused(make_device: MakeDevice) -> None:
    alice, bob, gid = await _pair(make_device)
    mallory = await make_device()
    epoch = await _epoch(alice, gid)
    # Mallory knows the group id and even holds a current GroupInfo (leaked): a valid
    # external commit, signed with her registered key.
    commit, group_info, _ = external_join(mallory.mls, alice.mls.group_info(gid))
    r = await mallory.send(commit, group_info=group_info)
    assert r.status_code == 404 and r.json()["error"] == "unknown_group", r.text
    assert "epoch" not in r.text
    # A new-member proposal (asking to be added) fares no better.
    r = await mallory.send(_new_member_proposal(mallory, alice.mls.group_info(gid)))
    assert r.status_code == 404 and r.json()["error"] == "unknown_group", r.text
    proposal = _new_member_proposal(mallory, alice.mls.group_info(gid))
    r = await mallory.send(proposal)
    assert r.status_code == 404 and r.json()["error"] == "unknown_group", r.text
    assert await _epoch(alice, gid) == epoch
    members = (await alice.get(f"/api/mls/groups/{gid_text(gid)}")).json()["members"]
    assert mallory.identity.decode() not in {m["identity"] for m in members}
    assert (await mallory.messages(gid)).status_code == 404
    await _still_talking(gid, alice, bob)


async def test_removed_member_cannot_reenter(make_device: MakeDevice) -> None:
    alice, bob, gid = await _pair(make_device)
    carol = await make_device()
    await carol.upload_key_packages(1)
    await alice.add(gid, [carol])
    await carol.join_from_inbox()
    carol.cursors[gid] = alice.cursors[gid]
    await bob.sync(gid)
    r = await alice.send(alice.mls.remove_member(gid, bob.identity.decode()))
    assert r.status_code == 201
    alice.mls.merge_pending_commit(gid)
    alice.cursors[gid] = r.json()["seq"]
    await carol.sync(gid)
    # Bob knows the group (he was in it): 403, but no GroupInfo and no way back in.
    assert (await _group_info(bob, gid)).status_code == 404
    commit, group_info, _ = external_join(bob.mls, alice.mls.group_info(gid))
    r = await bob.send(commit, group_info=group_info)
    assert r.status_code == 403 and r.json()["error"] == "not_authorized", r.text
    assert "epoch" not in r.text
    # Nor with a fresh device of his user, nor by inviting himself.
    bob2 = await add_device(bob.base_url, bob.user_id)
    try:
        commit, group_info, _ = external_join(bob2.mls, alice.mls.group_info(gid))
        r = await bob2.send(commit, group_info=group_info)
        assert r.status_code == 404 and r.json()["error"] == "unknown_group", r.text
        r = await _invite(bob, gid, bob.user_id)
        assert r.status_code == 403 and r.json()["error"] == "not_a_member"
        assert (await bob2.get("/api/mls/groups/joinable")).json()["groups"] == []
    finally:
        await bob2.close()
    await _still_talking(gid, alice, carol)


async def test_forged_adds_are_refused(make_device: MakeDevice, db: asyncpg.Connection) -> None:
    alice, bob, gid = await _pair(make_device)
    victim = await make_device()
    await victim.upload_key_packages(1)
    # Mallory's KeyPackage claims to be the victim's registered device, with her own key.
    forger = new_client(victim.user_id, victim.device_id)
    forged = forger.generate_key_packages(1)[0]
    unknown = new_client(victim.user_id, "nosuchdevice").generate_key_packages(1)[0]
    epoch = await _epoch(alice, gid)
    for kp, error in ((forged, "key_mismatch"), (unknown, "unknown_device")):
        commit, welcome = alice.mls.add_members(gid, [kp])
        r = await alice.send(commit, welcome)
        assert r.status_code == 400 and r.json()["error"] == error, r.text
        alice.mls.clear_pending_commit(gid)
        # By reference: Bob proposes it; the proposal itself is refused.
        r = await bob.send(bob.mls.group(gid).propose_add(MLSMessage.deserialize(kp).body))
        assert r.status_code == 400 and r.json()["error"] == error, r.text
    assert await _epoch(alice, gid) == epoch
    assert await victim.welcomes() == []
    rows = await db.fetchval(
        "SELECT count(*) FROM mls_group_members m JOIN devices d ON d.id = m.device_id "
        "JOIN users u ON u.id = d.user_id WHERE u.username = $1", victim.user_id)
    assert rows == 0
    # Bob's refused proposals reached no one: he drops them, and everyone talks on.
    await _still_talking(gid, alice, _without_pending_proposals(bob, gid))
    # The genuine KeyPackage is accepted.
    await alice.sync(gid)
    await alice.add(gid, [victim])
    assert await victim.join_from_inbox() == [gid]


def _without_pending_proposals(device: Device, gid: bytes) -> Device:
    """The device without its proposals the server refused (they reached no one)."""
    from dataclasses import replace

    group = device.mls.group(gid)
    group._state = replace(group.state, proposals=(), update_keys=())
    return device


async def test_commit_needs_the_group_info_of_its_epoch(make_device: MakeDevice) -> None:
    alice, bob, gid = await _pair(make_device)
    epoch = await _epoch(alice, gid)
    commit = alice.mls.self_update(gid)
    good = alice.mls.group(gid).pending_group_info()
    r = await alice.send(commit, group_info=None)
    assert r.status_code == 400 and r.json()["error"] == "group_info_required"
    bob.mls.self_update(gid)
    cases = {
        "the current epoch's": alice.mls.group_info(gid),
        "another commit's": bob.mls.group(gid).pending_group_info(),
        "garbage": secrets.token_bytes(100),
    }
    bob.mls.clear_pending_commit(gid)
    for name, data in cases.items():
        r = await alice.send(commit, group_info=data)
        assert r.status_code == 400 and r.json()["error"] == "invalid_group_info", (name, r.text)
    r = await alice.send(alice.mls.encrypt_message(gid, b"x"), group_info=good)
    assert r.status_code == 400 and r.json()["error"] == "group_info_unexpected"
    assert await _epoch(alice, gid) == epoch
    r = await alice.send(commit, group_info=good)
    assert r.status_code == 201, r.text
    alice.mls.merge_pending_commit(gid)
    alice.cursors[gid] = r.json()["seq"]
    r = await _group_info(bob, gid)
    assert r.status_code == 200 and unb64(r.json()["group_info"]) == good
    assert r.json()["epoch"] == epoch + 1
    await _still_talking(gid, alice, bob)


async def test_new_device_of_a_member_joins_by_external_commit(make_device: MakeDevice) -> None:
    alice, bob, gid = await _pair(make_device)
    bob2 = await add_device(bob.base_url, bob.user_id)
    try:
        r = await bob2.get("/api/mls/groups/joinable")
        assert r.status_code == 200
        assert r.json()["groups"] == [{"group_id": gid_text(gid), "cipher_suite": 1,
                                       "epoch": await _epoch(alice, gid),
                                       "reason": "user_member"}]
        r = await _group_info(bob2, gid)
        assert r.status_code == 200, r.text
        commit, group_info, state = external_join(bob2.mls, unb64(r.json()["group_info"]))
        # Its new leaf must be this device: another device's credential is refused.
        other = new_client(bob.user_id, bob2.device_id)  # same identity, unregistered key
        forged, forged_info, _ = external_join(other, unb64(r.json()["group_info"]))
        r2 = await bob2.send(forged, group_info=forged_info)
        assert r2.status_code == 400 and r2.json()["error"] == "invalid_external_commit"
        r = await bob2.send(commit, group_info=group_info)
        assert r.status_code == 201, r.text
        assert bob2.mls.import_group_state(state) == gid
        bob2.cursors[gid] = r.json()["seq"]
        assert (await bob2.get("/api/mls/groups/joinable")).json()["groups"] == []
        await _still_talking(gid, alice, bob, bob2)
    finally:
        await bob2.close()


async def test_wiped_device_successor_resyncs(make_device: MakeDevice) -> None:
    alice, bob, gid = await _pair(make_device)
    conn = await alice.ws(cursors={gid: alice.cursors[gid]})
    try:
        # Bob's only device is wiped: it retires itself.
        r = await bob.http.request("DELETE", f"/api/auth/devices/{bob.device_id}",
                                   headers=bob.headers)
        assert r.status_code == 200, r.text
        event = await next_event(conn)
        assert event == {"type": "device-retired", "user_id": bob.user_id,
                         "device_id": bob.device_id, "group_ids": [gid_text(gid)]}
        view = (await alice.get(f"/api/mls/groups/{gid_text(gid)}")).json()
        assert {m["identity"]: m["retired"] for m in view["members"]} == {
            alice.identity.decode(): False, bob.identity.decode(): True}
    finally:
        await conn.close()
    assert (await bob.get("/api/mls/groups")).status_code == 401
    # His new device resyncs: joins and removes the wiped device's leaf.
    bob2 = await add_device(alice.base_url, bob.user_id)
    try:
        r = await _group_info(bob2, gid)
        assert r.status_code == 200, r.text
        # Removing someone else's leaf (Alice's) is refused.
        wrong, wrong_info, _ = external_join(bob2.mls, unb64(r.json()["group_info"]),
                                             remove_prior=0, forge=True)
        r2 = await bob2.send(wrong, group_info=wrong_info)
        assert r2.status_code == 400 and r2.json()["error"] == "invalid_commit", r2.text
        commit, group_info, state = external_join(bob2.mls, unb64(r.json()["group_info"]),
                                                  remove_prior=1)
        r = await bob2.send(commit, group_info=group_info)
        assert r.status_code == 201, r.text
        bob2.mls.import_group_state(state)
        bob2.cursors[gid] = r.json()["seq"]
        view = (await alice.get(f"/api/mls/groups/{gid_text(gid)}")).json()
        assert {m["identity"]: m["leaf_index"] for m in view["members"]} == {
            alice.identity.decode(): 0, bob2.identity.decode(): 1}
        await _still_talking(gid, alice, bob2)
    finally:
        await bob2.close()


async def test_seat_survives_removal_of_a_retired_leaf(make_device: MakeDevice) -> None:
    """Members remove a wiped device's leaf before its user signs in again: the user
    keeps the right to rejoin (the device left, not the user)."""
    alice, bob, gid = await _pair(make_device)
    r = await bob.http.request("DELETE", f"/api/auth/devices/{bob.device_id}",
                               headers=bob.headers)
    assert r.status_code == 200
    r = await alice.send(alice.mls.remove_member(gid, bob.identity.decode()))
    assert r.status_code == 201
    alice.mls.merge_pending_commit(gid)
    alice.cursors[gid] = r.json()["seq"]
    bob2 = await add_device(alice.base_url, bob.user_id)
    try:
        groups = (await bob2.get("/api/mls/groups/joinable")).json()["groups"]
        assert [(g["group_id"], g["reason"]) for g in groups] == [(gid_text(gid), "user_member")]
        info = unb64((await _group_info(bob2, gid)).json()["group_info"])
        commit, group_info, state = external_join(bob2.mls, info)
        r = await bob2.send(commit, group_info=group_info)
        assert r.status_code == 201, r.text
        bob2.mls.import_group_state(state)
        bob2.cursors[gid] = r.json()["seq"]
        await _still_talking(gid, alice, bob2)
    finally:
        await bob2.close()


async def test_invitations(make_device: MakeDevice, db: asyncpg.Connection) -> None:
    alice, bob, gid = await _pair(make_device)
    carol = await make_device()
    conn = await carol.ws()
    try:
        r = await _invite(alice, gid, carol.user_id, expires_in_seconds=3600)
        assert r.status_code == 201, r.text
        invitation = r.json()
        assert invitation["user_id"] == carol.user_id
        assert invitation["created_by"] == alice.identity.decode()
        assert await next_event(conn) == {"type": "joinable", "group_id": gid_text(gid)}
    finally:
        await conn.close()
    listed = (await bob.get(f"/api/mls/groups/{gid_text(gid)}/invitations")).json()
    assert [i["invitation_id"] for i in listed["invitations"]] == [invitation["invitation_id"]]
    assert (await carol.get(f"/api/mls/groups/{gid_text(gid)}/invitations")).status_code == 403
    groups = (await carol.get("/api/mls/groups/joinable")).json()["groups"]
    assert [(g["group_id"], g["reason"]) for g in groups] == [(gid_text(gid), "invitation")]
    # Invitations for members and unknown users are refused.
    r = await _invite(alice, gid, bob.user_id)
    assert r.status_code == 409 and r.json()["error"] == "already_member"
    r = await _invite(alice, gid, "nobody" + secrets.token_hex(4))
    assert r.status_code == 404 and r.json()["error"] == "unknown_user"

    # Expired: no GroupInfo, no join.
    await db.execute("UPDATE mls_invitations SET expires_at = now() - interval '1 second' "
                     "WHERE invitation_id = $1", invitation["invitation_id"])
    assert (await _group_info(carol, gid)).status_code == 404
    info = alice.mls.group_info(gid)
    commit, group_info, state = external_join(carol.mls, info)
    r = await carol.send(commit, group_info=group_info)
    assert r.status_code == 404, r.text
    # Revoked: the same.
    invitation = (await _invite(alice, gid, carol.user_id)).json()
    r = await bob.http.request(
        "DELETE", f"/api/mls/groups/{gid_text(gid)}/invitations/{invitation['invitation_id']}",
        headers=bob.headers)
    assert r.status_code == 204
    r = await carol.send(commit, group_info=group_info)
    assert r.status_code == 404, r.text
    # Valid: Carol joins, which consumes it.
    invitation = (await _invite(alice, gid, carol.user_id)).json()
    assert (await _group_info(carol, gid)).status_code == 200
    r = await carol.send(commit, group_info=group_info)
    assert r.status_code == 201, r.text
    carol.mls.import_group_state(state)
    carol.cursors[gid] = r.json()["seq"]
    consumed = await db.fetchval("SELECT consumed_at IS NOT NULL FROM mls_invitations "
                                 "WHERE invitation_id = $1", invitation["invitation_id"])
    assert consumed
    assert (await bob.get(f"/api/mls/groups/{gid_text(gid)}/invitations")).json() == {
        "invitations": []}
    await _still_talking(gid, alice, bob, carol)


async def test_invitation_lapses_when_its_inviter_leaves(make_device: MakeDevice) -> None:
    alice, bob, gid = await _pair(make_device)
    carol = await make_device()
    assert (await _invite(bob, gid, carol.user_id)).status_code == 201
    assert (await _group_info(carol, gid)).status_code == 200
    r = await alice.send(alice.mls.remove_member(gid, bob.identity.decode()))
    assert r.status_code == 201
    alice.mls.merge_pending_commit(gid)
    assert (await _group_info(carol, gid)).status_code == 404
    assert (await carol.get("/api/mls/groups/joinable")).json()["groups"] == []


async def test_joinable_push_to_other_devices(make_device: MakeDevice) -> None:
    bob = await make_device()
    bob2 = await add_device(bob.base_url, bob.user_id)
    try:
        conn = await bob2.ws()
        try:
            gid = await bob.create_group()
            assert await next_event(conn) == {"type": "joinable", "group_id": gid_text(gid)}
        finally:
            await conn.close()
    finally:
        await bob2.close()
