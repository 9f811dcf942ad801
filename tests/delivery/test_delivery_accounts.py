"""Accounts and sessions: password change, sessions, log out everywhere, retiring
devices, the login throttle and who may name the client address."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from ds_client import PASSWORD, Device, add_device, random_name, unb64
from ds_harness import ServerProcess
from websockets.exceptions import ConnectionClosed

MakeDevice = Callable[..., Awaitable[Device]]
NEW_PASSWORD = "a brand new passphrase 42"


async def _closed_with(conn: Any, code: int) -> None:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(conn.recv(), 10)
    assert info.value.rcvd is not None and info.value.rcvd.code == code, info.value


async def _delete(device: Device, path: str, body: Any = None) -> httpx.Response:
    return await device.http.request("DELETE", path, headers=device.headers, json=body)


async def test_password_change_reauthenticates_and_revokes_other_sessions(
    make_device: MakeDevice,
) -> None:
    alice = await make_device()
    other = await add_device(alice.base_url, alice.user_id)
    try:
        conn = await other.ws()
        r = await alice.post("/api/auth/password", {"old_password": "not it at all!",
                                                    "new_password": NEW_PASSWORD})
        assert r.status_code == 403 and r.json()["error"] == "wrong_password"
        r = await alice.post("/api/auth/password", {"old_password": PASSWORD,
                                                    "new_password": "password"})
        assert r.status_code == 400 and r.json()["error"] == "weak_password"
        assert (await other.get("/api/auth/session")).status_code == 200
        r = await alice.post("/api/auth/password", {"old_password": PASSWORD,
                                                    "new_password": NEW_PASSWORD})
        assert r.status_code == 204, r.text
        await _closed_with(conn, 4401)  # at once, not at the next periodic check
        assert (await other.get("/api/auth/session")).status_code == 401
        assert (await alice.get("/api/auth/session")).status_code == 200
        login = {"username": alice.user_id, "password": PASSWORD}
        assert (await alice.http.post("/api/auth/login", json=login)).status_code == 401
        login["password"] = NEW_PASSWORD
        assert (await alice.http.post("/api/auth/login", json=login)).status_code == 200
    finally:
        await other.close()


async def test_sessions_and_logout_everywhere(make_device: MakeDevice) -> None:
    alice = await make_device()
    other = await add_device(alice.base_url, alice.user_id)
    third = await add_device(alice.base_url, alice.user_id)
    try:
        sessions = (await alice.get("/api/auth/sessions")).json()["sessions"]
        assert {s["device_id"] for s in sessions} == {alice.device_id, other.device_id,
                                                      third.device_id}
        assert [s["device_id"] for s in sessions if s["current"]] == [alice.device_id]
        assert all("token" not in s for s in sessions)
        # Revoke one, by id (only the user's own).
        theirs = next(s for s in sessions if s["device_id"] == third.device_id)
        assert (await _delete(other, f"/api/auth/sessions/{theirs['session_id']}")
                ).status_code == 204
        assert (await third.get("/api/auth/session")).status_code == 401
        stranger = await make_device()
        mine = next(s for s in sessions if s["device_id"] == alice.device_id)
        r = await _delete(stranger, f"/api/auth/sessions/{mine['session_id']}")
        assert r.status_code == 404
        r = await _delete(stranger, f"/api/auth/sessions/{2**63}")
        assert r.status_code == 404
        # Everywhere: every session, the caller's too, and their sockets.
        conns = [await alice.ws(), await other.ws()]
        assert (await alice.post("/api/auth/logout-all", {})).status_code == 204
        for conn in conns:
            await _closed_with(conn, 4401)
        for device in (alice, other):
            assert (await device.get("/api/auth/session")).status_code == 401
        assert (await stranger.get("/api/auth/session")).status_code == 200
    finally:
        await other.close()
        await third.close()


async def test_retiring_devices(make_device: MakeDevice, db: asyncpg.Connection) -> None:
    alice, bob = await make_device(), await make_device()
    bob2 = await add_device(bob.base_url, bob.user_id)
    try:
        await bob2.upload_key_packages(1, last_resort=True)
        await bob2.upload_key_packages(2)
        # Mallory (here Alice) claimed one of bob2's KeyPackages before it was retired.
        claimed = [unb64(k["key_package"]) for k in
                   (await alice.claim(bob.user_id)).json()["key_packages"]
                   if k["device_id"] == bob2.device_id]
        assert claimed
        listed = (await bob.get("/api/auth/devices")).json()["devices"]
        assert {(d["device_id"], d["current"], d["retired"]) for d in listed} == {
            (bob.device_id, True, False), (bob2.device_id, False, False)}
        # Another device needs the password.
        path = f"/api/auth/devices/{bob2.device_id}"
        r = await _delete(bob, path)
        assert r.status_code == 400 and r.json()["error"] == "password_required"
        r = await _delete(bob, path, {"password": "wrong wrong wrong"})
        assert r.status_code == 403 and r.json()["error"] == "wrong_password"
        r = await _delete(alice, path, {"password": PASSWORD})
        assert r.status_code == 404  # not Alice's device
        conn = await bob2.ws()
        r = await _delete(bob, path, {"password": PASSWORD})
        assert r.status_code == 200, r.text
        assert r.json()["retired"] is True and r.json()["group_ids"] == []
        await _closed_with(conn, 4401)
        # It is gone everywhere: sessions, KeyPackages, directory, claims, logins.
        assert (await bob2.get("/api/auth/session")).status_code == 401
        pk = await db.fetchval("SELECT d.id FROM devices d JOIN users u ON u.id = d.user_id "
                               "WHERE u.username = $1 AND d.device_id = $2",
                               bob.user_id, bob2.device_id)
        assert await db.fetchval("SELECT count(*) FROM mls_key_packages WHERE device_id = $1",
                                 pk) == 0
        directory = (await alice.get(f"/api/users/{bob.user_id}/devices")).json()["devices"]
        assert [d["device_id"] for d in directory] == [bob.device_id]
        r = await alice.claim(bob.user_id)
        assert bob2.device_id not in r.text
        r = await bob.http.post("/api/auth/login", json={
            "username": bob.user_id, "password": PASSWORD, "device_id": bob2.device_id})
        assert r.status_code == 403 and r.json()["error"] == "device_retired"
        listed = (await bob.get("/api/auth/devices")).json()["devices"]
        assert {(d["device_id"], d["retired"]) for d in listed} == {
            (bob.device_id, False), (bob2.device_id, True)}
        # The KeyPackage claimed before cannot add the retired device.
        gid = await alice.create_group()
        commit, welcome = alice.mls.add_members(gid, claimed[:1])
        r = await alice.send(commit, welcome)
        assert r.status_code == 400 and r.json()["error"] == "retired_device", r.text
        alice.mls.clear_pending_commit(gid)
        # Retiring again changes nothing; a device retires itself without a password.
        assert (await _delete(bob, path, {"password": PASSWORD})).status_code == 200
        r = await _delete(bob, f"/api/auth/devices/{bob.device_id}")
        assert r.status_code == 200
        assert (await bob.get("/api/auth/session")).status_code == 401
    finally:
        await bob2.close()


async def _attempt(http: httpx.AsyncClient, user: str, password: str, address: str) -> int:
    r = await http.post("/api/auth/login", json={"username": user, "password": password},
                        headers={"X-Forwarded-For": address})
    return r.status_code


@pytest.fixture
def proxied(server_factory: Callable[..., ServerProcess],
            database_factory: Callable[[], str]) -> ServerProcess:
    """A server behind a (simulated) reverse proxy on 127.0.0.1 it is told to trust."""
    return server_factory(database_factory(), DS_FORWARDED_ALLOW_IPS="127.0.0.1")


async def test_attacker_cannot_lock_the_user_out(proxied: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=proxied.base_url, timeout=60) as http:
        user = random_name()
        r = await http.post("/api/auth/register", json={"username": user, "password": PASSWORD})
        assert r.status_code == 201
        assert await _attempt(http, user, PASSWORD, "198.51.100.7") == 200  # her usual place
        attacker = "203.0.113.66"
        codes = [await _attempt(http, user, f"guess {i} guess", attacker) for i in range(7)]
        # Five free failures, then the pair backs off (the 7th comes too early).
        assert codes[:6] == [401] * 6 and codes[6] == 429, codes
        assert await _attempt(http, user, PASSWORD, attacker) == 429  # even the right one
        # The real user, from where she usually is and from a new place, gets in.
        assert await _attempt(http, user, PASSWORD, "198.51.100.7") == 200
        assert await _attempt(http, user, PASSWORD, "192.0.2.10") == 200
        # IPv6: the attacker's whole /64 counts as one.
        six = [await _attempt(http, user, f"v6 guess {i}", f"2001:db8:1:2::{i + 1:x}")
               for i in range(7)]
        assert six[:6] == [401] * 6 and six[6] == 429, six


async def test_distributed_guessing_caps_untrusted_places_only(proxied: ServerProcess) -> None:
    from delivery.throttle import ACCOUNT_FAILURES_PER_HOUR

    async with httpx.AsyncClient(base_url=proxied.base_url, timeout=60) as http:
        user = random_name()
        r = await http.post("/api/auth/register", json={"username": user, "password": PASSWORD})
        assert r.status_code == 201
        home = "198.51.100.8"
        assert await _attempt(http, user, PASSWORD, home) == 200
        # A botnet: one guess per address, none of them throttled as a pair.
        sem = asyncio.Semaphore(8)

        async def guess(i: int) -> int:
            async with sem:
                return await _attempt(http, user, "botnet guess", f"10.{i // 250}.{i % 250}.1")

        codes = await asyncio.gather(*(guess(i) for i in range(ACCOUNT_FAILURES_PER_HOUR)))
        assert set(codes) == {401}
        # Now unknown places wait, even with the right password ...
        assert await _attempt(http, user, PASSWORD, "192.0.2.99") == 429
        # ... but she still gets in from where she logged in before.
        assert await _attempt(http, user, PASSWORD, home) == 200


async def test_forwarded_for_is_ignored_unless_configured(
    server_factory: Callable[..., ServerProcess], database_factory: Callable[[], str]
) -> None:
    srv = server_factory(database_factory())
    async with httpx.AsyncClient(base_url=srv.base_url, timeout=60) as http:
        user = random_name()
        r = await http.post("/api/auth/register", json={"username": user, "password": PASSWORD})
        assert r.status_code == 201
        # Each attempt claims a fresh address; the server counts them all as the peer's.
        codes = [await _attempt(http, user, "wrong wrong", f"203.0.113.{i}") for i in range(7)]
        assert codes[-1] == 429, codes
