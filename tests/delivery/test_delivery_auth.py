"""The Authentication Service: accounts, passwords, sessions, devices, key directory."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
from ds_client import PASSWORD, Device, b64, random_name
from ds_harness import ServerProcess
from ds_mls import new_client

MakeDevice = Callable[..., Awaitable[Device]]


async def _register(http: httpx.AsyncClient, user: str, password: str = PASSWORD) -> httpx.Response:
    return await http.post("/api/auth/register", json={"username": user, "password": password})


async def _login(http: httpx.AsyncClient, user: str, password: str = PASSWORD, **extra: str
                 ) -> httpx.Response:
    return await http.post(
        "/api/auth/login", json={"username": user, "password": password, **extra}
    )


async def test_register_login_logout(base_url: str, db: asyncpg.Connection) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        user = random_name()
        r = await _register(http, user.upper())  # usernames are case-insensitive
        assert r.status_code == 201 and r.json() == {"user_id": user}
        assert (await _register(http, user)).status_code == 409

        r = await _login(http, user)
        assert r.status_code == 200, r.text
        token = r.json()["token"]
        assert r.json()["token_type"] == "bearer" and r.json()["device_id"] is None
        auth = {"Authorization": f"Bearer {token}"}
        r = await http.get("/api/auth/session", headers=auth)
        assert r.json() == {"user_id": user, "device_id": None, "identity": None}

        # Only a hash of the token is stored; the password is an Argon2id hash.
        stored = await db.fetchval(
            "SELECT token_hash FROM sessions s JOIN users u ON u.id = s.user_id "
            "WHERE u.username = $1", user
        )
        assert stored == hashlib.sha256(token.encode()).digest()
        pw_hash = await db.fetchval("SELECT password_hash FROM users WHERE username = $1", user)
        m = re.fullmatch(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$.+", pw_hash)
        assert m is not None
        assert int(m[1]) >= 19 * 1024 and int(m[2]) >= 2 and int(m[3]) >= 1  # OWASP minimum

        assert (await http.post("/api/auth/logout", headers=auth)).status_code == 204
        r = await http.get("/api/auth/session", headers=auth)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


async def test_wrong_password_and_unknown_user_look_the_same(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        user = random_name()
        await _register(http, user)
        wrong = await _login(http, user, "not the password at all")
        unknown = await _login(http, random_name())
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json()


@pytest.mark.parametrize(
    ("password", "accepted"),
    [
        ("short7!", False),  # 7 characters
        ("eight ch", True),  # 8
        ("x" * 64 + "Y", True),  # long passphrases are allowed
        ("ü" * 128, True),  # any Unicode, up to 128
        ("z" * 129, False),
        ("password1", False),  # among the most common
        ("Qwertyuiop", False),  # common, whatever the case
        ("sunshine", False),
    ],
)
async def test_password_policy(base_url: str, password: str, accepted: bool) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        r = await _register(http, random_name(), password)
        assert (r.status_code == 201) is accepted, r.text
        if not accepted:
            assert r.json()["error"] == "weak_password" and r.json()["detail"]


async def test_password_must_not_contain_username(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        user = random_name()
        r = await _register(http, user, f"my {user} secret")
        assert r.status_code == 400 and "username" in r.json()["detail"]


@pytest.mark.parametrize("name", ["ab", "has/slash", "white space", "x" * 40, "-dash"])
async def test_invalid_usernames(base_url: str, name: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        r = await _register(http, name)
        assert r.status_code == 400 and r.json()["error"] == "invalid_username"


@pytest.mark.parametrize(
    "header", [None, "Bearer", "Bearer nonsense", "Basic dXNlcjpwYXNz", "bearer " + "x" * 300]
)
async def test_unauthenticated_requests_get_401(base_url: str, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    async with httpx.AsyncClient(base_url=base_url) as http:
        for method, path in [
            ("GET", "/api/auth/session"),
            ("GET", "/api/mls/key-packages/count"),
            ("POST", "/api/mls/messages/group"),
            ("GET", "/api/mls/messages/AAAA"),
            ("GET", "/api/users/alice/devices"),
        ]:
            r = await http.request(method, path, headers=headers, json={})
            assert r.status_code == 401, (method, path, r.text)
            assert r.json()["error"] == "unauthorized"


async def test_device_registration_and_key_directory(
    base_url: str, make_device: MakeDevice
) -> None:
    alice = await make_device()
    async with httpx.AsyncClient(base_url=base_url) as http:
        # A second device of Alice, server-assigned id.
        token = (await _login(http, alice.user_id)).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        second = new_client(alice.user_id, "unused")
        r = await http.post("/api/auth/devices", headers=auth, json={
            "signature_key": b64(second.signature_public_key), "cipher_suite": 1, "name": "laptop"})
        assert r.status_code == 201, r.text
        device_id = r.json()["device_id"]
        assert r.json()["identity"] == f"{alice.user_id}/{device_id}"
        # The session now acts for that device, and cannot register another.
        r = await http.get("/api/auth/session", headers=auth)
        assert r.json()["device_id"] == device_id
        third = new_client(alice.user_id, "x")
        r = await http.post("/api/auth/devices", headers=auth, json={
            "signature_key": b64(third.signature_public_key), "cipher_suite": 1})
        assert r.status_code == 409 and r.json()["error"] == "session_has_device"

        # Logging in for a device: one's own only.
        r = await _login(http, alice.user_id, device_id=alice.device_id)
        assert r.status_code == 200 and r.json()["device_id"] == alice.device_id
        bob = await make_device()
        r = await _login(http, bob.user_id, device_id=alice.device_id)
        assert r.status_code == 403 and r.json()["error"] == "not_your_device"

    r = await bob.get(f"/api/users/{alice.user_id}/devices")
    assert r.status_code == 200
    listed = {d["device_id"]: d for d in r.json()["devices"]}
    assert set(listed) == {alice.device_id, device_id}
    assert listed[alice.device_id]["signature_key"] == b64(alice.mls.signature_public_key)
    assert listed[device_id]["name"] == "laptop"
    assert listed[device_id]["identity"] == f"{alice.user_id}/{device_id}"
    r = await bob.get(f"/api/users/{random_name()}/devices")
    assert r.status_code == 404


async def test_device_key_validation(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        user = random_name()
        await _register(http, user)
        auth = {"Authorization": f"Bearer {(await _login(http, user)).json()['token']}"}
        key = new_client(user, "d").signature_public_key
        cases = [
            ({"signature_key": b64(key[:31]), "cipher_suite": 1}, "invalid_signature_key"),
            ({"signature_key": b64(key), "cipher_suite": 2}, "invalid_signature_key"),
            ({"signature_key": b64(key), "cipher_suite": 99}, "unsupported_cipher_suite"),
            ({"signature_key": "***", "cipher_suite": 1}, "invalid_base64"),
            ({"signature_key": b64(key), "cipher_suite": 1, "device_id": "Bad/Id"},
             "invalid_device_id"),
        ]
        for body, code in cases:
            r = await http.post("/api/auth/devices", headers=auth, json=body)
            assert r.status_code == 400 and r.json()["error"] == code, (body, r.text)
        r = await http.post("/api/auth/devices", headers=auth, json={"cipher_suite": 1})
        assert r.status_code == 400 and "signature_key" in r.json()["detail"]


async def test_same_signature_key_cannot_be_registered_twice(make_device: MakeDevice) -> None:
    alice = await make_device()
    r = await alice.http.post("/api/auth/login", json={"username": alice.user_id,
                                                       "password": PASSWORD})
    auth = {"Authorization": f"Bearer {r.json()['token']}"}
    r = await alice.http.post("/api/auth/devices", headers=auth, json={
        "signature_key": b64(alice.mls.signature_public_key), "cipher_suite": 1})
    assert r.status_code == 409 and r.json()["error"] == "duplicate_key"


@pytest.fixture(scope="module")
def expiring_server(
    module_server_factory: Callable[..., ServerProcess], database_factory: Callable[[], str]
) -> tuple[ServerProcess, str]:
    url = database_factory()
    server = module_server_factory(
        url, DS_SESSION_IDLE_SECONDS="600", DS_SESSION_ABSOLUTE_SECONDS="3600")
    return server, url


async def test_idle_and_absolute_session_expiry(
        expiring_server: tuple[ServerProcess, str]) -> None:
    # No sleeping: the sessions' timestamps are moved back in the database (the server
    # compares them with the database's now()), far from either limit.
    server, url = expiring_server
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        user = random_name()
        await _register(http, user)

        async def session(token: str) -> int:
            r = await http.get("/api/auth/session", headers={"Authorization": f"Bearer {token}"})
            return r.status_code

        async def age(token: str, *, unused: int, old: int = 0) -> None:
            digest = hashlib.sha256(token.encode()).digest()
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(
                    "UPDATE sessions SET last_used_at = now() - make_interval(secs => $2), "
                    "created_at = created_at - make_interval(secs => $3), "
                    "expires_at = expires_at - make_interval(secs => $3) "
                    "WHERE token_hash = $1", digest, float(unused), float(old))
            finally:
                await conn.close()

        tokens = [(await _login(http, user)).json()["token"] for _ in range(4)]
        assert [await session(t) for t in tokens] == [200] * 4
        recent, idle, busy, fresh = tokens
        await age(recent, unused=300)  # used 5 minutes ago: half the idle timeout
        await age(idle, unused=900)  # unused for 15 minutes: past the idle timeout
        await age(busy, unused=0, old=3700)  # in use, but older than the absolute limit
        assert [await session(t) for t in tokens] == [200, 401, 401, 200]
        del fresh


async def test_logins_and_registrations_are_rate_limited_per_address(
    server_factory: Callable[..., ServerProcess], database_factory: Callable[[], str],
) -> None:
    """Flood control per client address, whatever the accounts (the per-account
    throttle that cannot lock the real user out is in test_delivery_accounts)."""
    srv = server_factory(database_factory(), DS_RATE_LOGIN="5/60", DS_RATE_REGISTER="5/60")
    async with httpx.AsyncClient(base_url=srv.base_url) as http:
        user = random_name()
        assert (await _register(http, user)).status_code == 201
        codes = [(await _login(http, random_name(), "wrong password " + secrets.token_hex(2))
                  ).status_code for _ in range(6)]
        assert codes == [401] * 5 + [429]
        r = await _login(http, user)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        registrations = [(await _register(http, random_name())).status_code for _ in range(5)]
        assert registrations == [201] * 4 + [429]  # one was used above


def test_no_secret_in_server_log(server: ServerProcess, log_dir: Path) -> None:
    del log_dir
    text = server.log_path.read_text(errors="replace")
    assert PASSWORD not in text
    assert "Bearer" not in text
