"""Bounded send buffers for WebSocket streams: bytes, not frames.

A stream queues the frames it owes a client in an :class:`Outbox` until the
socket takes them. Every outbox has a byte limit, and all outboxes of a process
share a :class:`BufferBudget`. Streams read the database only when their outbox
has room (they are paced by their reader, see :mod:`delivery.hub`), so a client
that reads slowly costs at most its limit, and one that stops reading is closed
after a stall timeout and resumes from its cursors; its memory is released when
the stream closes.

Sizes are counted as string lengths: frames are ASCII JSON, so that is their
size in bytes on the wire and in memory.

Freed frames go back to the C allocator, which keeps large freed areas for
reuse instead of returning them to the system; after many megabytes were
released the budget asks glibc to trim its heaps (``malloc_trim``), at most
once a second, so the process's resident memory comes back down.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import sys
from collections import deque
from collections.abc import Callable

# Release memory to the system after this many bytes of frames were freed.
TRIM_AFTER_BYTES = 4 * 1024 * 1024
_TRIM_DELAY = 1.0


def _malloc_trim() -> Callable[[int], object] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], object] = libc.malloc_trim
        return trim
    except (OSError, AttributeError):
        return None  # not glibc (musl has no malloc_trim): nothing to do


_TRIM = _malloc_trim()
_trim_pending = False


def schedule_trim() -> None:
    """Return freed heap memory to the system soon (once, however often asked)."""
    global _trim_pending  # noqa: PLW0603 - one debounce flag per process
    if _TRIM is None or _trim_pending:
        return
    _trim_pending = True

    def trim() -> None:
        global _trim_pending  # noqa: PLW0603
        _trim_pending = False
        if _TRIM is not None:
            _TRIM(0)

    asyncio.get_running_loop().call_later(_TRIM_DELAY, trim)


class BufferBudget:
    """The bytes queued for all WebSockets of this process, and their limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: set[asyncio.Event] = set()
        self._freed = 0

    def fits(self, size: int) -> bool:
        """Whether ``size`` more bytes stay within the limit."""
        return self.used + size <= self.limit

    def take(self, size: int) -> None:
        self.used += size

    def release(self, size: int) -> None:
        self.used -= size
        for waiter in self._waiters:
            waiter.set()
        self._freed += size
        if self._freed >= TRIM_AFTER_BYTES:
            self._freed = 0
            schedule_trim()

    def watch(self, event: asyncio.Event) -> None:
        """Set ``event`` whenever bytes are released."""
        self._waiters.add(event)

    def unwatch(self, event: asyncio.Event) -> None:
        self._waiters.discard(event)


class Outbox:
    """One socket's queue of frames, bounded in bytes (see the module docstring)."""

    def __init__(self, budget: BufferBudget, limit: int) -> None:
        self.budget = budget
        self.limit = limit
        self.queued = 0  # bytes queued or being sent
        self._frames: deque[str] = deque()
        self._nonempty = asyncio.Event()
        self._changed = asyncio.Event()
        self._closed = False

    def has_room(self, size: int) -> bool:
        """Whether a frame of ``size`` bytes may be queued now: within the process
        budget, and within this outbox's limit (an empty outbox takes any one frame, so
        that a frame larger than the limit still gets through)."""
        if not self.budget.fits(size):
            return False
        return self.queued == 0 or self.queued + size <= self.limit

    async def wait_room(self, size: int) -> None:
        """Wait until :meth:`has_room` for ``size`` bytes."""
        self.budget.watch(self._changed)
        try:
            while not self.has_room(size) and not self._closed:
                self._changed.clear()
                await self._changed.wait()
        finally:
            self.budget.unwatch(self._changed)

    def put(self, text: str) -> None:
        """Queue a frame (the caller checked the room, or it is a small control frame)."""
        if self._closed:
            return
        size = len(text)
        self._frames.append(text)
        self.queued += size
        self.budget.take(size)
        self._nonempty.set()

    async def get(self) -> str | None:
        """The next frame to send, or None once closed. Its bytes stay counted until
        :meth:`sent`."""
        while not self._frames:
            if self._closed:
                return None
            self._nonempty.clear()
            await self._nonempty.wait()
        return self._frames.popleft()

    def sent(self, text: str) -> None:
        """A frame from :meth:`get` left (or will never leave): release its bytes."""
        size = len(text)
        self.queued -= size
        self.budget.release(size)
        self._changed.set()

    def close(self, *, drop: bool) -> None:
        """No more frames; with ``drop``, forget the queued ones (and their bytes)."""
        self._closed = True
        if drop:
            while self._frames:
                self.sent(self._frames.popleft())
        self._nonempty.set()
        self._changed.set()
