"""The panic wipe's server cleanup retires the device: no KeyPackages, no sessions, and
the other members are told to remove its leaf."""

from __future__ import annotations

import secrets

import pytest

from corecrypto.messenger import Messenger
from corecrypto.transport import MemoryStore
from corecrypto.transport.http import HttpTransport

pytestmark = pytest.mark.asyncio


async def test_server_cleanup_retires_the_device(client_server: object) -> None:
    base = client_server.base_url  # type: ignore[attr-defined]
    suffix = secrets.token_hex(3)
    made: list[Messenger] = []
    try:
        for name in ("alice", "bob"):
            m = Messenger(HttpTransport(base), MemoryStore())
            await m.register(f"{name}{suffix}", f"correct horse {name} battery")
            await m.login_new_device(f"{name}{suffix}", f"correct horse {name} battery")
            made.append(m)
        alice, bob = made
        token = bob.token
        await bob.server_cleanup()()
        http = HttpTransport(base)
        r = await http.request("GET", "/api/auth/session", token=token)
        assert r.status == 401  # its sessions are revoked
        r = await http.request("GET", f"/api/users/bob{suffix}/devices", token=alice.token)
        assert r.status == 200 and r.body["devices"] == []  # gone from the key directory
        r = await http.request("GET", f"/api/mls/key-packages/bob{suffix}", token=alice.token)
        assert r.status == 200 and r.body["key_packages"] == []
    finally:
        for m in made:
            await m.stop()
