"""The transport interface: how the client talks to the delivery service, and where
the messenger keeps its records (:class:`Store`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class TransportError(Exception):
    """The server could not be reached or the connection broke."""


@dataclass(frozen=True)
class Response:
    status: int
    body: Any  # parsed JSON, or None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> str:
        if isinstance(self.body, dict):
            return str(self.body.get("detail") or self.body.get("error") or self.body)
        return f"HTTP {self.status}"


class WebSocketConnection(Protocol):
    async def send(self, text: str) -> None: ...

    async def receive(self) -> str | None:
        """The next text frame, or ``None`` once the connection is closed."""
        ...

    async def close(self) -> None: ...


class Transport(Protocol):
    async def request(self, method: str, path: str, *, json: Any = None,
                      token: str | None = None) -> Response:
        """Raises :class:`TransportError` when no response arrives."""
        ...

    async def websocket(self, path: str) -> WebSocketConnection: ...


class Store(Protocol):
    """Where the client keeps its state: the vault in the browser."""

    async def get(self, name: str) -> bytes | None: ...

    async def put(self, name: str, data: bytes) -> None: ...

    async def delete(self, name: str) -> None: ...


class MemoryStore:
    """A :class:`Store` in a dict, for tests and tools."""

    def __init__(self) -> None:
        self.records: dict[str, bytes] = {}

    async def get(self, name: str) -> bytes | None:
        return self.records.get(name)

    async def put(self, name: str, data: bytes) -> None:
        self.records[name] = bytes(data)

    async def delete(self, name: str) -> None:
        self.records.pop(name, None)


class MeteredStore:
    """A :class:`Store` that counts what goes through to ``inner``: writes, bytes
    written and reads, per record-name prefix too (``"msg"``, ``"chat"``, ...). For
    tests and benchmarks of the storage cost."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.writes = 0
        self.bytes_written = 0
        self.reads = 0
        self.writes_by_kind: dict[str, int] = {}

    def reset(self) -> None:
        self.writes = self.bytes_written = self.reads = 0
        self.writes_by_kind = {}

    async def get(self, name: str) -> bytes | None:
        self.reads += 1
        return await self.inner.get(name)

    async def put(self, name: str, data: bytes) -> None:
        self.writes += 1
        self.bytes_written += len(data)
        kind = name.partition(":")[0]
        self.writes_by_kind[kind] = self.writes_by_kind.get(kind, 0) + 1
        await self.inner.put(name, data)

    async def delete(self, name: str) -> None:
        await self.inner.delete(name)
