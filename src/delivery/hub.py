"""Event fan-out: PostgreSQL LISTEN/NOTIFY in, WebSocket streams out.

After a message or Welcome is committed, the accepting process pushes it to its
own streams at once and ``NOTIFY``s channel ``mls_events`` with
``m:<group pk>:<seq>`` or ``w:<device pk>:<welcome seq>`` for every other
process. The NOTIFY is sent after COMMIT, batched and coalesced, from a
connection with ``synchronous_commit = off``: a NOTIFY inside the writing
transaction would hold PostgreSQL's cluster-wide notification lock across the
commit's WAL flush and serialise all writers (migration 0002 has the numbers).

The notification is only a wake-up call; the database stays the source of
truth. Each stream keeps a per-group cursor (the last sequence number it
pushed) and only ever pushes ``cursor + 1``: on any gap, on reconnection of the
LISTEN connection, or when a client resumes, it reads the missing messages from
the database. A notification lost to a crash between COMMIT and NOTIFY is made
up for by a reconciliation pass every few seconds that compares group heads and
inbox counters with the streams' cursors. Because sequence numbers commit in order (see
:mod:`delivery.groups`), reading ``seq > cursor`` never skips a message that
commits later. Nothing is lost to a dropped notification, a slow client (its
stream is closed and it resumes) or a server restart.

Per process, the hub reads each group's new messages once for all local
subscribers (one query per notification burst, not one per member), and
serialises each event once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Coroutine
from typing import Any

import asyncpg
from sqlalchemy import select

from delivery.db import Database
from delivery.encoding import encode_group_id
from delivery.outbox import BufferBudget, Outbox
from delivery.principal import DevicePrincipal
from delivery.schema import devices, mls_groups
from delivery.store import (
    StoredMessage,
    StoredWelcome,
    Window,
    groups_of_device,
    messages_after,
    visible,
    welcomes_after,
    windows_of,
    windows_of_devices,
)

log = logging.getLogger("delivery.hub")

CHANNEL = "mls_events"
_BATCH = 256
# A database read for a stream stops after this many bytes of messages (at least one).
READ_BYTES = 1024 * 1024
_LISTEN_PING_SECONDS = 10.0
# Close code for a client that does not read: reconnect and resume from your cursors.
SLOW_CONSUMER = 1013
_TAKEN, _GAP, _FULL = "taken", "gap", "full"


def _dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


_JOINABLE = """
    SELECT g.group_id,
           ARRAY(SELECT m.device_id FROM mls_group_members m
                 WHERE m.group_id = g.id AND m.removed_seq IS NULL
                   AND m.device_id = ANY($2::bigint[])) AS members,
           -- Devices that do not offer the group's cipher suite could never join it.
           ARRAY(SELECT d.id FROM devices d
                 WHERE d.id = ANY($2::bigint[]) AND d.cipher_suite <> g.cipher_suite
                   AND NOT (g.cipher_suite = ANY(d.cipher_suites))) AS unable
    FROM mls_groups g WHERE g.id = $1
"""
# For each given (local) device: the groups where it and a retired device both hold a
# leaf, and that retired device ...
_RETIRED_NOTICES = """
    SELECT r.device_id AS recipient, g.group_id, u.username, d.device_id
    FROM mls_group_members m
    JOIN mls_group_members r ON r.group_id = m.group_id AND r.removed_seq IS NULL
                            AND r.device_id = ANY($2::bigint[])
    JOIN mls_groups g ON g.id = m.group_id
    JOIN devices d ON d.id = m.device_id AND d.retired_at IS NOT NULL
    JOIN users u ON u.id = d.user_id
    WHERE m.removed_seq IS NULL AND (m.device_id = $1 OR $1 = 0)
    ORDER BY r.device_id, u.username, d.device_id, m.group_id
"""


def _retired_events(rows: list[Any]) -> dict[int, list[str]]:
    """``device-retired`` events by recipient device: per retired device, the groups
    the recipient shares with it (it learns of no other group)."""
    grouped: dict[tuple[int, str, str], list[str]] = {}
    for r in rows:
        grouped.setdefault((r["recipient"], r["username"], r["device_id"]), []).append(
            encode_group_id(r["group_id"]))
    out: dict[int, list[str]] = {}
    for (recipient, user_id, device_id), group_ids in grouped.items():
        out.setdefault(recipient, []).append(_dumps({
            "type": "device-retired", "user_id": user_id, "device_id": device_id,
            "group_ids": group_ids}))
    return out


class ClientStream:
    """One WebSocket's view: per-group cursors, membership windows and an outbox.

    All state changes happen on the event loop between awaits, so the methods that
    the hub calls synchronously (:meth:`offer`, :meth:`wake_device`) see a
    consistent state without locks.

    Flow control: messages and Welcomes enter the :class:`~delivery.outbox.Outbox`
    only while it has room. When it has none, the stream stops taking live messages
    and catches up from the database instead, reading the next batch only once the
    client has drained its outbox (so a slow reader is paced, not buffered for).
    """

    def __init__(self, hub: Hub, device: DevicePrincipal, outbox: Outbox) -> None:
        self.hub = hub
        self.device = device
        self.outbox = outbox
        self.cursors: dict[int, int] = {}
        self.windows: dict[int, list[Window]] = {}
        self._busy: set[int] = set()  # groups being caught up from the database
        self._dirty: set[int] = set()  # ... which got news meanwhile
        self.welcome_cursor = 0
        self._known: dict[bytes, int] = {}  # the client's cursors, by group id
        self._welcome_busy = False
        self._welcome_dirty = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = asyncio.Event()
        self.close_reason: tuple[int, str] | None = None

    # -- lifecycle ------------------------------------------------------------

    async def start(self, cursors: dict[bytes, int], welcome_after: int) -> None:
        """Subscribe, then push the Welcomes and messages the client has not seen."""
        self.welcome_cursor = welcome_after
        self._known = cursors
        # Attach before reading anything: what commits from now on is either in our
        # catch-up reads or announced to us, never neither.
        self.hub.attach(self)
        self._welcome_busy = True
        try:
            await self._device_round()
        finally:
            self._welcome_busy = False
        if self._welcome_dirty:
            self.wake_device()
        # Retired devices still holding leaves in our groups: the next commit of any
        # member removes them, so say so on every (re)connection, not only live.
        self._spawn(self.hub.announce_retired_to(self))

    def close(self, code: int, reason: str) -> None:
        """Stop streaming; the WebSocket handler closes the socket with ``code``."""
        if self.closed.is_set():
            return
        self.close_reason = (code, reason)
        self.closed.set()
        self.hub.detach(self)
        for task in self._tasks:
            task.cancel()

    def push(self, text: str) -> None:
        """Queue a small control frame (ready, pong, notices). A client that lets even
        those pile up beyond its outbox limit is not reading: it is closed, and resumes
        from its cursors."""
        if self.closed.is_set():
            return
        if self.outbox.queued + len(text) > self.outbox.limit:
            self.close(SLOW_CONSUMER, "client too slow; reconnect and resume from your cursors")
            return
        self.outbox.put(text)

    def _offer_data(self, text: str) -> bool:
        """Queue a message or Welcome if the outbox has room; False if not."""
        if self.closed.is_set():
            return True  # nothing more to do for a closed stream
        if not self.outbox.has_room(len(text)):
            return False
        self.outbox.put(text)
        return True

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.warning("stream task failed: %s", type(exc).__name__, exc_info=exc)
            self.close(1011, "internal error; reconnect and resume")

    # -- groups ---------------------------------------------------------------

    def _subscribe(self, group_pk: int, cursor: int) -> None:
        self.cursors[group_pk] = cursor
        self.windows.setdefault(group_pk, [])
        self.hub.subscribe(self, group_pk)
        self.start_catch_up(group_pk, fresh=True)

    def start_catch_up(self, group_pk: int, *, fresh: bool = False) -> None:
        """Read the group's missing messages from the database (once at a time)."""
        if group_pk in self._busy:
            self._dirty.add(group_pk)
            return
        self._busy.add(group_pk)
        self._spawn(self._catch_up(group_pk, fresh))

    async def _catch_up(self, group_pk: int, fresh: bool) -> None:
        device_pk = self.device.device_pk
        try:
            if fresh:
                # Nothing before the first membership is visible: start there.
                async def first(conn: Any) -> list[Window]:
                    return await windows_of(conn, group_pk, device_pk)

                windows = await self.hub.db.raw_read(first)
                self.windows[group_pk] = windows
                if windows:
                    start = min(w.joined_seq for w in windows)
                    self.cursors[group_pk] = max(self.cursors[group_pk], start)
            while not self.closed.is_set():
                # Paced by the reader: the next batch only once there is room for it.
                await self.outbox.wait_room(READ_BYTES)
                self._dirty.discard(group_pk)
                after = self.cursors[group_pk]

                async def read(
                    conn: Any, after: int = after
                ) -> tuple[list[StoredMessage], list[Window]]:
                    # Messages first, windows second: the windows then reflect every
                    # commit among the messages.
                    rows = await messages_after(conn, group_pk, after, _BATCH, READ_BYTES)
                    return rows, await windows_of(conn, group_pk, device_pk)

                rows, windows = await self.hub.db.raw_read(read)
                self.windows[group_pk] = windows
                taken = 0
                for message in rows:
                    if self._take(group_pk, message, None) != _TAKEN:
                        break  # no room: the next round waits for it and reads again
                    taken += 1
                if taken == len(rows) and len(rows) < _BATCH and group_pk not in self._dirty \
                        and not self._more_after(rows):
                    break
        finally:
            self._busy.discard(group_pk)

    @staticmethod
    def _more_after(rows: list[StoredMessage]) -> bool:
        # A read cut short by its byte bound may have left messages behind.
        return sum(len(m.data) for m in rows) >= READ_BYTES

    def _take(self, group_pk: int, message: StoredMessage, text: str | None) -> str:
        """Advance the cursor over ``message`` if it is the next one, pushing it if it is
        visible: ``_TAKEN``, or ``_GAP`` (not the next one) or ``_FULL`` (no room)."""
        cursor = self.cursors[group_pk]
        if message.seq <= cursor:
            return _TAKEN
        if message.seq != cursor + 1:
            return _GAP
        if visible(self.windows[group_pk], message.seq, message.epoch):
            # Serialise only what fits: a stream waiting for room holds no frame text.
            if text is None and not self.outbox.has_room(len(message.data) * 4 // 3 + 256):
                return _FULL
            if not self._offer_data(text if text is not None else _dumps(message.event())):
                return _FULL
        self.cursors[group_pk] = message.seq
        return _TAKEN

    def offer(
        self,
        group_pk: int,
        batch: list[tuple[StoredMessage, str]],
        windows: dict[int, list[Window]] | None,
    ) -> None:
        """Messages the hub read for a group; pushed if they continue this stream."""
        if self.closed.is_set() or group_pk not in self.cursors:
            return
        if group_pk in self._busy:
            self._dirty.add(group_pk)
            return
        if windows is not None:
            self.windows[group_pk] = windows.get(self.device.device_pk, [])
        for message, text in batch:
            if self._take(group_pk, message, text) != _TAKEN:
                # A gap, or no room: read the rest from the database, at the reader's pace.
                self.start_catch_up(group_pk)
                return

    def cursor_for(self, group_pk: int) -> int | None:
        """The stream's cursor, or None if it is catching up by itself."""
        if group_pk in self._busy:
            return None
        return self.cursors.get(group_pk)

    # -- welcomes -------------------------------------------------------------

    def wake_device(self) -> None:
        """A Welcome arrived for this device, or it created or joined a group."""
        if self._welcome_busy:
            self._welcome_dirty = True
            return
        self._welcome_busy = True
        self._spawn(self._device_task())

    async def _device_task(self) -> None:
        try:
            await self._device_round()
        finally:
            self._welcome_busy = False

    async def _device_round(self) -> None:
        await self._catch_up_welcomes()
        await self._refresh_groups()

    async def _refresh_groups(self) -> None:
        """Subscribe to groups the device is in but this stream does not follow yet: at
        start, and after the device created a group or joined one by external commit
        (groups joined by Welcome are subscribed when the Welcome is pushed)."""
        device_pk, known, after = self.device.device_pk, self._known, self.welcome_cursor

        async def load(conn: Any) -> dict[int, bytes]:
            return await groups_of_device(conn, device_pk, list(known), after)

        for group_pk, group_id in (await self.hub.db.raw_read(load)).items():
            if group_pk not in self.cursors and not self.closed.is_set():
                self._subscribe(group_pk, known.get(group_id, 0))

    async def _catch_up_welcomes(self) -> None:
        device_pk = self.device.device_pk
        while not self.closed.is_set():
            await self.outbox.wait_room(READ_BYTES)
            self._welcome_dirty = False
            after = self.welcome_cursor

            async def read(conn: Any, after: int = after) -> list[StoredWelcome]:
                return await welcomes_after(conn, device_pk, after, _BATCH, READ_BYTES)

            items = await self.hub.db.raw_read(read)
            complete = True
            for welcome in items:
                if welcome.welcome_seq <= self.welcome_cursor:
                    continue
                if not self._offer_data(_dumps(welcome.event())):
                    complete = False
                    break
                self.welcome_cursor = welcome.welcome_seq
                if welcome.group_pk not in self.cursors:
                    # The group's messages follow its Welcome.
                    self._subscribe(welcome.group_pk, self._known.get(welcome.group_id, 0))
            cut = sum(len(w.data) for w in items) >= READ_BYTES
            if complete and not cut and len(items) < _BATCH and not self._welcome_dirty:
                break


class Hub:
    """One per process: local subscribers, the LISTEN connection, the NOTIFY sender."""

    def __init__(
        self, db: Database, *, reconcile_seconds: float = 2.0,
        buffer_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self.db = db
        # Bytes queued for all WebSockets of this process (see delivery.outbox).
        self.budget = BufferBudget(buffer_bytes)
        self._groups: dict[int, set[ClientStream]] = {}
        self._devices: dict[int, set[ClientStream]] = {}
        self._users: dict[int, set[ClientStream]] = {}
        self._fetching: set[int] = set()
        self._refetch: set[int] = set()
        self._connected = asyncio.Event()
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._reconcile_seconds = reconcile_seconds
        # Notifications to publish, coalesced: per group / device only the highest matters.
        self._out_groups: dict[int, int] = {}
        self._out_devices: dict[int, int] = {}
        self._out_events: list[str] = []  # account events: j, r, s, x (see _on_event)
        self._out_ready = asyncio.Event()
        self._notifier_pid: int | None = None

    # -- subscribers ----------------------------------------------------------

    def attach(self, stream: ClientStream) -> None:
        """Start delivering Welcome notifications and account events of the stream's
        device."""
        self._devices.setdefault(stream.device.device_pk, set()).add(stream)
        self._users.setdefault(stream.device.user_pk, set()).add(stream)

    def subscribe(self, stream: ClientStream, group_pk: int) -> None:
        """Start delivering the group's messages to the stream."""
        self._groups.setdefault(group_pk, set()).add(stream)

    def detach(self, stream: ClientStream) -> None:
        """Forget a closed stream."""
        for group_pk in stream.cursors:
            subs = self._groups.get(group_pk)
            if subs is not None:
                subs.discard(stream)
                if not subs:
                    del self._groups[group_pk]
        subs = self._devices.get(stream.device.device_pk)
        if subs is not None:
            subs.discard(stream)
            if not subs:
                del self._devices[stream.device.device_pk]
        subs = self._users.get(stream.device.user_pk)
        if subs is not None:
            subs.discard(stream)
            if not subs:
                del self._users[stream.device.user_pk]

    def connections_of(self, device_pk: int) -> int:
        """How many streams this process has open for a device."""
        return len(self._devices.get(device_pk, ()))

    # -- publishing (called after COMMIT) -------------------------------------

    def message_committed(self, group_pk: int, seq: int) -> None:
        """A message is durably stored: push it here, and tell the other processes."""
        self.wake_group(group_pk, seq)
        self._out_groups[group_pk] = max(seq, self._out_groups.get(group_pk, 0))
        self._out_ready.set()

    def device_changed(self, device_pk: int) -> None:
        """The device created a group or joined one by external commit: its streams,
        here and in other processes, should follow that group."""
        self.welcome_committed(device_pk, 0)

    def welcome_committed(self, device_pk: int, welcome_seq: int) -> None:
        """A Welcome is durably stored in a device's inbox."""
        self.wake_device(device_pk)
        self._out_devices[device_pk] = max(welcome_seq, self._out_devices.get(device_pk, 0))
        self._out_ready.set()

    def announce_joinable(self, user_pk: int, group_pk: int) -> None:
        """The user's devices may join the group by external commit now (one of its
        devices joined, or the user was invited): tell those that are not members."""
        self._event(f"j:{user_pk}:{group_pk}")

    def device_retired(self, device_pk: int) -> None:
        """A device was retired: close its sockets; tell the members of its groups."""
        self._event(f"r:{device_pk}:0")

    def sessions_revoked(self, user_pk: int, keep_session: int = 0) -> None:
        """Every session of the user but ``keep_session`` was revoked: close their sockets
        now (not at the next periodic re-check)."""
        self._event(f"s:{user_pk}:{keep_session}")

    def session_revoked(self, session_id: int) -> None:
        """One session was revoked (logout): close its sockets now."""
        self._event(f"x:{session_id}:0")

    def _event(self, payload: str) -> None:
        self._on_event(payload)
        self._out_events.append(payload)
        self._out_ready.set()

    def _on_event(self, payload: str) -> None:
        """An account event, from this process or another (``kind:a:b``)."""
        kind, a, b = payload.split(":")
        first, second = int(a), int(b)
        if kind == "j":
            streams = list(self._users.get(first, ()))
            if streams:
                self._spawn(self._announce_joinable(streams, second))
        elif kind == "r":
            for stream in list(self._devices.get(first, ())):
                stream.close(4401, "this device was retired")
            self._spawn(self._announce_retired(first))
        elif kind == "s":
            for stream in list(self._users.get(first, ())):
                if stream.device.session_id != second:
                    stream.close(4401, "session revoked")
        elif kind == "x":
            for subs in list(self._devices.values()):
                for stream in list(subs):
                    if stream.device.session_id == first:
                        stream.close(4401, "session revoked")

    async def _announce_joinable(self, streams: list[ClientStream], group_pk: int) -> None:
        """Tell the user's devices that are not in the group that they may join it."""
        devices = sorted({s.device.device_pk for s in streams})

        async def read(conn: Any) -> tuple[bytes | None, set[int]]:
            row = await conn.fetchrow(_JOINABLE, group_pk, devices)
            if row is None:
                return None, set()
            return row["group_id"], set(row["members"] or ()) | set(row["unable"] or ())

        group_id, members = await self.db.raw_read(read)
        if group_id is None:
            return
        frame = _dumps({"type": "joinable", "group_id": encode_group_id(group_id)})
        for stream in streams:
            if stream.device.device_pk not in members:
                stream.push(frame)

    async def _announce_retired(self, device_pk: int) -> None:
        """Tell the local member devices of the retired device's groups (live)."""
        await self._announce_retired_to(list(self._devices), device_pk)

    async def announce_retired_to(self, stream: ClientStream) -> None:
        """Tell one (new) stream of every retired device still in its groups."""
        await self._announce_retired_to([stream.device.device_pk], 0, stream)

    async def _announce_retired_to(
        self, recipients: list[int], retired: int, only: ClientStream | None = None
    ) -> None:
        if not recipients:
            return

        async def read(conn: Any) -> list[Any]:
            return list(await conn.fetch(_RETIRED_NOTICES, retired, recipients))

        events = _retired_events(await self.db.raw_read(read))
        for device_pk, frames in events.items():
            streams = [only] if only is not None else list(self._devices.get(device_pk, ()))
            for stream in streams:
                for frame in frames:
                    stream.push(frame)

    def _on_notify(self, _conn: Any, pid: int, _channel: str, payload: object) -> None:
        if pid == self._notifier_pid:
            return  # our own: already pushed when it committed
        text = str(payload)
        if text[:2] in {"j:", "r:", "s:", "x:"}:
            try:
                self._on_event(text)
            except ValueError:
                log.warning("ignoring malformed notification %r", payload)
            return
        kind, _, rest = text.partition(":")
        key_text, _, seq_text = rest.partition(":")
        try:
            key, seq = int(key_text), int(seq_text)
        except ValueError:
            log.warning("ignoring malformed notification %r", payload)
            return
        if kind == "m":
            self.wake_group(key, seq)
        elif kind == "w":
            self.wake_device(key)

    def wake_device(self, device_pk: int) -> None:
        """News in a device's Welcome inbox."""
        for stream in list(self._devices.get(device_pk, ())):
            stream.wake_device()

    def wake_group(self, group_pk: int, seq: int | None = None) -> None:
        """News in a group: read it once for all local subscribers."""
        subs = self._groups.get(group_pk)
        if not subs:
            return
        if seq is not None and all((s.cursor_for(group_pk) or 0) >= seq for s in subs):
            return  # everyone already has it (they caught up from the database)
        if group_pk in self._fetching:
            self._refetch.add(group_pk)
            return
        self._fetching.add(group_pk)
        self._spawn(self._fetch(group_pk))

    async def _fetch(self, group_pk: int) -> None:
        try:
            while True:
                self._refetch.discard(group_pk)
                subs = list(self._groups.get(group_pk, ()))
                cursors = [c for c in (s.cursor_for(group_pk) for s in subs) if c is not None]
                if not cursors:
                    return
                after = min(cursors)
                devices = sorted({s.device.device_pk for s in subs})

                async def read(
                    conn: Any, after: int = after, devices: list[int] = devices
                ) -> tuple[list[StoredMessage], dict[int, list[Window]] | None]:
                    rows = await messages_after(conn, group_pk, after, _BATCH, READ_BYTES)
                    if any(m.content_type == "commit" for m in rows):
                        # Membership may have changed: reload every local subscriber's
                        # windows, after the messages so they include those commits.
                        return rows, await windows_of_devices(conn, group_pk, devices)
                    return rows, None

                rows, windows = await self.db.raw_read(read)
                batch = [(m, _dumps(m.event())) for m in rows]
                for stream in list(self._groups.get(group_pk, ())):
                    if windows is not None and stream.device.device_pk not in devices:
                        # Subscribed during the read (e.g. its Welcome was just pushed):
                        # the windows read are not its own; it reads for itself.
                        stream.start_catch_up(group_pk)
                    else:
                        stream.offer(group_pk, batch, windows)
                cut = sum(len(m.data) for m in rows) >= READ_BYTES
                if len(rows) < _BATCH and not cut and group_pk not in self._refetch:
                    return
        finally:
            self._fetching.discard(group_pk)

    def resync_all(self) -> None:
        """After the LISTEN connection (re)connects: notifications may have been lost."""
        for group_pk, subs in list(self._groups.items()):
            for stream in list(subs):
                stream.start_catch_up(group_pk)
        for subs in list(self._devices.values()):
            for stream in list(subs):
                stream.wake_device()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("hub task failed", exc_info=task.exception())

    # -- lifecycle ------------------------------------------------------------

    async def start(self, timeout: float = 15.0) -> None:
        """Start listening, publishing and reconciling; return once listening."""
        loop = asyncio.get_running_loop()
        self._loops = [
            loop.create_task(self._listen_forever()),
            loop.create_task(self._publish_forever()),
            loop.create_task(self._reconcile_forever()),
        ]
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop every background task."""
        self._stopping = True
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for task in list(self._tasks):
            task.cancel()

    async def _connect(self, role: str, **settings: str) -> asyncpg.Connection[Any]:
        return await asyncpg.connect(
            self.db.urls.asyncpg,
            timeout=10,
            server_settings={"application_name": f"delivery-{role}", **settings},
        )

    async def _listen_forever(self) -> None:
        backoff = 0.2
        while not self._stopping:
            conn: asyncpg.Connection[Any] | None = None
            try:
                conn = await self._connect("listen")
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                self._connected.set()
                backoff = 0.2
                self.resync_all()
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), _LISTEN_PING_SECONDS)
                    if not lost.is_set():
                        # A dead TCP peer is only noticed when we talk to it.
                        await conn.fetchval("SELECT 1", timeout=_LISTEN_PING_SECONDS)
                log.warning("LISTEN connection lost; reconnecting")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("LISTEN connection failed (%s); retrying", type(exc).__name__)
            finally:
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            if not self._stopping:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _publish_forever(self) -> None:
        """Send pending notifications, batched, from a connection that does not wait
        for WAL flushes (a notification is a hint, not data: the messages themselves
        were committed durably before they were announced)."""
        backoff = 0.2
        while not self._stopping:
            conn: asyncpg.Connection[Any] | None = None
            try:
                conn = await self._connect("notify", synchronous_commit="off")
                lost = asyncio.Event()

                def on_lost(_c: object, lost: asyncio.Event = lost) -> None:
                    lost.set()
                    self._out_ready.set()  # wake the loop below to reconnect now

                conn.add_termination_listener(on_lost)
                self._notifier_pid = conn.get_server_pid()
                backoff = 0.2
                while True:
                    # Wake for work, or to notice a lost connection before work needs it.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._out_ready.wait(), _LISTEN_PING_SECONDS)
                    if lost.is_set():
                        log.warning("NOTIFY connection lost; reconnecting")
                        break
                    if not self._out_ready.is_set():
                        await conn.fetchval("SELECT 1", timeout=_LISTEN_PING_SECONDS)
                        continue
                    self._out_ready.clear()
                    payloads = [f"m:{g}:{s}" for g, s in self._out_groups.items()]
                    payloads += [f"w:{d}:{s}" for d, s in self._out_devices.items()]
                    payloads += self._out_events
                    self._out_groups.clear()
                    self._out_devices.clear()
                    self._out_events = []
                    if not payloads:
                        continue
                    try:
                        await conn.execute(
                            "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
                            CHANNEL,
                            payloads,
                            timeout=10,
                        )
                    except BaseException:
                        self._requeue(payloads)
                        raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("NOTIFY connection failed (%s); retrying", type(exc).__name__)
            finally:
                self._notifier_pid = None
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            if not self._stopping:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _requeue(self, payloads: list[str]) -> None:
        for p in payloads:
            kind, key, seq = p.split(":")
            if kind not in {"m", "w"}:
                self._out_events.append(p)
                continue
            target = self._out_groups if kind == "m" else self._out_devices
            target[int(key)] = max(int(seq), target.get(int(key), 0))
        self._out_ready.set()

    async def _reconcile_forever(self) -> None:
        """The safety net: a notification can be lost (a process dies between COMMIT and
        NOTIFY), so every few seconds compare each subscribed group's head and each
        device's inbox counter with what the local streams have, and wake the laggards."""
        while not self._stopping:
            await asyncio.sleep(self._reconcile_seconds)
            try:
                await self._reconcile_once()
            except Exception as exc:  # noqa: BLE001 - a failed round is retried next time
                log.warning("reconciliation failed (%s)", type(exc).__name__)

    async def _reconcile_once(self) -> None:
        group_pks = list(self._groups)
        device_pks = list(self._devices)
        if not group_pks and not device_pks:
            return

        async def heads(conn: Any) -> tuple[list[Any], list[Any]]:
            groups = (
                await conn.execute(
                    select(mls_groups.c.id, mls_groups.c.last_seq).where(
                        mls_groups.c.id.in_(group_pks)
                    )
                )
            ).all()
            inboxes = (
                await conn.execute(
                    select(devices.c.id, devices.c.welcome_seq).where(devices.c.id.in_(device_pks))
                )
            ).all()
            return groups, inboxes

        groups, inboxes = await self.db.read(heads)
        for group_pk, last_seq in groups:
            self.wake_group(group_pk, last_seq)
        for device_pk, welcome_seq in inboxes:
            for stream in list(self._devices.get(device_pk, ())):
                if stream.welcome_cursor < welcome_seq:
                    stream.wake_device()
