"""Limits an attacker probes: memory per WebSocket and per process with clients that
never read, request head size, slowloris and slow bodies, cursors beyond bigint,
deeply nested JSON; none gives a 500, a traceback or unbounded memory."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from ds_client import Device, gid_text, next_event, register_device
from ds_harness import ServerProcess, wait_until
from websockets.exceptions import ConnectionClosed

MakeDevice = Callable[..., Awaitable[Device]]
MAX_BIGINT = 2**63 - 1


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame (RFC 6455 §5.2)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def non_reading_socket(port: int, token: str) -> socket.socket:
    """A WebSocket client that authenticates and then never reads again, with a small
    receive buffer: the server can push only into its own memory."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    sock.sendall(_frame(json.dumps({"type": "auth", "token": token}).encode()))
    return sock


_TCP_ESTABLISHED = 1


def _gone(sock: socket.socket) -> bool:
    """Whether the server dropped the connection, without reading anything: the
    socket's TCP state (Linux ``TCP_INFO``) is no longer ESTABLISHED."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return info[0] != _TCP_ESTABLISHED


async def test_memory_stays_bounded_with_non_reading_sockets(
    server_factory: Callable[..., ServerProcess], database_factory: Callable[[], str]
) -> None:
    """8 sockets of one device that never read, over 30 stored messages of 1.4 MB:
    the server buffers at most its per-socket limit for each, closes them when they
    stall, and returns the memory. (Before the byte bounds: 8 x 42 MB queued.)"""
    srv = server_factory(database_factory(), DS_WS_STALL_SECONDS="3")
    assert srv.proc is not None
    alice = await register_device(srv.base_url)
    socks: list[socket.socket] = []
    try:
        gid = await alice.create_group()
        blob = secrets.token_bytes(1_000_000)
        for i in range(30):
            r = await alice.send(alice.mls.encrypt_message(gid, blob + bytes([i])))
            assert r.status_code == 201, r.text
        stored = 30 * len(json.dumps({"data": base64.b64encode(blob).decode()}))
        baseline = rss_bytes(srv.proc.pid)
        socks = [non_reading_socket(srv.port, alice.token) for _ in range(8)]
        peak = baseline
        deadline = time.monotonic() + 120
        while not all(_gone(s) for s in socks):  # sample until the server drops them all
            assert time.monotonic() < deadline, "the server kept the stalled sockets"
            peak = max(peak, rss_bytes(srv.proc.pid))
            await asyncio.sleep(0.1)
        growth = peak - baseline
        print(f"stored {stored / 1e6:.0f} MB; RSS baseline {baseline / 1e6:.0f} MB, "
              f"peak {peak / 1e6:.0f} MB (+{growth / 1e6:.0f} MB for 8 sockets)")
        # Unbounded, it would be 8 x the stored 42 MB; bounded: 4 MiB outbox, one read
        # batch and one frame in the transport per socket.
        assert growth < 8 * 12 * 1024 * 1024, growth
        # Stalled sockets were closed (then aborted); their memory returns.
        await asyncio.to_thread(
            wait_until, lambda: rss_bytes(srv.proc.pid) < baseline + 24 * 1024 * 1024,  # type: ignore[union-attr]
            "the memory to return")
        after = rss_bytes(srv.proc.pid)
        print(f"RSS after close {after / 1e6:.0f} MB")
        # The server still serves a reader from where it left off.
        conn = await alice.ws(cursors={gid: 29})
        try:
            assert (await next_event(conn, 30))["seq"] == 30
        finally:
            await conn.close()
    finally:
        for s in socks:
            s.close()
        await alice.close()


def _request(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def test_request_head_size_is_bounded(server: ServerProcess) -> None:
    big = b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n"
    assert _request(server.port, big).startswith(b"HTTP/1.1 431")
    many = b"GET /api/health HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 4000 + b"\r\n"
    assert _request(server.port, many).startswith(b"HTTP/1.1 431")
    # Sent in pieces, never finished: refused as soon as it is too large.
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nX-Big: ")
        for _ in range(10):
            try:
                sock.sendall(b"a" * 4096)
            except OSError:
                break
        assert sock.recv(100).startswith(b"HTTP/1.1 431")
    upgrade = (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               b"X-Big: " + b"a" * 40_000 + b"\r\n\r\n")
    assert _request(server.port, upgrade).startswith(b"HTTP/1.1 431")
    ok = _request(server.port, b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200")


async def test_slowloris_connections_are_closed(
    server_factory: Callable[..., ServerProcess], database_factory: Callable[[], str]
) -> None:
    srv = server_factory(database_factory(), DS_HEADER_TIMEOUT_SECONDS="2",
                         DS_BODY_TIMEOUT_SECONDS="2")

    async def trickle(head: bytes, piece: Callable[[int], bytes]) -> bytes:
        """Send ``head``, then a piece every 0.3 s until the server answers or closes."""
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(head)
        try:
            for n in range(200):
                writer.write(piece(n))
                await writer.drain()
                try:
                    return await asyncio.wait_for(reader.read(), 0.3)
                except TimeoutError:
                    continue
            return b"still open"
        except (ConnectionError, OSError):
            return b"reset"
        finally:
            writer.close()

    def dribble(i: int) -> Awaitable[bytes]:  # header lines, never the blank line
        return trickle(b"GET /api/health HTTP/1.1\r\nHost: x\r\n",
                       lambda n: b"X-%d: %d\r\n" % (i, n))

    async def silent() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        try:
            return await asyncio.wait_for(reader.read(), 60)
        finally:
            writer.close()

    def slow_body() -> Awaitable[bytes]:
        return trickle(b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: "
                       b"application/json\r\nContent-Length: 1000\r\n\r\n{",
                       lambda n: b" ")

    started = time.monotonic()
    results = await asyncio.gather(*(dribble(i) for i in range(50)), silent(), slow_body())
    for out in results[:-1]:
        assert out.startswith(b"HTTP/1.1 408"), out[:100]
    assert b" 408 " in results[-1].split(b"\r\n")[0], results[-1][:200]
    assert time.monotonic() - started < 60
    # Meanwhile and afterwards, real requests are served.
    assert _request(srv.port, b"GET /api/health HTTP/1.1\r\nHost: x\r\n"
                              b"Connection: close\r\n\r\n").startswith(b"HTTP/1.1 200")


async def test_cursors_beyond_bigint_are_refused(make_device: MakeDevice) -> None:
    alice = await make_device()
    gid = await alice.create_group()
    base = f"/api/mls/messages/{gid_text(gid)}"
    for params in ({"after": MAX_BIGINT + 1}, {"after": 2**64}, {"limit": MAX_BIGINT + 1},
                   {"after": -1}):
        r = await alice.get(base, params=params)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", (params, r.text)
        r = await alice.get("/api/mls/welcomes", params=params)
        assert r.status_code == 400, (params, r.text)
    r = await alice.get(base, params={"after": MAX_BIGINT, "limit": MAX_BIGINT})
    assert r.status_code == 200 and r.json()["messages"] == []
    r = await alice.get("/api/mls/welcomes", params={"after": MAX_BIGINT})
    assert r.status_code == 200 and r.json()["welcomes"] == []
    for auth in ({"cursors": {gid_text(gid): MAX_BIGINT + 1}}, {"welcome_after": 2**70},
                 {"cursors": {gid_text(gid): -1}}):
        conn = await _raw_ws(alice)
        await conn.send(json.dumps({"type": "auth", "token": alice.token, **auth}))
        await _closed_with(conn, 4400)
    conn = await alice.ws(cursors={gid: MAX_BIGINT}, welcome_after=MAX_BIGINT)
    await conn.close()


async def _raw_ws(device: Device) -> object:
    from websockets.asyncio.client import connect

    return await connect(device.ws_url)


async def _closed_with(conn: object, code: int) -> None:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(conn.recv(), 10)  # type: ignore[attr-defined]
    assert info.value.rcvd is not None and info.value.rcvd.code == code, info.value


async def test_deeply_nested_json_is_a_bad_frame(make_device: MakeDevice) -> None:
    alice = await make_device()
    deep = "[" * 30000 + "]" * 30000  # under the 64 KiB frame limit
    conn = await _raw_ws(alice)
    await conn.send(deep)  # type: ignore[attr-defined]
    await _closed_with(conn, 4400)
    conn = await alice.ws()
    await conn.send(deep)
    await _closed_with(conn, 4400)
    deep_object = '{"a":' * 10000 + "1" + "}" * 10000
    conn = await alice.ws()
    await conn.send(deep_object)
    await _closed_with(conn, 4400)
    # In HTTP bodies too: a 400, not a 500.
    r = await alice.http.post("/api/mls/messages/group", headers=alice.headers,
                              content=("[" * 200_000 + "]" * 200_000).encode())
    assert r.status_code == 400, r.text
