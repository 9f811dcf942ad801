"""The browser transport, under Pyodide: the page's ``fetch`` and ``WebSocket``.

Requests go to the page's own origin (relative paths), so nothing leaves it.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from typing import Any

from .base import Response, TransportError


def _js() -> Any:
    return importlib.import_module("js")


def _to_js(value: Any) -> Any:
    ffi = importlib.import_module("pyodide.ffi")
    return ffi.to_js(value, dict_converter=_js().Object.fromEntries)


class _BrowserWebSocket:
    """A JS WebSocket whose events feed an asyncio queue."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        ffi = importlib.import_module("pyodide.ffi")
        self._proxies = [
            ffi.create_proxy(lambda ev: self._queue.put_nowait(str(ev.data))),
            ffi.create_proxy(lambda ev: self._queue.put_nowait(None)),
        ]
        ws.addEventListener("message", self._proxies[0])
        ws.addEventListener("close", self._proxies[1])

    @classmethod
    async def open(cls, url: str) -> _BrowserWebSocket:
        js = _js()
        ws = js.WebSocket.new(url)
        opened: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        ffi = importlib.import_module("pyodide.ffi")

        def on_open(_ev: Any) -> None:
            if not opened.done():
                opened.set_result(True)

        def on_fail(_ev: Any) -> None:
            if not opened.done():
                opened.set_result(False)

        p_open, p_fail = ffi.create_proxy(on_open), ffi.create_proxy(on_fail)
        ws.addEventListener("open", p_open)
        ws.addEventListener("error", p_fail)
        ws.addEventListener("close", p_fail)
        ok = await opened
        ws.removeEventListener("open", p_open)
        ws.removeEventListener("error", p_fail)
        ws.removeEventListener("close", p_fail)
        p_open.destroy()
        p_fail.destroy()
        if not ok:
            raise TransportError(f"websocket {url} did not open")
        return cls(ws)

    async def send(self, text: str) -> None:
        if self._ws.readyState != 1:
            raise TransportError("websocket is not open")
        self._ws.send(text)

    async def receive(self) -> str | None:
        item = await self._queue.get()
        if item is None:
            self._dispose()
        return item

    async def close(self) -> None:
        self._ws.close()
        self._dispose()

    def _dispose(self) -> None:
        for p in self._proxies:
            self._ws.removeEventListener("message", p)
            self._ws.removeEventListener("close", p)
            p.destroy()
        self._proxies = []


class BrowserTransport:
    """fetch() and WebSocket against the page's origin."""

    async def request(self, method: str, path: str, *, json: Any = None,
                      token: str | None = None) -> Response:
        js = _js()
        headers = {"Accept": "application/json"}
        init: dict[str, Any] = {"method": method, "headers": headers, "credentials": "omit",
                                "cache": "no-store"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if json is not None:
            headers["Content-Type"] = "application/json"
            init["body"] = _dumps(json)
        js_exception: type[BaseException] = importlib.import_module("pyodide.ffi").JsException
        try:
            resp = await js.fetch(path, _to_js(init))
            text = await resp.text()
        except js_exception as e:  # network failure or abort
            raise TransportError(f"{method} {path}: {e}") from None
        try:
            body = _loads(text) if text else None
        except ValueError:
            body = None
        return Response(int(resp.status), body)

    async def websocket(self, path: str) -> _BrowserWebSocket:
        loc = _js().location
        scheme = "wss" if loc.protocol == "https:" else "ws"
        return await _BrowserWebSocket.open(f"{scheme}://{loc.host}{path}")


def _dumps(value: Any) -> str:
    return json.dumps(value)


def _loads(text: str) -> Any:
    return json.loads(text)
