"""The WebSocket push: authentication, order, resumption, Welcomes, revocation."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable

import pytest
from ds_client import Device, gid_text, next_event, register_device
from ds_harness import ServerProcess
from ds_mls import external_join, plaintext_of
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

MakeDevice = Callable[..., Awaitable[Device]]


async def _closed_with(conn: object, code: int) -> str:
    """Read until the server closes; check the close code; return the error frame text."""
    text = ""
    with pytest.raises(ConnectionClosed) as info:
        while True:
            text = await asyncio.wait_for(conn.recv(), 10)  # type: ignore[attr-defined]
    assert info.value.rcvd is not None and info.value.rcvd.code == code, info.value
    return text


async def _pair(make_device: MakeDevice) -> tuple[Device, Device, bytes]:
    alice, bob = await make_device(), await make_device()
    await bob.upload_key_packages(1)
    gid = await alice.create_group()
    await alice.add(gid, [bob])
    await bob.join_from_inbox()
    return alice, bob, gid


async def test_auth_is_required_and_not_in_the_url(base_url: str, make_device: MakeDevice
                                                  ) -> None:
    alice = await make_device()
    ws = base_url.replace("http://", "ws://") + "/ws"
    async with connect(ws) as conn:
        await conn.send("hello")
        text = await _closed_with(conn, 4400)
        assert json.loads(text)["error"] == "bad_request"
    async with connect(ws) as conn:
        await conn.send(json.dumps({"type": "auth", "token": "nope"}))
        assert json.loads(await _closed_with(conn, 4401))["error"] == "unauthorized"
    async with connect(f"{ws}?token={alice.token}") as conn:  # ignored: auth is a frame
        await conn.send(json.dumps({"type": "ping"}))
        await _closed_with(conn, 4400)
    async with connect(ws) as conn:
        await conn.send(json.dumps({"type": "auth", "token": alice.token, "cursors": [1]}))
        await _closed_with(conn, 4400)


async def test_auth_timeout(server_factory: Callable[..., ServerProcess],
                            database_factory: Callable[[], str]) -> None:
    srv = server_factory(database_factory(), DS_WS_AUTH_TIMEOUT_SECONDS="1")
    async with connect(srv.ws_url) as conn:
        await _closed_with(conn, 4408)


async def test_pushes_in_sequence_order(make_device: MakeDevice) -> None:
    alice, bob, gid = await _pair(make_device)
    conn = await bob.ws(cursors={gid: 1}, welcome_after=1)
    try:
        sent = []
        for i in range(20):
            r = await alice.send(alice.mls.encrypt_message(gid, b"m%d" % i))
            sent.append(r.json()["seq"])
        got = [await next_event(conn) for _ in range(20)]
        assert [e["type"] for e in got] == ["mls-message"] * 20
        assert [e["seq"] for e in got] == sent == list(range(2, 22))
        assert all(e["group_id"] == gid_text(gid) for e in got)
        assert all(e["sender"] == alice.identity.decode() for e in got)
        await conn.send(json.dumps({"type": "ping"}))
        assert (await next_event(conn))["type"] == "pong"
    finally:
        await conn.close()


async def test_resume_misses_nothing_across_reconnects(make_device: MakeDevice) -> None:
    alice, bob, gid = await _pair(make_device)
    seen: list[int] = []
    total = 30

    async def producer() -> None:
        for i in range(total):
            r = await alice.send(alice.mls.encrypt_message(gid, b"%d" % i))
            assert r.status_code == 201
            await asyncio.sleep(0.005)

    task = asyncio.create_task(producer())
    try:
        while len(seen) < total:
            # Reconnect after every few events, resuming from the last seen sequence.
            conn = await bob.ws(cursors={gid: seen[-1] if seen else 1}, welcome_after=1)
            try:
                for _ in range(4):
                    if len(seen) == total:
                        break
                    event = await next_event(conn)
                    seen.append(event["seq"])
            finally:
                await conn.close()
    finally:
        await task
    assert seen == list(range(2, 2 + total))


async def test_welcome_then_group_messages(make_device: MakeDevice) -> None:
    alice, carol = await make_device(), await make_device()
    await carol.upload_key_packages(1)
    conn = await carol.ws()
    try:
        gid = await alice.create_group()
        await alice.send(alice.mls.encrypt_message(gid, b"before carol"))
        await alice.add(gid, [carol])
        await alice.send(alice.mls.encrypt_message(gid, b"after carol"))
        welcome = await next_event(conn)
        assert welcome["type"] == "mls-welcome" and welcome["welcome_seq"] == 1
        assert welcome["group_id"] == gid_text(gid)
        message = await next_event(conn)
        # Carol sees only what follows the commit that added her.
        assert message["type"] == "mls-message" and message["seq"] == 3
        joined = carol.mls.process_welcome(base64.b64decode(welcome["data"]))
        assert joined == gid
        result = carol.mls.process_message(gid, base64.b64decode(message["data"]))
        assert plaintext_of(result) == b"after carol"
    finally:
        await conn.close()


async def test_reconnect_replays_welcomes_then_messages(make_device: MakeDevice) -> None:
    alice, carol = await make_device(), await make_device()
    await carol.upload_key_packages(1)
    gid = await alice.create_group()
    await alice.add(gid, [carol])
    for i in range(3):
        await alice.send(alice.mls.encrypt_message(gid, b"%d" % i))
    conn = await carol.ws()  # offline until now: everything is replayed, Welcome first
    try:
        events = [await next_event(conn) for _ in range(4)]
        assert [e["type"] for e in events] == ["mls-welcome"] + ["mls-message"] * 3
        assert [e.get("seq") for e in events[1:]] == [2, 3, 4]
    finally:
        await conn.close()
    conn = await carol.ws(cursors={gid: 4}, welcome_after=1)  # fully caught up: silence
    try:
        with pytest.raises(TimeoutError):
            await next_event(conn, timeout=0.5)
    finally:
        await conn.close()


async def test_removed_member_gets_the_removal_and_nothing_after(make_device: MakeDevice) -> None:
    alice, bob, gid = await _pair(make_device)
    conn = await bob.ws(cursors={gid: 1}, welcome_after=1)
    try:
        r = await alice.send(alice.mls.remove_member(gid, bob.identity.decode()))
        alice.mls.merge_pending_commit(gid)
        removal = r.json()["seq"]
        await alice.send(alice.mls.encrypt_message(gid, b"bob is gone"))
        event = await next_event(conn)
        assert event["seq"] == removal and event["content_type"] == "commit"
        with pytest.raises(TimeoutError):
            await next_event(conn, timeout=1.0)
    finally:
        await conn.close()


async def test_logout_closes_open_sockets(
    server_factory: Callable[..., ServerProcess], database_factory: Callable[[], str]
) -> None:
    srv = server_factory(database_factory(), DS_WS_REAUTH_SECONDS="1")
    alice = await register_device(srv.base_url)
    try:
        conn = await alice.ws()
        assert (await alice.post("/api/auth/logout", {})).status_code == 204
        text = await _closed_with(conn, 4401)
        assert text == ""
    finally:
        await alice.close()


async def test_oversized_frame_is_refused(make_device: MakeDevice) -> None:
    alice = await make_device()
    conn = await alice.ws()
    await conn.send("x" * (128 * 1024))
    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(conn.recv(), 10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009  # message too big


async def test_socket_follows_a_group_created_after_connecting(make_device: MakeDevice) -> None:
    alice = await make_device()
    conn = await alice.ws()
    try:
        gid = await alice.create_group()
        r = await alice.send(alice.mls.encrypt_message(gid, b"first"))
        event = await next_event(conn)
        assert event["group_id"] == gid_text(gid) and event["seq"] == r.json()["seq"] == 1
    finally:
        await conn.close()


async def test_external_join_takes_leftmost_blank_leaf_and_is_streamed(
    make_device: MakeDevice,
) -> None:
    alice, bob, carol, dave = [await make_device() for _ in range(4)]
    for d in (bob, carol):
        await d.upload_key_packages(1)
    gid = await alice.create_group()
    await alice.add(gid, [bob, carol])  # leaves 1, 2
    removal = alice.mls.remove_member(gid, bob.identity.decode())
    assert (await alice.send(removal)).status_code == 201
    alice.mls.merge_pending_commit(gid)
    r = await alice.post(f"/api/mls/groups/{gid_text(gid)}/invitations", {"user_id": dave.user_id})
    assert r.status_code == 201, r.text
    conn = await dave.ws()
    try:
        commit, group_info, state = external_join(dave.mls, alice.mls.group_info(gid))
        r = await dave.send(commit, group_info=group_info)
        assert r.status_code == 201, r.text
        assert dave.mls.import_group_state(state) == gid
        info = (await dave.get(f"/api/mls/groups/{gid_text(gid)}")).json()
        assert {m["identity"]: m["leaf_index"] for m in info["members"]}[
            dave.identity.decode()] == 1
        await alice.sync(gid)
        r = await alice.send(alice.mls.encrypt_message(gid, b"welcome, dave"))
        event = await next_event(conn)  # his own commit is not visible to him, this is
        assert event["seq"] == r.json()["seq"]
        result = dave.mls.process_message(gid, base64.b64decode(event["data"]))
        assert plaintext_of(result) == b"welcome, dave"
        assert (await dave.send(dave.mls.encrypt_message(gid, b"hi"))).status_code == 201
    finally:
        await conn.close()
