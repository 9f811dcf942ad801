"""The messaging client: account, devices, groups and conversations over the
delivery service, on top of :class:`~corecrypto.CoreCrypto`.

Rules it keeps:

* Every group's stream is processed strictly in the server's sequence order,
  through one lock, so REST catch-up and WebSocket push never interleave.
* Our own accepted commit is merged when it comes back at its place in the
  stream (CoreCrypto recognises the echo of its pending commit); on 409 the
  pending commit is cleared, the winner processed, and the operation retried
  while it still makes sense. Every commit carries the GroupInfo of the epoch it
  creates (docs/devices-api.md) and removes the leaves of retired devices.
* A user is a set of devices (issue 11): adding a user adds every device of
  theirs that is missing; a new device of a member joins by external commit
  (removing the leaf of its user's wiped device); lines are attributed to users.
* Storage follows :mod:`corecrypto.history`: a record per line, the group state
  once per processed batch or epoch change, never a sender generation reused.
* A line of ours is "sending" until the server accepted it, then "sent", or
  "failed" with a reason and :meth:`Messenger.retry`. A retry re-sends the
  identical bytes when their epoch is still accepted (the server answers a repeat
  with the original acknowledgement: never two copies), else encrypts anew.
* KeyPackages are replenished: a stock on the server plus one last-resort, in each
  cipher suite the device offers (suite 1 and the post-quantum ``DEFAULT_SUITE``).
* New conversations use ``default_suite`` (post-quantum X25519+ML-KEM-768, 0x004F,
  unless configured otherwise); ``create_conversation(..., suite=...)`` picks another.

Events for the UI (``on_event(listener)``; ``listener(kind, data)``, data is
plain JSON-friendly data):

``connection`` ``{status}``; ``conversation`` (:meth:`Conversation.summary`);
``message`` ``{conversation, message}``; ``message-state`` ``{conversation,
local_id, state, reason, seq}``; ``members`` ``{conversation, members}``;
``trust`` ``{event, user, detail}``; ``device`` ``{event, ...}`` with event
``"joined"`` (this device joined a conversation by external commit),
``"join-failed"``, ``"retired"`` (this device was retired: it stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from mls.crypto.ciphersuite import PQ_SUITES, SUITES
from mls.errors import EpochError, MLSError
from mls.key_package import KeyPackage
from mls.message import MLSMessage

from .chat import (
    FAILED,
    RECEIVED,
    SENDING,
    SENT,
    ChatMessage,
    Conversation,
    b64,
    device_of,
    gid_bytes,
    gid_str,
    unb64,
    user_of,
)
from .client import CoreCrypto, usable_suites
from .errors import CoreCryptoError
from .history import (
    ACCOUNT,
    IDENTITY,
    LAYOUT,
    PAGE_SIZE,
    TRUST,
    ChatRecord,
    History,
    HistoryError,
    migrate,
)
from .membership import (
    AddOutcome,
    AddReport,
    designated_committer,
    devices_of,
    missing_devices,
)
from .results import ApplicationReceived, CommitReceived, OwnMessageEcho, ProposalReceived
from .transport import Response, Store, Transport, TransportError
from .trust import (
    SafetyNumber,
    TrustEvent,
    TrustStore,
    check_group_keys,
    group_code,
    safety_number,
)

__all__ = [
    "DEFAULT_SUITE",
    "OFFERED_SUITES",
    "AddReport",
    "ChatMessage",
    "Conversation",
    "Messenger",
    "MessengerError",
    "gid_bytes",
    "gid_str",
    "is_post_quantum",
    "suite_label",
    "user_of",
]

log = logging.getLogger("corecrypto.messenger")

KEY_PACKAGE_TARGET = 10
#: The suite device identities are registered in (Ed25519 keys): every client has it.
IDENTITY_SUITE = 1
#: New conversations: MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519 under the code
#: point OpenMLS uses (docs/pq.md); the same Ed25519 identity key signs in it.
DEFAULT_SUITE = 0x004F
#: The suites a device publishes KeyPackages in (and so can be added in).
OFFERED_SUITES = (IDENTITY_SUITE, DEFAULT_SUITE)
MAX_RETRIES = 3
PAYLOAD_VERSION = 1  # "v" of the JSON inside application messages
BATCH_MAX = 500  # pushed messages processed before the state is saved

NO_HISTORY = ("This device joined the conversation here. Earlier messages are not "
              "available on it: end-to-end encryption gives a new device no history.")


class MessengerError(CoreCryptoError):
    """An operation failed; ``status`` and ``code`` say what the server answered."""

    def __init__(self, message: str, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


Listener = Callable[[str, dict[str, Any]], None]


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass
class _Pending:
    """One of our lines the server has not accepted yet, and its ciphertext."""

    gid: bytes
    index: int
    ciphertext: bytes


class Messenger:
    """One signed-in device. Create with :meth:`login_new_device` or :meth:`load`."""

    def __init__(self, transport: Transport, store: Store, *,
                 key_package_target: int = KEY_PACKAGE_TARGET,
                 page_size: int = PAGE_SIZE,
                 default_suite: int = DEFAULT_SUITE,
                 offered_suites: Iterable[int] = OFFERED_SUITES) -> None:
        self.transport = transport
        self.store = store
        self.history = History(store)
        self.key_package_target = key_package_target
        # The default is always offered: others must be able to add us to what we create.
        self.offered_suites = tuple(dict.fromkeys([*offered_suites, default_suite]))
        for suite in self.offered_suites:
            if suite not in SUITES:
                raise MessengerError(f"unknown cipher suite 0x{suite:04x}")
        self.default_suite = default_suite
        # (user, device) -> the suites it can be added in (key directory).
        self._offered: dict[tuple[str, str], set[int]] = {}
        self.page_size = page_size
        self.core: CoreCrypto | None = None
        self.token: str | None = None
        self.user_id = ""
        self.device_id = ""
        self.welcome_after = 0
        self.cursors: dict[bytes, int] = {}
        self.conversations: dict[bytes, Conversation] = {}
        self.trust = TrustStore()
        self.status = "offline"  # "offline" | "connecting" | "online" | "reconnecting"
        self.retired = False  # this device was retired: it can never post again
        self._lock = asyncio.Lock()
        self._listeners: list[Listener] = []
        self._realtime: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._stopping = False
        # Conversations whose chat record must be written at the end of the batch.
        self._dirty: set[bytes] = set()
        # Our lines not yet accepted, by local id; the digest of each ciphertext ->
        # local id, to recognise the echo; those a crash or reload interrupted.
        self._pending: dict[str, _Pending] = {}
        self._pending_by_digest: dict[bytes, str] = {}
        self._interrupted: set[str] = set()
        self._connecting = False
        # Leaves of retired devices per group (identities), to remove in a commit.
        self._retired: dict[bytes, set[str]] = {}
        # External joins saved but not confirmed by the server (crash recovery).
        self._staged: set[bytes] = set()

    # -- events for the UI ----------------------------------------------------------
    def on_event(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _emit(self, kind: str, **data: Any) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, data)
            except Exception:  # a broken UI callback must not break messaging
                log.exception("event listener failed for %s", kind)

    def _set_status(self, status: str) -> None:
        if status != self.status:
            self.status = status
            self._emit("connection", status=status)

    def _emit_conversation(self, conv: Conversation) -> None:
        self._emit("conversation", **self.summary_of(conv))

    def summary_of(self, conv: Conversation) -> dict[str, Any]:
        """:meth:`Conversation.summary` with the group's cipher suite: ``suite`` (None
        while not joined), ``suite_label`` and ``post_quantum``."""
        suite = self.conversation_suite(conv.group_id)
        return {**conv.summary(), "suite": suite,
                "suite_label": "" if suite is None else suite_label(suite),
                "post_quantum": suite is not None and is_post_quantum(suite)}

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (e := task.exception()) is not None:
            log.warning("background task failed: %s: %s", type(e).__name__, e)

    # -- HTTP ---------------------------------------------------------------------------
    async def _call(self, method: str, path: str, body: Any = None, *,
                    ok: Iterable[int] = (200, 201, 204)) -> Response:
        r = await self.transport.request(method, path, json=body, token=self.token)
        if r.status not in set(ok):
            code = str(r.body.get("error", "")) if isinstance(r.body, dict) else ""
            log.info("%s %s -> %d %s", method, path, r.status, code)
            raise MessengerError(r.error, r.status, code)
        return r

    @property
    def core_(self) -> CoreCrypto:
        if self.core is None:
            raise MessengerError("not signed in on a device")
        return self.core

    @property
    def identity(self) -> str:
        return f"{self.user_id}/{self.device_id}"

    # -- account and device -------------------------------------------------------------
    async def register(self, username: str, password: str) -> None:
        await self._call("POST", "/api/auth/register", {"username": username,
                                                        "password": password})

    async def login_new_device(self, username: str, password: str,
                               ciphersuite: int = IDENTITY_SUITE,
                               device_name: str = "browser") -> None:
        """Log in and register this browser as a new device with a fresh identity key.
        :meth:`sync` (or :meth:`join_my_conversations`) then brings it into every
        conversation of its user."""
        r = await self._call("POST", "/api/auth/login", {"username": username,
                                                         "password": password})
        self.token = r.body["token"]
        self.user_id = r.body["user_id"]
        device_id = secrets.token_hex(4)
        core = CoreCrypto.create(self.user_id, device_id, ciphersuite)
        await self._call("POST", "/api/auth/devices", {
            "signature_key": b64(core.signature_public_key), "cipher_suite": ciphersuite,
            "name": device_name, "device_id": device_id})
        # A session bound to the device: the delivery service needs to know who posts.
        r = await self._call("POST", "/api/auth/login", {"username": username,
                                                         "password": password,
                                                         "device_id": device_id})
        old, self.token = self.token, r.body["token"]
        await self.transport.request("POST", "/api/auth/logout", token=old)
        self.core = core
        self.device_id = device_id
        await self._save_account()
        await self.replenish_key_packages()

    async def login_existing_device(self, username: str, password: str) -> None:
        """A new session for the device restored from the vault (token expired)."""
        r = await self._call("POST", "/api/auth/login", {"username": username,
                                                         "password": password,
                                                         "device_id": self.device_id})
        self.token = r.body["token"]
        await self._save_account()

    async def logout(self) -> None:
        await self.stop()
        if self.token:
            await self.transport.request("POST", "/api/auth/logout", token=self.token)
        self.token = None
        await self._save_account()

    def server_cleanup(self) -> Callable[[], Awaitable[None]]:
        """For a panic wipe: retire this device on the server (its KeyPackages are
        deleted, its sessions revoked, the other members remove its leaf), best effort."""
        token, device = self.token, self.device_id

        async def cleanup() -> None:
            if not token:
                return
            r = await self.transport.request("DELETE", f"/api/auth/devices/{quote(device)}",
                                             token=token)
            if r.status not in (200, 204):  # a server without device retirement
                await self.transport.request("DELETE", "/api/mls/key-packages", token=token)
                await self.transport.request("POST", "/api/auth/logout", token=token)

        return cleanup

    async def devices(self) -> list[dict[str, Any]]:
        """This user's devices: ``{device_id, name, created_at, last_seen_at, retired,
        current, ...}`` (``current``: this device)."""
        r = await self._call("GET", "/api/auth/devices")
        return list(r.body["devices"])

    async def retire_device(self, device_id: str, password: str) -> None:
        """Retire another device of this user (lost or wiped elsewhere); the other
        members remove its leaf with their next commit."""
        if device_id == self.device_id:
            raise MessengerError("use the panic wipe to retire this device")
        await self._call("DELETE", f"/api/auth/devices/{quote(device_id)}",
                         {"password": password})

    def _suites_offered(self) -> list[int]:
        usable = usable_suites(self.core_.ciphersuite)
        return [s for s in self.offered_suites if s in usable]

    async def replenish_key_packages(self) -> int:
        """Top the server's stock up to the target, with one last-resort package, in
        each offered suite this identity can sign in (one upload)."""
        kps: list[bytes] = []
        for suite in self._suites_offered():
            r = await self._call("GET", f"/api/mls/key-packages/count?cipher_suite={suite}")
            count, last_resort = int(r.body["count"]), bool(r.body["last_resort"])
            if count < self.key_package_target // 2 + 1:
                kps += self.core_.generate_key_packages(self.key_package_target - count,
                                                        ciphersuite=suite)
            if not last_resort:
                kps += self.core_.generate_key_packages(1, last_resort=True, ciphersuite=suite)
        if kps:
            # Persist the private keys before the server can hand the packages out.
            await self._save_keys()
            await self._call("POST", "/api/mls/key-packages",
                             {"key_packages": [b64(k) for k in kps]})
        return len(kps)

    # -- persistence --------------------------------------------------------------------
    async def _save_account(self) -> None:
        acct = {"layout": LAYOUT, "user_id": self.user_id, "device_id": self.device_id,
                "token": self.token, "welcome_after": self.welcome_after,
                "groups": sorted(gid_str(g) for g in self.conversations)}
        await self.store.put(ACCOUNT, json.dumps(acct).encode())
        await self._save_keys()

    async def _save_keys(self) -> None:
        if self.core is not None:
            await self.store.put(IDENTITY, self.core.export_state(include_groups=False))

    async def _save_chat(self, gid: bytes) -> None:
        """Write the conversation's header and MLS state (one record)."""
        conv = self.conversations.get(gid)
        if conv is None:
            return
        core = self.core_
        outbox = sorted(p.index for p in self._pending.values() if p.gid == gid)
        await self.history.write_chat(gid, ChatRecord(
            conv.name, conv.unread, conv.active, conv.count, self.cursors.get(gid, 0),
            outbox, joined_late=conv.joined_late,
            state=core.save_group_state(gid) if core.has_group(gid) else b""))
        self._dirty.discard(gid)

    async def _flush(self) -> None:
        """End of a batch: save the conversations it changed (the caller holds the lock)."""
        for gid in sorted(self._dirty):
            await self._save_chat(gid)

    async def flush(self) -> None:
        """Save whatever is not saved yet (e.g. before the page goes away)."""
        async with self._lock:
            await self._flush()

    async def _save_trust(self) -> None:
        await self.store.put(TRUST, self.trust.to_bytes())

    @classmethod
    async def load(cls, transport: Transport, store: Store, **options: Any) -> Messenger | None:
        """The device saved in ``store``, or ``None`` on first run. Converts a store
        of an earlier layout first (:func:`corecrypto.history.migrate`)."""
        raw = await store.get(ACCOUNT)
        ident = await store.get(IDENTITY)
        if raw is None or ident is None:
            return None
        acct = json.loads(raw)
        if acct.get("layout", 1) < LAYOUT:
            acct = await migrate(store, acct)
        elif acct["layout"] > LAYOUT:
            raise HistoryError(f"this store has layout {acct['layout']}, newer than this "
                               f"client's {LAYOUT}")
        m = cls(transport, store, **options)
        m.user_id, m.device_id = acct["user_id"], acct["device_id"]
        m.token, m.welcome_after = acct["token"], acct["welcome_after"]
        m.core = CoreCrypto.import_state(ident)
        for g in acct["groups"]:
            await m._load_chat(gid_bytes(g))
        trust = await store.get(TRUST)
        if trust is not None:
            m.trust = TrustStore.from_bytes(trust)
        return m

    async def _load_chat(self, gid: bytes) -> None:
        rec = await self.history.read_chat(gid)
        if rec is None:
            log.warning("conversation %s has no record; skipped", gid_str(gid))
            return
        conv = Conversation(gid, rec.name, unread=rec.unread, active=rec.active,
                            count=rec.count, joined_late=rec.joined_late)
        self.conversations[gid] = conv
        if rec.state:
            if rec.joining:
                self.core_.stage_external_join(rec.state)
                self._staged.add(gid)
            else:
                self.core_.import_group_state(rec.state)
                self.cursors[gid] = rec.cursor
        # Lines written after the header was saved (a crash before the batch ended).
        extra = await self.history.probe(gid, rec.count)
        for msg, _ in extra:
            if msg.seq is not None:
                conv.replay_until = max(conv.replay_until, msg.seq)
            if msg.state == RECEIVED and msg.kind == "text":
                conv.unread += 1
        conv.count += len(extra)
        conv.first = max(0, conv.count - self.page_size)
        page = await self.history.read_lines(gid, conv.first, conv.count)
        conv.messages = [msg for msg, _ in page]
        # Our undelivered lines: those the header lists and those written after it.
        for index in sorted(set(rec.outbox) | {m.index for m, _ in extra}):
            line = next(((m, c) for m, c in page if m.index == index), None)
            if line is None:
                line = await self.history.read_line(gid, index)
            if line is not None and line[1] is not None and line[0].state in (SENDING, FAILED):
                self._track_pending(gid, line[0], line[1])
                if line[0].state == SENDING:
                    # Whether it left is unknown: it is re-sent, identical, on connecting.
                    self._interrupted.add(line[0].local_id)

    def _track_pending(self, gid: bytes, msg: ChatMessage, ct: bytes) -> None:
        self._untrack_pending(msg.local_id)
        self._pending[msg.local_id] = _Pending(gid, msg.index, ct)
        self._pending_by_digest[_digest(ct)] = msg.local_id

    def _untrack_pending(self, local_id: str) -> None:
        entry = self._pending.pop(local_id, None)
        if entry is not None:
            self._pending_by_digest.pop(_digest(entry.ciphertext), None)
        self._interrupted.discard(local_id)

    # -- conversation lines ---------------------------------------------------------------
    def _conv(self, gid: bytes) -> Conversation:
        conv = self.conversations.get(gid)
        if conv is None:
            conv = self.conversations[gid] = Conversation(gid, "New conversation")
        return conv

    async def _append(self, conv: Conversation, msg: ChatMessage,
                      ciphertext: bytes | None = None) -> bool:
        """Add a line to the history (one record) and tell the UI."""
        if msg.seq is not None and msg.seq <= conv.replay_until:
            return False  # stored before a crash; the stream is being replayed
        msg.index = conv.count
        conv.count += 1
        conv.messages.append(msg)
        # Shown before its record is durable (a strict IndexedDB commit is an fsync:
        # milliseconds, tens of them on a busy disk). A crash in between loses nothing:
        # the saved cursor still precedes the line's message, which is processed again
        # on load; and an own line is only "sending" until then.
        self._emit("message", conversation=conv.id, message=msg.to_json())
        try:
            # The header is not rewritten for this: lines beyond its count are found
            # on load.
            await self.history.write_line(conv.group_id, msg, ciphertext)
        except BaseException:
            # Not stored, not counted: a failed write leaves no gap in the numbering.
            conv.count -= 1
            conv.messages.remove(msg)
            raise
        return True

    async def _system(self, conv: Conversation, text: str, seq: int | None = None) -> None:
        core = self.core_
        epoch = core.epoch(conv.group_id) if core.has_group(conv.group_id) else 0
        await self._append(conv, ChatMessage(secrets.token_hex(8), "", text, time.time(),
                                             kind="system", seq=seq, epoch=epoch))

    async def _set_state(self, conv: Conversation, msg: ChatMessage, state: str, *,
                         reason: str = "", seq: int | None = None) -> None:
        """Change the delivery state of one of our lines (one record; it keeps the
        ciphertext until the line is sent)."""
        msg.state, msg.reason = state, reason
        if seq is not None:
            msg.seq = seq
        if state == SENT:
            self._untrack_pending(msg.local_id)
        pending = self._pending.get(msg.local_id)
        await self.history.write_line(conv.group_id, msg,
                                      pending.ciphertext if pending is not None else None)
        self._emit("message-state", conversation=conv.id, local_id=msg.local_id,
                   state=state, reason=reason, seq=msg.seq)

    async def load_older(self, gid: bytes, limit: int | None = None) -> list[ChatMessage]:
        """Load the page of history before the loaded window (prepended to
        ``conversation.messages``); ``[]`` at the start. ``conversation.has_older``
        says whether there is more."""
        conv = self.conversations[gid]
        if conv.first <= 0:
            return []
        start = max(0, conv.first - (limit or self.page_size))
        lines = [m for m, _ in await self.history.read_lines(gid, start, conv.first)]
        conv.messages[:0] = lines
        conv.first = start
        return lines

    def mark_read(self, gid: bytes) -> None:
        conv = self.conversations.get(gid)
        if conv is not None and conv.unread:
            conv.unread = 0
            self._dirty.add(gid)
            self._spawn(self.flush())

    # -- receiving ----------------------------------------------------------------------
    async def _process_event(self, ev: dict[str, Any]) -> None:
        """Apply one ``mls-message`` in sequence order (the caller holds the lock and
        saves the state at the end of the batch)."""
        gid = gid_bytes(ev["group_id"])
        seq = int(ev["seq"])
        core = self.core_
        if seq <= self.cursors.get(gid, 0) or not core.has_group(gid):
            return  # already processed, or a group we are not in (any more)
        conv = self._conv(gid)
        data = unb64(ev["data"])
        pending = core.pending_commit_message(gid)
        if pending is not None and ev.get("content_type") == "commit" and data != pending:
            # Another commit won this epoch (e.g. our post's answer was lost).
            core.clear_pending_commit(gid)
        before = core.members(gid)
        try:
            r = core.process_message(gid, data)
        except EpochError as e:
            # A message of an epoch we no longer have keys for (e.g. sent while our
            # commit was winning): nothing to apply.
            log.info("skipping seq %d of %s: %s", seq, conv.id, e)
            r = None
        except MLSError as e:
            sender = str(ev.get("sender") or "")
            r = None
            if sender == self.identity:
                # Posted by this device (the server says so) after the state it was
                # restored from: ours, though the state cannot tell any more.
                log.info("own message at seq %d of %s not recognised: %s", seq, conv.id, e)
                await self._on_echo(conv, data, seq)
            else:
                log.warning("undecryptable seq %d of %s from %s: %s", seq, conv.id, sender, e)
                who = user_of(sender) or "an unknown sender"
                if sender and user_of(sender) == self.user_id:
                    who = f"your device {device_of(sender)}"
                await self._system(conv, f"A message from {who} could not be decrypted.", seq)
        self.cursors[gid] = seq
        if isinstance(r, OwnMessageEcho):
            await self._on_echo(conv, data, seq)
            if r.content_type != "application":
                self._dirty.add(gid)
            return
        self._dirty.add(gid)
        if isinstance(r, ApplicationReceived):
            await self._on_application(conv, r, seq)
        elif isinstance(r, CommitReceived):
            await self._on_commit(conv, r, seq, before)
        elif isinstance(r, ProposalReceived):
            self._on_proposal(conv, r)

    async def _on_echo(self, conv: Conversation, data: bytes, seq: int) -> None:
        """Our own message at its place in the stream: delivered, whatever the answer
        to its post said (or if it never came)."""
        local_id = self._pending_by_digest.get(_digest(data))
        if local_id is None:
            return
        msg = conv.find(local_id)
        if msg is None:  # not in the loaded window
            line = await self.history.read_line(conv.group_id, self._pending[local_id].index)
            msg = line[0] if line is not None else None
        if msg is not None and msg.state != SENT:
            await self._set_state(conv, msg, SENT, seq=seq)
        self._untrack_pending(local_id)

    async def _on_application(self, conv: Conversation, r: ApplicationReceived,
                              seq: int) -> None:
        try:
            payload = json.loads(r.plaintext)
            kind = payload.get("type")
        except (ValueError, AttributeError):
            payload, kind = {"text": r.plaintext.decode("utf-8", "replace")}, "text"
        if kind == "meta":
            name = str(payload.get("name", ""))[:100]
            if name and name != conv.name:
                conv.name = name
                self._emit_conversation(conv)
            return
        text = str(payload.get("text", ""))
        ts = float(payload.get("ts", time.time() * 1000)) / 1000
        user = user_of(r.sender)
        own = user == self.user_id  # from another device of ours
        msg = ChatMessage(secrets.token_hex(8), r.sender, text, ts, seq=seq, epoch=r.epoch,
                          own=own, state=SENT if own else RECEIVED, user=user)
        if await self._append(conv, msg) and not own:
            conv.unread += 1

    async def _on_commit(self, conv: Conversation, r: CommitReceived, seq: int,
                         before: list[str]) -> None:
        gid = conv.group_id
        if r.self_removed:
            await self._system(conv, "You were removed from this conversation.", seq)
            await self._left(conv)
            return
        who = user_of(r.sender or "") or "someone"
        lines = []
        removed = list(r.removed)
        if r.external and r.sender:
            u, dev = user_of(r.sender), device_of(r.sender)
            # A resync: the joiner removed a leaf of its own user (a wiped device).
            replaced = [device_of(i) for i in removed if user_of(i) == u]
            removed = [i for i in removed if user_of(i) != u]
            if u == self.user_id:
                lines.append(f"Your new device {dev} joined"
                             + (f", replacing {', '.join(replaced)}." if replaced else "."))
            elif replaced:
                lines.append(f"{u} is back on a new device ({dev}); their old device "
                             f"{', '.join(replaced)} was removed.")
            elif devices_of(before, u):
                lines.append(f"{u} joined from a new device ({dev}).")
            else:
                lines.append(f"{u} joined.")
        lines += _describe_adds(who, before, r.added, self.user_id)
        lines += _describe_removals(who, before, removed, self._retired.get(gid, set()),
                                    self.user_id)
        if not lines and r.updated and not r.own:
            lines.append(f"{who} updated their keys.")
        for text in lines:
            await self._system(conv, text, seq)
        if r.removed:
            self._retired.get(gid, set()).difference_update(r.removed)
        if r.added or r.removed or r.external or r.own:
            self._emit("members", conversation=conv.id, members=self.core_.members(gid))
        if r.added or r.removed or r.external:
            await self._check_member_keys(conv)
        if r.external and r.sender and not r.own:
            self._spawn(self._tell_name_after_join(gid, r.sender))

    async def _tell_name_after_join(self, gid: bytes, joiner: str) -> None:
        """A device that joined by itself does not know the conversation's name: a
        device of its user (or else the lowest leaf) tells it."""
        core = self.core_
        if not core.has_group(gid):
            return
        members = [m for m in core.members(gid) if m != joiner]
        siblings = [m for m in members if user_of(m) == user_of(joiner)]
        teller = siblings[0] if siblings else designated_committer(
            members, self._retired.get(gid, set()))
        if teller == self.identity:
            await self._send_payload(gid, {"type": "meta", "name": self.conversations[gid].name})

    def _on_proposal(self, conv: Conversation, r: ProposalReceived) -> None:
        # A member asked to leave: the lowest remaining leaf commits it.
        if r.proposal == "remove" and r.target and r.target == r.sender:
            members = [m for m in self.core_.members(conv.group_id) if m != r.target]
            if designated_committer(members, self._retired.get(conv.group_id, ())) \
                    == self.identity:
                self._spawn(self._commit_pending_soon(conv.group_id))

    async def _commit_pending_soon(self, gid: bytes) -> None:
        try:
            await self._commit_with_retry(gid, lambda: self.core_.commit(
                gid, remove=self._retired_present(gid)), lambda: True)
        except (MessengerError, MLSError, TransportError) as e:
            log.info("committing pending proposals failed: %s", e)

    async def _left(self, conv: Conversation) -> None:
        """We are out of the group: drop its state, fail what was not delivered."""
        gid = conv.group_id
        conv.active = False
        self.core_.delete_group(gid)
        self.cursors.pop(gid, None)
        for local_id, p in list(self._pending.items()):
            if p.gid == gid and (msg := conv.find(local_id)) is not None:
                await self._set_state(conv, msg, FAILED,
                                      reason="you are no longer in this conversation")
                self._untrack_pending(local_id)
        await self._save_chat(gid)
        self._emit_conversation(conv)

    async def _process_welcome_event(self, ev: dict[str, Any]) -> None:
        seq = int(ev["welcome_seq"])
        if seq <= self.welcome_after:
            return
        self.welcome_after = seq
        core = self.core_
        try:
            gid = core.process_welcome(unb64(ev["data"]))
        except MLSError as e:
            log.warning("Welcome %d could not be processed: %s", seq, e)
            await self._save_account()
            return
        if gid in self._staged:  # our external join lost to this Welcome
            core.abandon_external_join(gid)
            self._staged.discard(gid)
        conv = self._conv(gid)
        conv.active = True
        self.cursors[gid] = 0
        # Another device of our user was there before (not a group made just now
        # with all of them): this device missed what came before.
        conv.joined_late = core.epoch(gid) > 1 and any(
            user_of(m) == self.user_id and m != self.identity for m in core.members(gid))
        adder = user_of(ev.get("sender") or "")
        await self._system(conv, f"You joined (added by {adder})." if adder != self.user_id
                           else "Your other device added this device.")
        if conv.joined_late:
            await self._system(conv, NO_HISTORY)
        await self._save_chat(gid)
        await self._save_account()
        self._emit_conversation(conv)
        await self._check_member_keys(conv)
        await self.replenish_key_packages()

    async def sync(self) -> None:
        """Catch up over REST: the Welcome inbox, every group's stream; then join the
        conversations of this user this device is not in yet, and re-send what an
        interruption left undelivered."""
        async with self._lock:
            await self._sync_locked()
        await self._after_connect()

    async def _sync_locked(self) -> None:
        while True:
            r = await self._call("GET", f"/api/mls/welcomes?after={self.welcome_after}")
            for w in r.body["welcomes"]:
                await self._process_welcome_event(w)
            if not r.body["has_more"]:
                break
        for gid in list(self.cursors):
            await self._sync_group(gid)

    async def _sync_group(self, gid: bytes) -> None:
        """Read the group's stream to its head, saving the state after each page."""
        try:
            while self.core_.has_group(gid):
                r = await self._call("GET", f"/api/mls/messages/{gid_str(gid)}"
                                            f"?after={self.cursors.get(gid, 0)}", ok=(200, 403))
                if r.status == 403:
                    return  # removed: the removal commit was processed or never visible
                for ev in r.body["messages"]:
                    await self._process_event(ev)
                await self._flush()
                if not r.body["has_more"]:
                    return
        finally:
            await self._flush()

    async def _after_connect(self) -> None:
        """Work that needs the server after (re)connecting: joins, interrupted sends.
        Failures are logged; the next connection tries again."""
        if self.retired or self._connecting:
            return
        self._connecting = True
        try:
            # Retired leaves need no step here: the server announces them on every
            # connection (push ``device-retired``).
            for step in (self._resolve_staged_joins, self.join_my_conversations,
                         self._redeliver_interrupted):
                try:
                    await step()
                except (MessengerError, TransportError, MLSError) as e:
                    log.info("%s failed: %s", step.__name__, e)
        finally:
            self._connecting = False

    # -- realtime -----------------------------------------------------------------------
    def start(self) -> None:
        """Run the WebSocket loop in the background (reconnects with backoff)."""
        if self._realtime is None or self._realtime.done():
            self._stopping = False
            self._realtime = asyncio.ensure_future(self._run_realtime())

    async def stop(self) -> None:
        self._stopping = True
        task, self._realtime = self._realtime, None
        tasks = [t for t in (task, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._set_status("offline")
        if self.core is not None:
            try:
                await self.flush()
            except Exception as e:  # noqa: BLE001 - e.g. the vault locked first
                log.info("final save skipped: %s", type(e).__name__)

    async def _run_realtime(self) -> None:
        backoff = 0.5
        while not self._stopping:
            self._set_status("connecting" if self.status == "offline" else "reconnecting")
            try:
                ws = await self.transport.websocket("/ws")
                await ws.send(json.dumps({
                    "type": "auth", "token": self.token,
                    "cursors": {gid_str(g): c for g, c in self.cursors.items()},
                    "welcome_after": self.welcome_after}))
                queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
                reader = asyncio.ensure_future(_read_frames(ws, queue))
                try:
                    while (batch := await _next_batch(queue)):
                        if await self._handle_push(batch):
                            backoff = 0.5
                finally:
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await reader
                    await ws.close()
            except (TransportError, OSError, ValueError, KeyError) as e:
                log.info("push channel broke: %s", e)
            except MessengerError as e:
                log.warning("push processing failed: %s", e)
            except Exception:  # the push loop must outlive any one bug: log it, reconnect
                log.exception("push loop error; reconnecting")
            if self._stopping or self.retired:
                break
            self._set_status("reconnecting")
            await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311 - jitter only
            backoff = min(backoff * 2, 30.0)

    async def _handle_push(self, batch: list[dict[str, Any]]) -> bool:
        """Process pushed events in order; stream events of one batch share one save
        per conversation. Returns whether the server said ``ready``."""
        ready = False
        stream = [ev for ev in batch if ev.get("type") in ("mls-message", "mls-welcome")]
        if stream:
            async with self._lock:
                try:
                    for ev in stream:
                        if ev["type"] == "mls-message":
                            await self._process_event(ev)
                        else:
                            await self._process_welcome_event(ev)
                finally:
                    await self._flush()
        for ev in batch:
            t = ev.get("type")
            if t == "ready":
                ready = True
                self._set_status("online")
                self._spawn(self._after_connect())
            elif t == "device-retired":
                self._on_device_retired(ev)
            elif t == "joinable":
                self._spawn(self._on_joinable(gid_bytes(str(ev.get("group_id", "")))))
            elif t == "error":
                log.warning("server closed the push channel: %s", ev)
        return ready

    # -- sending ----------------------------------------------------------------------------
    async def _post(self, message: bytes, welcome: bytes | None = None,
                    group_info: bytes | None = None) -> Response:
        body: dict[str, Any] = {"message": b64(message)}
        if welcome is not None:
            body["welcome"] = b64(welcome)
        if group_info is not None:
            body["group_info"] = b64(group_info)
        return await self.transport.request("POST", "/api/mls/messages/group", json=body,
                                            token=self.token)

    def _retired_present(self, gid: bytes, *, also: Iterable[str] = ()) -> list[str]:
        """Identities to remove in our next commit: ``also`` plus retired leaves."""
        core = self.core_
        members = core.members(gid)
        targets = set(also) | self._retired.get(gid, set())
        return [i for i in members if i in targets and i != self.identity]

    async def _commit_with_retry(
        self, gid: bytes, make: Callable[[], tuple[bytes, bytes | None]],
        still_needed: Callable[[], bool],
    ) -> bool:
        """Create a commit, save the state with it, post it with the GroupInfo of the
        epoch it creates; on 409 clear it, catch up and retry (§14). True once our
        commit is merged, False when it stopped being needed."""
        core = self.core_
        async with self._lock:
            await self._sync_group(gid)
            if core.has_group(gid) and core.has_pending_commit(gid):
                # Left by an interruption: had the server accepted it, the stream just
                # read to its head would have merged it.
                core.clear_pending_commit(gid)
            for _ in range(MAX_RETRIES):
                if not core.has_group(gid) or not still_needed():
                    return False
                retired = set(self._retired_present(gid))
                commit, welcome = make()
                group_info = core.pending_group_info(gid)
                # Saved before it leaves: after a crash the echo must find it pending.
                await self._save_chat(gid)
                try:
                    r = await self._post(commit, welcome, group_info)
                except TransportError:
                    # Maybe accepted: the stream says (the echo merges it, another
                    # commit clears it).
                    with contextlib.suppress(TransportError, MessengerError):
                        await self._sync_group(gid)
                    raise
                if r.status == 201:
                    await self._sync_group(gid)  # our commit merges when it comes back
                    if core.has_group(gid) and core.has_pending_commit(gid):
                        raise MessengerError("our accepted commit did not come back")
                    await self._note_retired_removed(gid, retired)
                    return True
                core.clear_pending_commit(gid)
                await self._save_chat(gid)
                if r.status != 409:
                    raise MessengerError(r.error, r.status, _code(r))
                await self._sync_group(gid)
            raise MessengerError("other members kept changing the group; try again", 409)

    async def _note_retired_removed(self, gid: bytes, retired: set[str]) -> None:
        gone = sorted(retired - set(self.core_.members(gid)))
        if gone:
            self._retired.get(gid, set()).difference_update(gone)
            for line in _describe_removals("You", sorted(retired), gone, retired,
                                           self.user_id):
                await self._system(self.conversations[gid], line)
            await self._flush()
            self._emit("members", conversation=gid_str(gid), members=self.core_.members(gid))

    async def create_conversation(self, name: str, usernames: Iterable[str], *,
                                  suite: int | None = None) -> Conversation:
        """A new group with ``usernames`` (all their devices) and this user's other
        devices, in cipher ``suite`` (default: :attr:`default_suite`)."""
        gid = secrets.token_bytes(16)
        core = self.core_
        suite = self.default_suite if suite is None else suite
        if suite not in usable_suites(core.ciphersuite):
            raise MessengerError(f"cipher suite 0x{suite:04x} is not available on this device",
                                 code="unsupported_cipher_suite")
        core.create_group(gid, suite)
        try:
            await self._call("POST", "/api/mls/groups", {
                "group_id": gid_str(gid), "cipher_suite": suite,
                "group_info": b64(core.group_info(gid))})
        except (MessengerError, TransportError):
            core.delete_group(gid)
            raise
        conv = Conversation(gid, name or "Conversation")
        self.conversations[gid] = conv
        self.cursors[gid] = 0
        async with self._lock:
            await self._save_chat(gid)
        await self._save_account()
        self._emit_conversation(conv)
        others = [u for u in dict.fromkeys(usernames) if u and u != self.user_id]
        report = await self.add_members(gid, [self.user_id, *others], quiet_self=True)
        if not report.added:
            await self._send_payload(gid, {"type": "meta", "name": conv.name})
        return conv

    def conversation_suite(self, gid: bytes) -> int | None:
        """The cipher suite of a conversation's group (None while not joined)."""
        return self.core_.group_suite(gid) if self.core_.has_group(gid) else None

    async def _claim(self, user: str, devices: list[str], suite: int) -> dict[str, bytes]:
        """One KeyPackage in ``suite`` of each of ``devices`` of ``user`` (device id ->
        package); devices with none are left out."""
        query = "&".join(f"device_id={quote(d)}" for d in devices)
        r = await self._call("GET", f"/api/mls/key-packages/{quote(user)}?{query}"
                                    f"&cipher_suite={suite}")
        out: dict[str, bytes] = {}
        for k in r.body["key_packages"]:
            device = str(k["device_id"])
            kp = unb64(k["key_package"])
            if device not in devices:
                log.warning("the server handed out a KeyPackage of %s/%s, not asked for",
                            user, device)
            elif _kp_identity(kp) != f"{user}/{device}":
                log.warning("a KeyPackage for %s/%s names another identity", user, device)
            else:
                out[device] = kp
        return out

    async def add_members(self, gid: bytes, usernames: Iterable[str], *,
                          quiet_self: bool = False) -> AddReport:
        """Add users: every active device of theirs that is not a member yet (our own
        user too: our other devices). Devices already present cost no KeyPackage.
        Returns what happened per user (also shown as a system line); raises
        :class:`MessengerError` when nothing could be added and something failed."""
        conv = self.conversations[gid]
        if not conv.active:
            raise MessengerError("you are no longer in this conversation")
        core = self.core_
        async with self._lock:
            await self._sync_group(gid)
        suite = core.group_suite(gid)
        outcomes: list[AddOutcome] = []
        claimed: dict[str, bytes] = {}  # identity -> KeyPackage
        for user in dict.fromkeys(u.strip() for u in usernames if u and u.strip()):
            outcome = AddOutcome(user)
            outcomes.append(outcome)
            try:
                directory = await self.directory(user)
            except MessengerError as e:
                if e.status != 404:
                    raise
                outcome.error = "there is no such user"
                continue
            exclude = self.device_id if user == self.user_id else ""
            missing, outcome.present = missing_devices(core.members(gid), user, directory,
                                                       exclude=exclude)
            if missing:
                kps = await self._claim(user, missing, suite)
                claimed.update({f"{user}/{d}": kp for d, kp in kps.items()})
                # The directory says which suites a device offers: one without the
                # group's can never be added (an app without the post-quantum suites).
                for d in sorted(set(missing) - set(kps)):
                    if suite not in self._offered.get((user, d), {suite}):
                        outcome.unsupported.append(d)
                    else:
                        outcome.unavailable.append(d)
            if user == self.user_id:
                continue
            await self.observe_user(user)
            if not outcome.present and not any(user_of(i) == user for i in claimed) \
                    and outcome.unsupported and not outcome.unavailable:
                outcome.error = (f"none of their devices supports this conversation's cipher "
                                 f"suite ({suite_label(suite)})")
            elif not outcome.present and not any(user_of(i) == user for i in claimed):
                outcome.invited = await self._invite(gid, user)
                if not outcome.invited and not directory:
                    outcome.error = "they have no active device"
        added: list[str] = []

        def todo() -> dict[str, bytes]:
            members = set(core.members(gid))
            return {i: kp for i, kp in claimed.items() if i not in members}

        def make() -> tuple[bytes, bytes | None]:
            nonlocal added
            pending = todo()
            added = sorted(pending)
            return core.commit(gid, add=list(pending.values()),
                               remove=self._retired_present(gid))

        if claimed and not await self._commit_with_retry(gid, make, lambda: bool(todo())):
            added = []
        for o in outcomes:  # what our commit added; the rest joined meanwhile
            mine = {device_of(i) for i in added if user_of(i) == o.user}
            o.present = sorted(set(o.present) | {device_of(i) for i in claimed
                                                 if user_of(i) == o.user} - mine)
            o.added = sorted(mine)
        report = AddReport([o for o in outcomes if not (quiet_self and o.user == self.user_id
                                                        and not o.added)], self.user_id)
        async with self._lock:
            for o in report.outcomes:
                if text := o.describe(me=self.user_id):
                    await self._system(conv, text)
            await self._flush()
        if added:
            self._emit("members", conversation=conv.id, members=core.members(gid))
            # Joiners see only what follows their Welcome: tell them the name.
            await self._send_payload(gid, {"type": "meta", "name": conv.name})
        if report.failed:
            raise MessengerError(report.summary, 404, "not_added")
        return report

    async def _invite(self, gid: bytes, user: str) -> bool:
        """Let ``user``'s devices join by external commit when they come online
        (docs/devices-api.md, invitations). False if the server has no invitations."""
        r = await self._call("POST", f"/api/mls/groups/{gid_str(gid)}/invitations",
                             {"user_id": user}, ok=(201, 404, 405))
        return r.status == 201

    async def remove_member(self, gid: bytes, username: str) -> None:
        """Remove a user: every device of theirs."""
        def targets() -> list[str]:
            return [i for i in self.core_.members(gid) if user_of(i) == username]

        if await self._commit_with_retry(
                gid, lambda: self.core_.commit(gid, remove=self._retired_present(
                    gid, also=targets())), lambda: bool(targets())):
            async with self._lock:
                await self._system(self.conversations[gid], f"You removed {username}.")
                await self._flush()
            self._emit("members", conversation=gid_str(gid), members=self.core_.members(gid))

    async def self_update(self, gid: bytes) -> None:
        """A commit with a fresh path (post-compromise security, §12.4)."""
        await self._commit_with_retry(gid, lambda: self.core_.commit(
            gid, remove=self._retired_present(gid), include_pending=False), lambda: True)

    async def leave(self, gid: bytes) -> None:
        """Ask to be removed; another member commits it (RFC 9420 §12.1.3)."""
        async with self._lock:
            await self._sync_group(gid)
            r = await self._post(self.core_.leave_group(gid))
            if r.status != 201:
                raise MessengerError("the group moved on; try again", r.status, _code(r))
            conv = self.conversations[gid]
            conv.active = False
            await self._system(conv, "You left this conversation.")
            await self._save_chat(gid)
        self._emit_conversation(conv)

    async def _encrypt(self, gid: bytes, payload: dict[str, Any]) -> bytes:
        """Encrypt an application payload; the caller holds the lock. Saves the state
        first if the saved one does not reserve this message's generation."""
        core = self.core_
        ct = core.encrypt_message(gid, json.dumps({"v": PAYLOAD_VERSION, **payload}).encode())
        if core.must_save_before_sending(gid):
            await self._save_chat(gid)
        return ct

    async def _send_payload(self, gid: bytes, payload: dict[str, Any]) -> Response | None:
        async with self._lock:
            if not self.core_.has_group(gid):
                return None
            ct = await self._encrypt(gid, payload)
        try:
            return await self._post(ct)
        except TransportError as e:
            log.info("control message not sent: %s", e)
            return None

    async def send_text(self, gid: bytes, text: str) -> ChatMessage:
        """Send a line: "sending" at once, then "sent" or "failed" (with a reason;
        :meth:`retry`). Does not raise for a refused or undeliverable message."""
        conv = self.conversations[gid]
        if not conv.active or not self.core_.has_group(gid):
            raise MessengerError("you are no longer in this conversation")
        async with self._lock:
            msg = ChatMessage(secrets.token_hex(8), self.identity, text, time.time(), own=True,
                              state=SENDING, epoch=self.core_.epoch(gid), user=self.user_id)
            ct = await self._encrypt(gid, {"type": "text", "text": text,
                                           "ts": int(msg.ts * 1000)})
            await self._append(conv, msg, ct)
            self._track_pending(gid, msg, ct)
        await self._deliver(conv, msg, ct)
        return msg

    async def _deliver(self, conv: Conversation, msg: ChatMessage, ct: bytes) -> str:
        """Post one line; record what the server said. Returns the HTTP verdict:
        "sent", "stale" (409: the epoch moved on), "refused" or "unreachable"."""
        try:
            r = await self._post(ct)
        except TransportError:
            verdict, reason, status = "unreachable", "could not reach the server", 0
        else:
            status = r.status
            verdict = {201: "sent", 409: "stale"}.get(status, "refused")
            reason = ("the conversation moved on before it was delivered" if status == 409
                      else "" if status == 201 else f"refused by the server: {r.error}")
        async with self._lock:
            if msg.state == SENT:  # the echo came first
                return "sent"
            if verdict == "sent":
                await self._set_state(conv, msg, SENT, seq=int(r.body["seq"]))
            else:
                log.info("line %s not delivered (%s): %s", msg.local_id, status, reason)
                await self._set_state(conv, msg, FAILED, reason=reason)
        return verdict

    async def retry(self, gid: bytes, local_id: str) -> ChatMessage:
        """Send a "failed" line again: first the identical bytes (the server
        deduplicates them), and if their epoch is gone, encrypted anew."""
        conv = self.conversations[gid]
        msg = conv.find(local_id)
        if msg is None or not msg.own or msg.kind != "text":
            raise MessengerError("no such line of yours in this conversation")
        if msg.state != FAILED:
            return msg
        if not conv.active or not self.core_.has_group(gid):
            raise MessengerError("you are no longer in this conversation")
        async with self._lock:
            await self._sync_group(gid)  # its echo may show it was delivered after all
            if msg.state == SENT:
                return msg
            await self._set_state(conv, msg, SENDING)
            entry = self._pending.get(local_id)
        if entry is not None and await self._deliver(conv, msg, entry.ciphertext) != "stale":
            return msg
        async with self._lock:
            await self._sync_group(gid)
            if msg.state == SENT:
                return msg
            msg.epoch = self.core_.epoch(gid)
            ct = await self._encrypt(gid, {"type": "text", "text": msg.text,
                                           "ts": int(msg.ts * 1000)})
            self._track_pending(gid, msg, ct)
            await self._set_state(conv, msg, SENDING)
        await self._deliver(conv, msg, ct)
        return msg

    async def _redeliver_interrupted(self) -> None:
        """Lines whose sending a crash or reload interrupted: post the same bytes."""
        for local_id in list(self._interrupted):
            self._interrupted.discard(local_id)
            p = self._pending.get(local_id)
            conv = self.conversations.get(p.gid) if p is not None else None
            if p is None or conv is None or not self.core_.has_group(p.gid):
                continue
            line = await self.history.read_line(p.gid, p.index)
            if line is not None and line[0].state == SENDING:
                msg = conv.find(local_id) or line[0]
                await self._deliver(conv, msg, p.ciphertext)

    # -- devices: joining, retired leaves ---------------------------------------------------
    async def join_my_conversations(self) -> list[bytes]:
        """Join by external commit every conversation the server says this device
        may join (its user is in it, or was invited). Returns the groups joined."""
        r = await self._call("GET", "/api/mls/groups/joinable", ok=(200, 404))
        if r.status == 404:
            return []  # a server without external joins
        joined = []
        for g in r.body["groups"]:
            gid = gid_bytes(g["group_id"])
            if not self.core_.has_group(gid) and await self._join_quietly(gid):
                joined.append(gid)
        return joined

    async def _on_joinable(self, gid: bytes) -> None:
        if not self.core_.has_group(gid):
            await self._join_quietly(gid)

    async def _join_quietly(self, gid: bytes) -> bool:
        try:
            return await self.join_external(gid)
        except (MessengerError, TransportError, MLSError) as e:
            log.info("joining %s failed: %s", gid_str(gid), e)
            self._emit("device", event="join-failed", conversation=gid_str(gid), detail=str(e))
            return False

    async def join_external(self, gid: bytes) -> bool:
        """Join one group by external commit (RFC 9420 §12.4.3.2), removing the leaf
        of one retired device of our user (resync). False if we are in it already."""
        core = self.core_
        async with self._lock:
            try:
                return await self._join_external_locked(gid)
            except (MessengerError, MLSError):
                core.abandon_external_join(gid)
                await self._drop_conversation(gid)
                raise

    async def _join_external_locked(self, gid: bytes) -> bool:
        core = self.core_
        for _ in range(MAX_RETRIES):
            if core.has_group(gid):
                return False
            r = await self._call("GET", f"/api/mls/groups/{gid_str(gid)}/group-info")
            info = unb64(r.body["group_info"])
            members = core.group_info_members(info)[2]
            remove = await self._resync_target(members)
            if core.group_info_members(info)[0] != gid:
                raise MessengerError("the server sent the GroupInfo of another group")
            _, commit, new_info = core.join_by_external_commit(info, remove=remove)
            conv = self._conv(gid)
            conv.joined_late = True  # an existing conversation: its past is not ours
            await self.history.write_chat(gid, ChatRecord(
                conv.name, conv.unread, conv.active, conv.count, 0,
                joining=True, joined_late=conv.joined_late,
                state=core.external_join_state(gid)))
            await self._save_account()
            try:
                pr = await self._post(commit, group_info=new_info)
            except TransportError:
                self._staged.add(gid)  # resolved at the next connection
                raise
            if pr.status == 201:
                await self._joined(conv, int(pr.body["seq"]), remove)
                return True
            core.abandon_external_join(gid)
            if pr.status != 409:
                raise MessengerError(pr.error, pr.status, _code(pr))
        raise MessengerError("the conversation kept changing; try again later", 409)

    async def _joined(self, conv: Conversation, seq: int, removed: str | None) -> None:
        gid = conv.group_id
        core = self.core_
        core.confirm_external_join(gid)
        self._staged.discard(gid)
        conv.active = True
        self.cursors[gid] = seq
        await self._system(conv, NO_HISTORY, seq)
        if removed:
            await self._system(conv, f"Your retired device {device_of(removed)} was removed.",
                               seq)
        await self._save_chat(gid)
        self._emit_conversation(conv)
        self._emit("device", event="joined", conversation=conv.id)
        self._emit("members", conversation=conv.id, members=core.members(gid))
        await self._check_member_keys(conv)
        await self._sync_group(gid)

    async def _drop_conversation(self, gid: bytes) -> None:
        """Forget a conversation that only existed for a join that failed."""
        conv = self.conversations.get(gid)
        self._staged.discard(gid)
        if conv is not None and conv.count == 0:
            del self.conversations[gid]
            await self.store.delete(f"chat:{gid_str(gid)}")
            await self._save_account()

    async def _resync_target(self, members: list[str]) -> str | None:
        """A leaf of a retired device of our user, for our external commit to remove."""
        if not any(user_of(m) == self.user_id for m in members):
            return None
        try:
            devices = await self.devices()
        except MessengerError as e:
            if e.status != 404:
                raise
            return None  # a server without the device list: the next commit removes it
        retired = {d["device_id"] for d in devices if d.get("retired")}
        return next((m for m in members
                     if user_of(m) == self.user_id and device_of(m) in retired), None)

    async def _resolve_staged_joins(self) -> None:
        """External joins saved before their commit was posted: the server's list of
        our groups says whether it was accepted."""
        if not self._staged:
            return
        r = await self._call("GET", "/api/mls/groups")
        mine = {gid_bytes(g["group_id"]): g for g in r.body["groups"]}
        async with self._lock:
            for gid in list(self._staged):
                if gid in mine:
                    await self._joined(self._conv(gid), int(mine[gid].get("joined_seq", 0)),
                                       None)
                else:
                    self.core_.abandon_external_join(gid)
                    await self._drop_conversation(gid)

    def _on_device_retired(self, ev: dict[str, Any]) -> None:
        identity = f"{ev.get('user_id', '')}/{ev.get('device_id', '')}"
        if identity == self.identity:
            self.retired = True
            self._stopping = True
            self._emit("device", event="retired", device=self.device_id)
            return
        for g in ev.get("group_ids", []):
            gid = gid_bytes(str(g))
            self._retired.setdefault(gid, set()).add(identity)
            self._spawn(self._remove_retired(gid))

    async def _remove_retired(self, gid: bytes) -> None:
        """Remove the leaves of retired devices now if we are the member expected to
        (the lowest leaf that is not retired); anyone else's next commit does it too."""
        core = self.core_
        if not core.has_group(gid) or not self._retired_present(gid):
            return
        if designated_committer(core.members(gid), self._retired.get(gid, ())) != self.identity:
            return
        await self._commit_with_retry(gid, lambda: core.commit(
            gid, remove=self._retired_present(gid)), lambda: bool(self._retired_present(gid)))

    # -- trust ------------------------------------------------------------------------------
    async def directory(self, username: str) -> dict[str, bytes]:
        """device id -> identity key of the user's active devices (key directory)."""
        r = await self._call("GET", f"/api/users/{quote(username)}/devices")
        for d in r.body["devices"]:
            self._offered[(username, d["device_id"])] = {
                int(x) for x in d.get("cipher_suites") or [d["cipher_suite"]]}
        return {d["device_id"]: unb64(d["signature_key"]) for d in r.body["devices"]}

    async def observe_user(self, username: str) -> list[TrustEvent]:
        if username == self.user_id:
            return []
        events = self.trust.observe_keys(username, (await self.directory(username)).values())
        await self._save_trust()
        for e in events:
            self._emit("trust", event=e.kind, user=e.user_id, detail=e.detail)
        return events

    async def _check_member_keys(self, conv: Conversation) -> None:
        """Compare the group's leaves with the key directory: a new device of a
        contact is a key change (a verified contact becomes unverified), a leaf key
        the directory does not list a possible MITM."""
        if not self.core_.has_group(conv.group_id):
            return
        keys = self.core_.member_keys(conv.group_id)
        users = {user_of(i) for i in keys} - {self.user_id}
        directory: dict[str, list[bytes]] = {}
        for u in sorted(users):
            try:
                directory[u] = list((await self.directory(u)).values())
            except (MessengerError, TransportError):
                continue
            for e in self.trust.observe_keys(u, directory[u]):
                await self._system(conv, f"{e.user_id}: {e.detail}.")
                self._emit("trust", event=e.kind, user=e.user_id, detail=e.detail)
        retired = self._retired.get(conv.group_id, set())
        for e in check_group_keys({i: k for i, k in keys.items() if i not in retired},
                                  directory):
            await self._system(conv, f"Warning: {e.user_id}'s {e.detail} (possible MITM).")
            self._emit("trust", event=e.kind, user=e.user_id, detail=e.detail)
        await self._save_trust()

    async def refresh_trust(self, gid: bytes) -> None:
        """Re-read the key directory for everyone in a conversation: raises
        key-change and possible-MITM events (e.g. when a conversation is opened)."""
        conv = self.conversations.get(gid)
        if conv is not None:
            async with self._lock:
                await self._check_member_keys(conv)
                await self._flush()

    async def safety_number_with(self, username: str) -> SafetyNumber:
        """Covers every active device of both users."""
        mine = (await self.directory(self.user_id)).values()
        theirs = (await self.directory(username)).values()
        return safety_number(self.user_id, mine, username, theirs)

    async def mark_verified(self, username: str) -> None:
        self.trust.mark_verified(username, (await self.directory(username)).values())
        await self._save_trust()
        self._emit("trust", event="verified", user=username, detail="")

    async def unverify(self, username: str) -> None:
        self.trust.unverify(username)
        await self._save_trust()
        self._emit("trust", event="unverified", user=username, detail="")

    def group_code(self, gid: bytes) -> str:
        core = self.core_
        return group_code(gid, core.epoch(gid), core.epoch_authenticator(gid))

    def members(self, gid: bytes) -> list[str]:
        core = self.core_
        return core.members(gid) if core.has_group(gid) else []

    def member_users(self, gid: bytes) -> dict[str, list[str]]:
        """user -> their device ids in the group (a user is their devices)."""
        out: dict[str, list[str]] = {}
        for i in self.members(gid):
            out.setdefault(user_of(i), []).append(device_of(i))
        return out


def is_post_quantum(suite: int) -> bool:
    """Whether the suite's key exchange resists quantum computers (ML-KEM, alone or in
    a hybrid; docs/pq.md). Signatures stay classical in every suite used here."""
    return suite in PQ_SUITES


def suite_label(suite: int) -> str:
    """A short name of a cipher suite for people: its key exchange, whether that is
    post-quantum, and the code point (e.g. "MLKEM768X25519 (post-quantum), 0x004f")."""
    params = SUITES.get(suite)
    if params is None:
        return f"unknown suite 0x{suite:04x}"
    kem = params.name.split("_")[2]  # MLS_<level>_<KEM>_<AEAD>_<hash>_<signature>
    pq = " (post-quantum)" if is_post_quantum(suite) else ""
    return f"{kem}{pq}, 0x{suite:04x}"


def _code(r: Response) -> str:
    return str(r.body.get("error", "")) if isinstance(r.body, dict) else ""


def _kp_identity(kp: bytes) -> str:
    body = MLSMessage.deserialize(kp).body
    if not isinstance(body, KeyPackage):
        return ""
    return body.leaf_node.credential.identity.decode("utf-8", "replace")


def _describe_adds(who: str, before: list[str], added: list[str], me: str) -> list[str]:
    by_user: dict[str, list[str]] = {}
    for ident in added:
        by_user.setdefault(user_of(ident), []).append(device_of(ident))
    out = []
    for user, devices in by_user.items():
        if user == me:
            out.append(f"{who} added your device{'s' if len(devices) > 1 else ''} "
                       f"{', '.join(devices)}.")
        elif devices_of(before, user):
            out.append(f"{who} added {user}'s new device{'s' if len(devices) > 1 else ''} "
                       f"({', '.join(devices)}).")
        else:
            out.append(f"{who} added {user}.")
    return out


def _describe_removals(who: str, before: list[str], removed: list[str], retired: set[str],
                       me: str) -> list[str]:
    out = []
    by_user: dict[str, list[str]] = {}
    for ident in removed:
        by_user.setdefault(user_of(ident), []).append(ident)
    for user, idents in by_user.items():
        remaining = devices_of(before, user) - {device_of(i) for i in idents}
        devices = ", ".join(device_of(i) for i in idents)
        whose = "your" if user == me else f"{user}'s"
        if any(i in retired for i in idents):
            out.append(f"{who} removed {whose} retired device {devices}.")
        elif remaining:
            out.append(f"{who} removed {whose} device {devices}.")
        else:
            out.append(f"{who} removed {user}.")
    return out


async def _read_frames(ws: Any, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
    """Feed the push channel's events into ``queue``; ``None`` when it closes."""
    try:
        while (text := await ws.receive()) is not None:
            queue.put_nowait(json.loads(text))
    finally:
        queue.put_nowait(None)


async def _next_batch(queue: asyncio.Queue[dict[str, Any] | None]) -> list[dict[str, Any]]:
    """The events waiting in ``queue`` (at least one; ``[]`` once it closed)."""
    first = await queue.get()
    if first is None:
        return []
    batch = [first]
    while len(batch) < BATCH_MAX and not queue.empty():
        ev = queue.get_nowait()
        if ev is None:
            queue.put_nowait(None)  # seen again by the next call, after this batch
            break
        batch.append(ev)
    return batch
