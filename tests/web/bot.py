"""A chat participant on CPython (the same corecrypto the browser runs, over HTTP),
driven from the synchronous Playwright tests: long histories and bursts in seconds.

Its asyncio loop runs in a thread of its own (a sync Playwright owns the main thread's).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from corecrypto.messenger import Messenger, gid_str
from corecrypto.transport import MemoryStore
from corecrypto.transport.http import HttpTransport

T = TypeVar("T")


class Bot:
    def __init__(self, base_url: str, name: str | None = None) -> None:
        self.name = name or f"bot{secrets.token_hex(3)}"
        self.password = f"Bot password {secrets.token_hex(4)}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.m = Messenger(HttpTransport(base_url), MemoryStore())
        self.run(self._sign_up)

    def run(self, fn: Callable[[], Awaitable[T]], timeout: float = 600) -> T:
        async def call() -> T:
            return await fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout)

    async def _sign_up(self) -> None:
        await self.m.register(self.name, self.password)
        await self.m.login_new_device(self.name, self.password)

    def create(self, name: str, users: list[str]) -> str:
        """A conversation with ``users``; returns its id (as the UI spells it)."""

        async def go() -> str:
            conv = await self.m.create_conversation(name, users)
            return gid_str(conv.group_id)

        return self.run(go)

    def send(self, conversation: str, texts: list[str]) -> None:
        conv = next(c for c in self.m.conversations.values() if c.id == conversation)

        async def go() -> None:
            for text in texts:
                msg = await self.m.send_text(conv.group_id, text)
                if msg.state != "sent":
                    raise AssertionError(f"{text!r} was not accepted: {msg.state}")

        self.run(go)

    def sync(self) -> None:
        self.run(self.m.sync)

    def received(self, conversation: str) -> list[str]:
        """The texts of others in a conversation, after catching up."""
        self.sync()
        conv = next(c for c in self.m.conversations.values() if c.id == conversation)
        return [x.text for x in conv.messages if x.kind == "text" and not x.own]

    def close(self) -> None:
        async def stop() -> None:
            await self.m.stop()
            closer: Any = getattr(self.m.transport, "aclose", None)
            if closer is not None:
                await closer()

        try:
            self.run(stop, timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
