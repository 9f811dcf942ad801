"""The CPython transport: httpx for HTTP, websockets for the push channel."""

from __future__ import annotations

from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from .base import Response, TransportError


class _Ws:
    def __init__(self, conn: ClientConnection) -> None:
        self._conn = conn

    async def send(self, text: str) -> None:
        try:
            await self._conn.send(text)
        except websockets.ConnectionClosed as e:
            raise TransportError(f"websocket closed: {e}") from None

    async def receive(self) -> str | None:
        try:
            msg = await self._conn.recv()
        except websockets.ConnectionClosed:
            return None
        return msg if isinstance(msg, str) else msg.decode()

    async def close(self) -> None:
        await self._conn.close()


class HttpTransport:
    """Talks to ``base_url`` (e.g. ``http://127.0.0.1:8000``)."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)

    async def request(self, method: str, path: str, *, json: Any = None,
                      token: str | None = None) -> Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            r = await self._client.request(method, path, json=json, headers=headers)
        except httpx.HTTPError as e:
            raise TransportError(f"{method} {path}: {e}") from None
        try:
            body = r.json() if r.content else None
        except ValueError:
            body = None
        return Response(r.status_code, body)

    async def websocket(self, path: str) -> _Ws:
        url = "ws" + self.base_url[len("http"):] + path
        try:
            return _Ws(await websockets.connect(url, max_size=2**22))
        except (OSError, websockets.InvalidHandshake) as e:
            raise TransportError(f"websocket {path}: {e}") from None

    async def aclose(self) -> None:
        await self._client.aclose()
