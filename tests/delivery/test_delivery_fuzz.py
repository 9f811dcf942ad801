"""Arbitrary request bodies never get a 500: every endpoint answers bad input with a
4xx that names the problem."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from ds_client import register_device
from ds_harness import ServerProcess
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12,
)
B64 = st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode())
FIELDS = {
    "/api/auth/register": {"username": st.text(max_size=40), "password": st.text(max_size=140)},
    "/api/auth/login": {"username": st.text(max_size=40), "password": st.text(max_size=40),
                        "device_id": st.text(max_size=40)},
    "/api/auth/devices": {"signature_key": B64, "cipher_suite": st.integers(-5, 70000),
                          "name": st.text(max_size=70), "device_id": st.text(max_size=40)},
    "/api/mls/key-packages": {"key_packages": st.lists(B64, max_size=3)},
    "/api/mls/groups": {"group_id": st.text(max_size=40), "cipher_suite": st.integers(-5, 9),
                        "group_info": B64},
    "/api/mls/messages/group": {"message": B64, "welcome": B64, "group_info": B64},
    "/api/mls/messages/welcome": {"welcome": B64, "group_id": st.text(max_size=40)},
    "/api/auth/password": {"old_password": st.text(max_size=40),
                           "new_password": st.text(max_size=140)},
    "/api/mls/groups/AAAAAAAAAAAAAAAAAAAAAA/invitations": {
        "user_id": st.text(max_size=40), "expires_in_seconds": st.integers(-5, 2**70)},
}
ALLOWED = {200, 201, 204, 400, 401, 403, 404, 409, 413, 429}


def _no_traceback(server: ServerProcess) -> None:
    """Bad input is answered, never crashes a handler (nothing logged as a bug)."""
    log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "unhandled exception" not in log, log[-3000:]


@pytest.fixture(scope="module")
def token(server: ServerProcess) -> str:
    async def make() -> str:
        device = await register_device(server.base_url)
        await device.close()
        return device.token

    return asyncio.run(make())


def _body(draw: st.DrawFn, path: str) -> Any:
    if draw(st.booleans()):
        return draw(JSON)
    fields = FIELDS[path]
    chosen = draw(st.sets(st.sampled_from(sorted(fields)), max_size=len(fields)))
    return {name: draw(fields[name]) for name in chosen}


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes]:
    path = draw(st.sampled_from(sorted(FIELDS)))
    if draw(st.integers(0, 9)) == 0:
        return path, draw(st.binary(max_size=200))  # not JSON at all
    return path, json.dumps(_body(draw, path)).encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests(), authenticated=st.booleans())
def test_arbitrary_bodies_get_4xx(server: ServerProcess, token: str,
                                  request: tuple[str, bytes], authenticated: bool) -> None:
    path, content = request
    headers = {"content-type": "application/json"}
    if authenticated:
        headers["authorization"] = f"Bearer {token}"
    r = httpx.post(server.base_url + path, content=content, headers=headers, timeout=30)
    assert r.status_code in ALLOWED, (path, content[:200], r.status_code, r.text)
    if r.status_code >= 400:
        body = r.json()
        assert body["error"] and body["detail"], body
    _no_traceback(server)


@settings(max_examples=60, deadline=None)
@given(path=st.sampled_from(["/api/mls/groups/{}", "/api/mls/groups/{}/group-info",
                             "/api/mls/groups/{}/invitations", "/api/mls/groups/joinable",
                             "/api/auth/devices", "/api/auth/sessions"]),
       group=st.text(max_size=30))
def test_arbitrary_paths_get_4xx(server: ServerProcess, token: str, path: str,
                                 group: str) -> None:
    url = server.base_url + path.format(quote(group, safe="") or "x")
    r = httpx.get(url, headers={"authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code in ALLOWED, (path, group, r.status_code, r.text)
    _no_traceback(server)


@settings(max_examples=60, deadline=None)
@given(group=st.text(max_size=30), after=st.text(max_size=12), limit=st.text(max_size=6))
def test_arbitrary_query_parameters_get_4xx(server: ServerProcess, token: str, group: str,
                                            after: str, limit: str) -> None:
    r = httpx.get(f"{server.base_url}/api/mls/messages/{quote(group, safe='') or 'x'}",
                  params={"after": after, "limit": limit},
                  headers={"authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code in ALLOWED, (group, after, limit, r.status_code, r.text)
    _no_traceback(server)
