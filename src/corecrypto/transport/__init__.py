"""How the client talks to the delivery service: a small async interface
(``base``) with one implementation per runtime: ``http`` (httpx and websockets, for
CPython tests and tools) and ``browser`` (Pyodide over the browser's fetch and
WebSocket)."""

from __future__ import annotations

from .base import (
    MemoryStore,
    MeteredStore,
    Response,
    Store,
    Transport,
    TransportError,
    WebSocketConnection,
)

__all__ = ["MemoryStore", "MeteredStore", "Response", "Store", "Transport", "TransportError",
           "WebSocketConnection"]
