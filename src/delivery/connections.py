"""Connection hygiene below the ASGI app: bounded request heads, slowloris, stuck sockets.

uvicorn's HTTP protocol (httptools) neither bounds the size of a request head nor
times a client out while it sends one: 200 connections dribbling one header line
every two seconds would all stay open. :class:`GuardedHTTPProtocol` closes a
connection whose request head is larger than ``max_head_bytes`` (431) or not
complete ``head_timeout`` seconds after its first byte, or after the connection
opened (408). Idle keep-alive connections keep uvicorn's own timeout.

A WebSocket whose client stops reading keeps its last frame in the transport's
write buffer, and a socket closed with data still buffered waits for the peer to
read it, which a peer that advertises a zero window never does (the kernel keeps
probing it as an orphan). :class:`GuardedWebSocketProtocol` resets such a
connection a few seconds after the application is done with it (``SO_LINGER``
0: the kernel drops its send queue too), so its memory is returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from delivery.config import Settings
from delivery.outbox import schedule_trim


class GuardedHTTPProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded, timed request head."""

    max_head_bytes: ClassVar[int] = 16 * 1024
    head_timeout: ClassVar[float] = 10.0

    _in_head: bool
    _head_bytes: int  # raw bytes received while the head is incomplete
    _head_size: int  # the parsed head so far (request line and fields)
    _refused: bool
    _head_timer: asyncio.TimerHandle | None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._refused = False
        self._new_head()
        self._head_timer = None
        self._arm_head_timer()

    def _new_head(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._head_size = 0

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._arm_head_timer()  # a new request started on a kept-alive connection
            self._head_bytes += len(data)
        super().data_received(data)
        # A head still incomplete after this many bytes (one huge field that the parser
        # buffers whole) is refused without waiting for its end.
        if self._in_head and self._head_bytes > self.max_head_bytes:
            self._refuse(431, "request head too large")

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm_head_timer()
        if self._refused:
            return  # a pipelined request behind a refused one: the connection is closing
        if self._head_size > self.max_head_bytes:
            self._refuse(431, "request head too large")
            return
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        if not self._refused:
            super().handle_websocket_upgrade()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._new_head()  # what arrives next is the next request's head

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head:
            self._refuse(408, "request head not received in time")

    def _refuse(self, status: int, reason: str) -> None:
        self._refused = True
        self._disarm_head_timer()
        if self.transport.is_closing():
            return
        body = reason.encode("ascii")
        self.transport.write(b"".join([
            STATUS_LINE[status],
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]))
        self.transport.close()


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol; a socket still holding unsent data
    ``abort_after`` seconds after the application finished is aborted."""

    abort_after: ClassVar[float] = 5.0

    async def run_asgi(self) -> None:
        try:
            await super().run_asgi()
        finally:
            self.loop.call_later(self.abort_after, self._abort_if_stuck)

    def _abort_if_stuck(self) -> None:
        transport = self.transport
        if transport is None or transport.get_write_buffer_size() == 0:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        schedule_trim()


def protocols(settings: Settings) -> tuple[type[GuardedHTTPProtocol],
                                            type[GuardedWebSocketProtocol]]:
    """The HTTP and WebSocket protocol classes for uvicorn, configured by ``settings``."""
    http = type("HTTPProtocol", (GuardedHTTPProtocol,), {
        "max_head_bytes": settings.max_header_bytes,
        "head_timeout": settings.header_timeout_seconds,
    })
    ws = type("WebSocketProtocol", (GuardedWebSocketProtocol,), {})
    return http, ws
