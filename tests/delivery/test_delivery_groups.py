"""Groups, ordering, epochs, membership tracking and Welcomes, through the HTTP API."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
from ds_client import Device, b64, gid_text, unb64
from ds_mls import is_commit, plaintext_of

MakeDevice = Callable[..., Awaitable[Device]]


async def test_group_lifecycle_orders_messages_and_tracks_membership(
    make_device: MakeDevice, db: asyncpg.Connection
) -> None:
    alice, bob = await make_device(), await make_device()
    await bob.upload_key_packages(2)
    gid = await alice.create_group()

    # Alice adds Bob: commit and Welcome in one request.
    added = await alice.add(gid, [bob])
    assert added["seq"] == 1 and added["content_type"] == "commit"
    assert added["group_epoch"] == 1 and added["welcomed"] == [bob.identity.decode()]

    assert await bob.join_from_inbox() == [gid]
    bob.cursors[gid] = 0
    # Bob joined at epoch 1: he sees nothing before, in particular not his own Add.
    assert await bob.all_messages(gid) == []

    r = await alice.send(alice.mls.encrypt_message(gid, b"hello bob"))
    assert r.status_code == 201, r.text
    assert r.json() == {
        "group_id": gid_text(gid), "seq": 2, "epoch": 1, "content_type": "application",
        "group_epoch": 1, "duplicate": False, "welcomed": [],
    }
    r = await bob.send(bob.mls.encrypt_message(gid, b"hi alice"))
    assert r.status_code == 201 and r.json()["seq"] == 3

    results = await bob.sync(gid)
    assert [plaintext_of(x) for x in results] == [b"hello bob", None]  # his own is echoed
    page = await alice.all_messages(gid)
    assert [m["seq"] for m in page] == [1, 2, 3]
    assert [m["content_type"] for m in page] == ["commit", "application", "application"]
    assert [m["sender"] for m in page] == [alice.identity.decode()] * 2 + [bob.identity.decode()]

    info = (await bob.get(f"/api/mls/groups/{gid_text(gid)}")).json()
    assert info["epoch"] == 1 and info["last_seq"] == 3
    assert [(m["identity"], m["leaf_index"]) for m in info["members"]] == [
        (alice.identity.decode(), 0), (bob.identity.decode(), 1)
    ]
    rows = await db.fetch(
        "SELECT seq FROM mls_messages m JOIN mls_groups g ON g.id = m.group_id "
        "WHERE g.group_id = $1 AND seq IS NOT NULL ORDER BY seq", gid
    )
    assert [r["seq"] for r in rows] == [1, 2, 3]


async def test_stale_commit_gets_409_with_current_epoch(make_device: MakeDevice) -> None:
    alice, bob = await make_device(), await make_device()
    await bob.upload_key_packages(1)
    gid = await alice.create_group()
    await alice.add(gid, [bob])
    await bob.join_from_inbox()

    # Both commit for epoch 1; Bob's arrives first and wins.
    alice_commit = alice.mls.self_update(gid)
    bob_commit = bob.mls.self_update(gid)
    r = await bob.send(bob_commit)
    assert r.status_code == 201 and r.json()["group_epoch"] == 2
    bob.mls.merge_pending_commit(gid)
    r = await alice.send(alice_commit)
    assert r.status_code == 409
    body = r.json()
    assert body["error"] == "stale_epoch" and body["current_epoch"] == 2
    assert "epoch 1" in body["detail"]

    # Alice drops hers, catches up and retries at the new epoch.
    alice.mls.clear_pending_commit(gid)
    assert [is_commit(x) for x in await alice.sync(gid)] == [True]
    r = await alice.send(alice.mls.self_update(gid))
    assert r.status_code == 201 and r.json()["group_epoch"] == 3
    alice.mls.merge_pending_commit(gid)
    await bob.sync(gid)
    assert bob.mls.epoch(gid) == alice.mls.epoch(gid) == 3
    assert bob.mls.epoch_authenticator(gid) == alice.mls.epoch_authenticator(gid)


async def test_application_messages_within_epoch_window(make_device: MakeDevice) -> None:
    alice, bob = await make_device(), await make_device()
    await bob.upload_key_packages(1)
    gid = await alice.create_group()
    await alice.add(gid, [bob])  # epoch 1
    await bob.join_from_inbox()
    old = bob.mls.encrypt_message(gid, b"written at epoch 1")
    for _ in range(3):  # epoch 4: epoch 1 is 3 back, the default window
        assert (await alice.send(alice.mls.self_update(gid))).status_code == 201
        alice.mls.merge_pending_commit(gid)
    r = await bob.send(old)
    assert r.status_code == 201, r.text
    assert r.json()["epoch"] == 1 and r.json()["group_epoch"] == 4

    older = bob.mls.encrypt_message(gid, b"also epoch 1")
    assert (await alice.send(alice.mls.self_update(gid))).status_code == 201
    alice.mls.merge_pending_commit(gid)
    r = await bob.send(older)
    assert r.status_code == 409 and r.json()["error"] == "stale_epoch"
    assert r.json()["current_epoch"] == 5


async def test_duplicate_post_is_acknowledged_once(make_device: MakeDevice) -> None:
    alice = await make_device()
    gid = await alice.create_group()
    message = alice.mls.encrypt_message(gid, b"retry me")
    first = await alice.send(message)
    again = await alice.send(message)
    assert first.status_code == 201 and again.status_code == 201
    assert first.json()["seq"] == again.json()["seq"] == 1
    assert again.json()["duplicate"] is True
    commit = alice.mls.self_update(gid)
    assert (await alice.send(commit)).json()["seq"] == 2
    # A retried commit is answered as accepted, not as stale.
    retry = await alice.send(commit)
    assert retry.status_code == 201 and retry.json()["duplicate"] is True
    assert retry.json()["seq"] == 2
    assert [m["seq"] for m in await alice.all_messages(gid)] == [1, 2]


async def test_only_members_post_and_read(make_device: MakeDevice) -> None:
    alice, mallory = await make_device(), await make_device()
    gid = await alice.create_group()
    message = alice.mls.encrypt_message(gid, b"secret")
    assert (await alice.send(message)).status_code == 201
    unknown = secrets.token_bytes(16)

    def same(foreign: httpx.Response, missing: httpx.Response) -> None:
        # An outsider cannot tell a group it may not see from one that does not exist.
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json()["error"] == missing.json()["error"] == "unknown_group"
        assert foreign.json()["detail"].replace(gid_text(gid), "G") == \
            missing.json()["detail"].replace(gid_text(unknown), "G")
        assert "epoch" not in foreign.text

    # Mallory posts (Alice's next message, and a commit of his own), and tries to read.
    same(await mallory.send(alice.mls.encrypt_message(gid, b"more")),
         await mallory.post("/api/mls/messages/group", {"message": b64(
             _retarget(alice.mls.encrypt_message(gid, b"x"), gid, unknown))}))
    same(await mallory.messages(gid), await mallory.messages(unknown))
    same(await mallory.get(f"/api/mls/groups/{gid_text(gid)}"),
         await mallory.get(f"/api/mls/groups/{gid_text(unknown)}"))
    same(await mallory.get(f"/api/mls/groups/{gid_text(gid)}/group-info"),
         await mallory.get(f"/api/mls/groups/{gid_text(unknown)}/group-info"))


def _retarget(message: bytes, old: bytes, new: bytes) -> bytes:
    """A PrivateMessage's group id swapped (the server reads only the clear header)."""
    from mls.codec import Writer

    w, v = Writer(), Writer()
    w.opaque(old)
    v.opaque(new)
    assert w.getvalue() in message
    return message.replace(w.getvalue(), v.getvalue(), 1)


async def test_member_cannot_post_as_another_leaf(make_device: MakeDevice) -> None:
    alice, bob = await make_device(), await make_device()
    await bob.upload_key_packages(1)
    gid = await alice.create_group()
    await alice.add(gid, [bob])
    await bob.join_from_inbox()
    forged = alice.mls.self_update(gid)  # sender leaf 0, posted by Bob (leaf 1)
    r = await bob.send(forged, group_info=alice.mls.group(gid).pending_group_info())
    assert r.status_code == 403 and r.json()["error"] == "not_your_leaf"


async def test_remove_ends_reading_after_the_removal_commit(make_device: MakeDevice) -> None:
    alice, bob = await make_device(), await make_device()
    await bob.upload_key_packages(1)
    gid = await alice.create_group()
    await alice.add(gid, [bob])
    await bob.join_from_inbox()
    bob.cursors[gid] = 0
    late = bob.mls.encrypt_message(gid, b"still here?")
    assert (await alice.send(alice.mls.encrypt_message(gid, b"before"))).status_code == 201
    r = await alice.send(alice.mls.remove_member(gid, bob.identity.decode()))
    assert r.status_code == 201
    removal_seq = r.json()["seq"]
    alice.mls.merge_pending_commit(gid)
    assert (await alice.send(alice.mls.encrypt_message(gid, b"after"))).status_code == 201

    seen = await bob.all_messages(gid)
    assert [m["seq"] for m in seen] == [2, removal_seq]  # the removal itself, nothing after
    results = await bob.sync(gid)
    assert plaintext_of(results[0]) == b"before" and is_commit(results[1])
    r = await bob.send(late)
    assert r.status_code == 403 and r.json()["error"] == "not_a_member"
    info = await alice.get(f"/api/mls/groups/{gid_text(gid)}")
    assert [m["identity"] for m in info.json()["members"]] == [alice.identity.decode()]


async def test_readd_leftmost_blank_leaf_and_new_window(make_device: MakeDevice) -> None:
    alice, bob, carol, dave = [await make_device() for _ in range(4)]
    for d in (bob, carol, dave):
        await d.upload_key_packages(2)
    gid = await alice.create_group()
    await alice.add(gid, [bob, carol])  # leaves 1, 2
    r = await alice.send(alice.mls.remove_member(gid, bob.identity.decode()))
    assert r.status_code == 201
    alice.mls.merge_pending_commit(gid)
    await alice.add(gid, [dave])  # takes blank leaf 1
    info = (await alice.get(f"/api/mls/groups/{gid_text(gid)}")).json()
    assert {m["identity"]: m["leaf_index"] for m in info["members"]} == {
        alice.identity.decode(): 0, carol.identity.decode(): 2, dave.identity.decode(): 1
    }
    # Dave can post as leaf 1.
    assert (await dave.join_from_inbox()) == [gid]
    assert (await dave.send(dave.mls.encrypt_message(gid, b"dave here"))).status_code == 201


async def test_welcome_posted_separately_after_its_commit(make_device: MakeDevice) -> None:
    alice, bob = await make_device(), await make_device()
    await bob.upload_key_packages(1)
    gid = await alice.create_group()
    kp = unb64((await alice.claim(bob.user_id)).json()["key_packages"][0]["key_package"])
    commit, welcome = alice.mls.add_member(gid, kp)

    # Before the commit is accepted the Welcome goes nowhere.
    r = await alice.send_welcome(welcome)
    assert r.status_code == 409 and r.json()["error"] == "commit_not_accepted"
    assert await bob.welcomes() == []

    assert (await alice.send(commit)).status_code == 201
    alice.mls.merge_pending_commit(gid)
    r = await alice.send_welcome(welcome)
    assert r.status_code == 201, r.text
    assert r.json() == {"group_id": gid_text(gid), "welcomed": [bob.identity.decode()]}
    again = await alice.send_welcome(welcome)
    assert again.status_code == 409 and again.json()["error"] == "already_welcomed"
    assert await bob.join_from_inbox() == [gid]


async def test_welcome_of_a_losing_commit_is_never_delivered(make_device: MakeDevice) -> None:
    alice, bob, carol, dave = [await make_device() for _ in range(4)]
    for d in (carol, dave):
        await d.upload_key_packages(1)
    await bob.upload_key_packages(1)
    gid = await alice.create_group()
    await alice.add(gid, [bob])
    await bob.join_from_inbox()
    # Both add someone at epoch 1; Alice wins.
    kp_c = unb64((await alice.claim(carol.user_id)).json()["key_packages"][0]["key_package"])
    kp_d = unb64((await bob.claim(dave.user_id)).json()["key_packages"][0]["key_package"])
    commit_a, welcome_a = alice.mls.add_member(gid, kp_c)
    commit_b, welcome_b = bob.mls.add_member(gid, kp_d)
    assert (await alice.send(commit_a, welcome_a)).status_code == 201
    r = await bob.send(commit_b, welcome_b)
    assert r.status_code == 409
    r = await bob.send_welcome(welcome_b)
    assert r.status_code == 409 and r.json()["error"] == "commit_not_accepted"
    assert await dave.welcomes() == []
    assert len(await carol.welcomes()) == 1


async def test_add_by_reference_proposal(make_device: MakeDevice) -> None:
    alice, bob, carol = [await make_device() for _ in range(3)]
    await bob.upload_key_packages(1)
    await carol.upload_key_packages(1)
    gid = await alice.create_group()
    await alice.add(gid, [bob])
    await bob.join_from_inbox()
    bob.cursors[gid] = alice.cursors[gid]
    # Bob proposes adding Carol; Alice commits the proposal by reference.
    kp = unb64((await bob.claim(carol.user_id)).json()["key_packages"][0]["key_package"])
    proposal = bob.mls.group(gid).propose_add(_key_package(kp))
    r = await bob.send(proposal)
    assert r.status_code == 201 and r.json()["content_type"] == "proposal"
    await alice.sync(gid)
    out = alice.mls.group(gid).commit()
    r = await alice.send(out.commit, out.welcome)
    assert r.status_code == 201, r.text
    assert r.json()["welcomed"] == [carol.identity.decode()]
    alice.mls.merge_pending_commit(gid)
    assert await carol.join_from_inbox() == [gid]
    assert (await carol.send(carol.mls.encrypt_message(gid, b"hi"))).status_code == 201
    await bob.sync(gid)
    assert bob.mls.epoch(gid) == 2


async def test_commit_with_unknown_proposal_reference_is_rejected(make_device: MakeDevice) -> None:
    alice, bob = await make_device(), await make_device()
    await bob.upload_key_packages(1)
    gid = await alice.create_group()
    await alice.add(gid, [bob])
    await bob.join_from_inbox()
    # Bob's proposal never reaches the server, but Alice commits it.
    alice.mls.process_message(gid, bob.mls.group(gid).propose_leave())
    out = alice.mls.group(gid).commit()
    r = await alice.send(out.commit)
    assert r.status_code == 400 and r.json()["error"] == "unknown_proposal"


async def test_handshake_as_private_message_is_refused(make_device: MakeDevice) -> None:
    from dataclasses import replace

    alice = await make_device()
    gid = await alice.create_group()
    group = alice.mls.group(gid)
    group.config = replace(group.config, handshake_as_private=True)
    r = await alice.send(group.commit().commit)
    assert r.status_code == 400 and r.json()["error"] == "encrypted_handshake"
    assert "PublicMessage" in r.json()["detail"]


async def test_malformed_messages_get_400_naming_the_problem(
    make_device: MakeDevice, db: asyncpg.Connection
) -> None:
    alice = await make_device()
    gid = await alice.create_group()
    good = alice.mls.encrypt_message(gid, b"x" * 40)
    cases = {
        "empty": b"",
        "random": secrets.token_bytes(64),
        "truncated": good[: len(good) // 2],
        "trailing": good + b"\x00",
        "bad version": b"\x00\x02" + good[2:],
        "key package": alice.mls.generate_key_packages(1)[0],
    }
    for name, data in cases.items():
        r = await alice.send(data)
        assert r.status_code == 400, (name, r.status_code, r.text)
        body = r.json()
        assert body["error"] in {"malformed_mls", "invalid_mls"}, (name, body)
        assert body["detail"], name
    r = await alice.post("/api/mls/messages/group", {"message": "not base64!"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_base64"
    r = await alice.post("/api/mls/messages/group", {"message": b64(good), "group_id": "x"})
    assert r.status_code == 400 and "group_id" in r.json()["detail"]  # no client metadata
    r = await alice.http.post(
        "/api/mls/messages/group", headers=alice.headers, content=b"{not json"
    )
    assert r.status_code == 400
    count = await db.fetchval(
        "SELECT count(*) FROM mls_messages m JOIN mls_groups g ON g.id = m.group_id "
        "WHERE g.group_id = $1", gid
    )
    assert count == 0
    assert (await alice.send(good)).json()["seq"] == 1  # nothing half-written before


async def test_mutated_messages_never_cause_500(make_device: MakeDevice) -> None:
    alice, bob = await make_device(), await make_device()
    await bob.upload_key_packages(1)
    gid = await alice.create_group()
    await alice.add(gid, [bob])
    commit = alice.mls.self_update(gid)
    app = alice.mls.encrypt_message(gid, b"payload")
    rng = secrets.SystemRandom()
    for base in (commit, app):
        for _ in range(60):
            data = bytearray(base)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            r = await alice.send(bytes(data))
            assert r.status_code in {201, 400, 403, 404, 409}, (r.status_code, r.text)


async def test_pagination(make_device: MakeDevice) -> None:
    alice = await make_device()
    gid = await alice.create_group()
    for i in range(7):
        assert (await alice.send(alice.mls.encrypt_message(gid, b"%d" % i))).status_code == 201
    r = await alice.messages(gid, after=2, limit=3)
    page = r.json()
    assert [m["seq"] for m in page["messages"]] == [3, 4, 5]
    assert page["has_more"] is True and page["next_after"] == 5 and page["last_seq"] == 7
    page = (await alice.messages(gid, after=5, limit=3)).json()
    assert [m["seq"] for m in page["messages"]] == [6, 7] and page["has_more"] is False


async def test_group_registration_rules(make_device: MakeDevice) -> None:
    alice, bob = await make_device(), await make_device()
    gid = await alice.create_group()
    bob.mls.create_group(gid)
    bobs = b64(bob.mls.group_info(gid))
    r = await bob.post("/api/mls/groups", {"group_id": gid_text(gid), "group_info": bobs})
    assert r.status_code == 409 and r.json()["error"] == "group_exists"
    r = await bob.post("/api/mls/groups", {"group_id": "!!", "group_info": bobs})
    assert r.status_code == 400 and r.json()["error"] == "invalid_group_id"
    too_long = base64.urlsafe_b64encode(b"x" * 300).decode().rstrip("=")
    r = await bob.post("/api/mls/groups", {"group_id": too_long, "group_info": bobs})
    assert r.status_code == 400
    r = await bob.post("/api/mls/groups", {"group_id": "AAAA", "cipher_suite": 2,
                                           "group_info": bobs})
    assert r.status_code == 400 and r.json()["error"] == "cipher_suite_mismatch"
    groups = (await alice.get("/api/mls/groups")).json()["groups"]
    assert [g["group_id"] for g in groups] == [gid_text(gid)]


async def test_group_creation_needs_its_epoch_zero_group_info(make_device: MakeDevice) -> None:
    alice, bob = await make_device(), await make_device()
    gid = secrets.token_bytes(16)
    alice.mls.create_group(gid)
    other = secrets.token_bytes(16)
    alice.mls.create_group(other)
    bob.mls.create_group(gid)
    r = await alice.post("/api/mls/groups", {"group_id": gid_text(gid)})
    assert r.status_code == 400 and "group_info" in r.json()["detail"]
    cases = {
        "another group's": alice.mls.group_info(other),
        "another device's": bob.mls.group_info(gid),
        "garbage": secrets.token_bytes(80),
        "a KeyPackage": alice.mls.generate_key_packages(1)[0],
    }
    for name, data in cases.items():
        r = await alice.post("/api/mls/groups", {"group_id": gid_text(gid),
                                                 "group_info": b64(data)})
        assert r.status_code == 400 and r.json()["error"] in {"invalid_group_info"}, (name, r.text)
    # A later epoch's GroupInfo of the right group is not the creation's.
    alice.mls.self_update(gid)
    later = alice.mls.group(gid).pending_group_info()
    r = await alice.post("/api/mls/groups", {"group_id": gid_text(gid), "group_info": b64(later)})
    assert r.status_code == 400 and r.json()["error"] == "invalid_group_info"
    assert (await alice.get(f"/api/mls/groups/{gid_text(gid)}")).status_code == 404
    alice.mls.clear_pending_commit(gid)
    r = await alice.post("/api/mls/groups", {"group_id": gid_text(gid),
                                             "group_info": b64(alice.mls.group_info(gid))})
    assert r.status_code == 201, r.text


def _key_package(data: bytes):  # type: ignore[no-untyped-def]
    from mls.message import MLSMessage

    return MLSMessage.deserialize(data).body


async def test_standalone_welcome_for_a_second_group_with_the_same_last_resort_package(
    make_device: MakeDevice,
) -> None:
    alice, bob = await make_device(), await make_device()
    await bob.upload_key_packages(1, last_resort=True)  # bob has nothing else

    async def add_bob(with_welcome: bool) -> tuple[bytes, bytes]:
        gid = await alice.create_group()
        claimed = (await alice.claim(bob.user_id)).json()["key_packages"]
        assert [k["last_resort"] for k in claimed] == [True]
        commit, welcome = alice.mls.add_member(gid, unb64(claimed[0]["key_package"]))
        r = await alice.send(commit, welcome if with_welcome else None)
        assert r.status_code == 201, r.text
        alice.mls.merge_pending_commit(gid)
        return gid, welcome

    # The first group's Welcome went with its commit; the second's comes on its own.
    first, _ = await add_bob(with_welcome=True)
    second, welcome = await add_bob(with_welcome=False)
    r = await alice.send_welcome(welcome)
    assert r.status_code == 201 and r.json()["group_id"] == gid_text(second), r.text
    assert sorted(await bob.join_from_inbox()) == sorted([first, second])
    again = await alice.send_welcome(welcome)
    assert again.status_code == 409 and again.json()["error"] == "already_welcomed"

    # Two groups waiting for a Welcome with the same package: the poster says which.
    third, welcome3 = await add_bob(with_welcome=False)
    fourth, welcome4 = await add_bob(with_welcome=False)
    r = await alice.send_welcome(welcome3)
    assert r.status_code == 400 and r.json()["error"] == "ambiguous_welcome", r.text
    r = await alice.post("/api/mls/messages/welcome",
                         {"welcome": b64(welcome3), "group_id": gid_text(third)})
    assert r.status_code == 201 and r.json()["group_id"] == gid_text(third), r.text
    r = await alice.send_welcome(welcome4)
    assert r.status_code == 201 and r.json()["group_id"] == gid_text(fourth), r.text
