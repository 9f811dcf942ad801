"""A minimal keep-alive HTTP/1.1 client for load generation.

httpx costs about half a millisecond of CPU per request; on a 2-core machine
that the server and PostgreSQL share, that would measure the load generator.
This client writes a request and parses status line, headers and a
Content-Length body, and nothing else.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


class RawHTTP:
    """One persistent connection to one server."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host = host
        self.port = port
        self.token = token
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """POST a JSON body; return (status, body)."""
        assert self._reader is not None and self._writer is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self._writer.write(head + body)
        status_line = await self._reader.readline()
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while True:
            line = await self._reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        payload = await self._reader.readexactly(length) if length else b""
        return status, payload

    async def post_json(self, path: str, obj: Any) -> tuple[int, Any]:
        status, payload = await self.post(path, json.dumps(obj).encode())
        return status, json.loads(payload) if payload else None
