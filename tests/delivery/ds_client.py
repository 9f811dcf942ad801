"""A small client of the delivery service for tests: HTTP calls, WebSocket, an MLS client."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import ssl
from dataclasses import dataclass, field
from typing import Any

import httpx
from ds_mls import new_client, pending_group_info
from websockets.asyncio.client import ClientConnection, connect

from corecrypto import CoreCrypto

PASSWORD = "correct horse battery staple"
# One TLS context for every client (the tests speak plain HTTP; building a context per
# client costs ~30 ms of certificate loading).
_TLS = ssl.create_default_context()
# Idle connections are dropped by the client long before the server's keep-alive
# timeout (30 s) could close one just as a request goes out on it.
_LIMITS = httpx.Limits(keepalive_expiry=3.0)
# send(): attach the GroupInfo of our pending commit if the message is that commit.
AUTO: Any = object()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def gid_text(group_id: bytes) -> str:
    return base64.urlsafe_b64encode(group_id).decode().rstrip("=")


def random_name(prefix: str = "u") -> str:
    return f"{prefix}{secrets.token_hex(6)}"


@dataclass
class Device:
    """A registered, logged-in device with its own MLS client."""

    base_url: str
    user_id: str
    device_id: str
    token: str
    mls: CoreCrypto
    http: httpx.AsyncClient
    welcome_cursor: int = 0
    cursors: dict[bytes, int] = field(default_factory=dict)

    @property
    def identity(self) -> bytes:
        return f"{self.user_id}/{self.device_id}".encode()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/ws"

    async def close(self) -> None:
        await self.http.aclose()

    # -- HTTP -------------------------------------------------------------------------

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.http.get(path, headers=self.headers, **kw)

    async def post(self, path: str, body: Any) -> httpx.Response:
        return await self.http.post(path, headers=self.headers, json=body)

    async def upload_key_packages(self, n: int = 1, last_resort: bool = False,
                                  suite: int | None = None) -> list[bytes]:
        kps = self.mls.generate_key_packages(n, last_resort=last_resort, ciphersuite=suite)
        r = await self.post("/api/mls/key-packages", {"key_packages": [b64(k) for k in kps]})
        assert r.status_code == 201, r.text
        return kps

    async def claim(self, user_id: str, suite: int | None = None) -> httpx.Response:
        query = "" if suite is None else f"?cipher_suite={suite}"
        return await self.get(f"/api/mls/key-packages/{user_id}{query}")

    async def create_group(self, group_id: bytes | None = None, suite: int | None = None
                           ) -> bytes:
        gid = group_id or secrets.token_bytes(16)
        self.mls.create_group(gid, suite)
        body: dict[str, Any] = {"group_id": gid_text(gid),
                                "group_info": b64(self.mls.group_info(gid))}
        if suite is not None:
            body["cipher_suite"] = suite
        r = await self.post("/api/mls/groups", body)
        assert r.status_code == 201, r.text
        return gid

    async def send(
        self, message: bytes, welcome: bytes | None = None, group_info: bytes | None = AUTO
    ) -> httpx.Response:
        """Post a message; a commit of ours goes with the GroupInfo of the epoch it creates
        unless ``group_info`` says otherwise (None: without one)."""
        body: dict[str, str] = {"message": b64(message)}
        if welcome is not None:
            body["welcome"] = b64(welcome)
        if group_info is AUTO:
            group_info = pending_group_info(self.mls, message)
        if group_info is not None:
            body["group_info"] = b64(group_info)
        return await self.post("/api/mls/messages/group", body)

    async def send_welcome(self, welcome: bytes) -> httpx.Response:
        return await self.post("/api/mls/messages/welcome", {"welcome": b64(welcome)})

    async def messages(self, group_id: bytes, after: int = 0, limit: int = 500) -> httpx.Response:
        return await self.get(
            f"/api/mls/messages/{gid_text(group_id)}", params={"after": after, "limit": limit}
        )

    async def all_messages(self, group_id: bytes, after: int = 0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            r = await self.messages(group_id, after)
            assert r.status_code == 200, r.text
            page = r.json()
            out.extend(page["messages"])
            after = page["next_after"]
            if not page["has_more"]:
                return out

    async def welcomes(self, after: int = 0) -> list[dict[str, Any]]:
        r = await self.get("/api/mls/welcomes", params={"after": after})
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["welcomes"]
        return items

    # -- MLS flows ----------------------------------------------------------------

    async def add(self, group_id: bytes, others: list[Device]) -> dict[str, Any]:
        """Claim KeyPackages of ``others``, commit their Adds with the Welcome, merge."""
        kps = []
        suite = self.mls.group_suite(group_id)
        for other in others:
            r = await self.claim(other.user_id, suite)
            assert r.status_code == 200, r.text
            for item in r.json()["key_packages"]:
                if item["device_id"] == other.device_id:
                    kps.append(unb64(item["key_package"]))
        assert len(kps) == len(others), "a device had no KeyPackage"
        commit, welcome = self.mls.add_members(group_id, kps)
        r = await self.send(commit, welcome)
        assert r.status_code == 201, r.text
        self.mls.merge_pending_commit(group_id)
        result: dict[str, Any] = r.json()
        self.cursors[group_id] = result["seq"]
        return result

    async def join_from_inbox(self) -> list[bytes]:
        """Process every new Welcome of the inbox; return the joined group ids."""
        joined = []
        for item in await self.welcomes(self.welcome_cursor):
            self.welcome_cursor = item["welcome_seq"]
            gid = self.mls.process_welcome(unb64(item["data"]))
            joined.append(gid)
        return joined

    async def sync(self, group_id: bytes) -> list[Any]:
        """Fetch and process everything after the cursor, in order."""
        results = []
        for m in await self.all_messages(group_id, self.cursors.get(group_id, 0)):
            results.append(self.mls.process_message(group_id, unb64(m["data"])))
            self.cursors[group_id] = m["seq"]
        return results

    # -- WebSocket ----------------------------------------------------------------

    async def ws(
        self,
        cursors: dict[bytes, int] | None = None,
        welcome_after: int = 0,
        url: str | None = None,
    ) -> ClientConnection:
        """Connect and authenticate; returns after the ``ready`` frame."""
        conn = await connect(url or self.ws_url, max_size=8 * 1024 * 1024)
        await conn.send(
            json.dumps(
                {
                    "type": "auth",
                    "token": self.token,
                    "cursors": {gid_text(g): s for g, s in (cursors or {}).items()},
                    "welcome_after": welcome_after,
                }
            )
        )
        ready = json.loads(await asyncio.wait_for(conn.recv(), 10))
        assert ready["type"] == "ready", ready
        return conn


async def register_device(base_url: str, username: str | None = None) -> Device:
    """A new user with one device (MLS credential ``<user>/<device>``) and a session."""
    http = httpx.AsyncClient(base_url=base_url, timeout=60, verify=_TLS, limits=_LIMITS)
    user = username or random_name()
    r = await http.post("/api/auth/register", json={"username": user, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return await add_device(base_url, user, http)


async def add_device(base_url: str, user: str, http: httpx.AsyncClient | None = None) -> Device:
    """Another device of an existing user (logs in anew, registers the device)."""
    http = http or httpx.AsyncClient(base_url=base_url, timeout=60, verify=_TLS,
                                     limits=_LIMITS)
    r = await http.post("/api/auth/login", json={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    device_id = secrets.token_hex(4)
    mls = new_client(user, device_id)
    r = await http.post(
        "/api/auth/devices",
        headers={"Authorization": f"Bearer {token}"},
        json={"signature_key": b64(mls.signature_public_key), "cipher_suite": 1,
              "device_id": device_id},
    )
    assert r.status_code == 201, r.text
    return Device(base_url, user, device_id, token, mls, http)


async def next_event(conn: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    """The next JSON frame."""
    event: dict[str, Any] = json.loads(await asyncio.wait_for(conn.recv(), timeout))
    return event
