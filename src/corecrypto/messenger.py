"""The messaging client: account, devices, groups and conversations over the
delivery service, on top of :class:`~corecrypto.CoreCrypto`.

Rules it keeps:

* Every group's stream is processed strictly in the server's sequence order,
  through one lock, so REST catch-up and WebSocket push never interleave.
* Our own accepted commit is merged when it comes back at its place in the
  stream (CoreCrypto recognises the echo of its pending commit); on 409 the
  pending commit is cleared, the winner processed, and the operation retried
  once it still makes sense.
* State is saved after every change: the conversation's messages first, then
  the MLS group state with its cursor, so a crash in between never makes the
  client skip a message it did not process.
* KeyPackages are replenished: a stock on the server plus one last-resort.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from mls.errors import EpochError, MLSError
from mls.key_package import KeyPackage
from mls.message import MLSMessage

from .client import CoreCrypto
from .errors import CoreCryptoError
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

log = logging.getLogger("corecrypto.messenger")

KEY_PACKAGE_TARGET = 10
MAX_RETRIES = 3
PAYLOAD_VERSION = 1  # "v" of the JSON inside application messages


class MessengerError(CoreCryptoError):
    """An operation failed; ``status`` is the HTTP status when the server said no."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def gid_str(group_id: bytes) -> str:
    return base64.urlsafe_b64encode(group_id).rstrip(b"=").decode()


def gid_bytes(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def user_of(identity: str) -> str:
    return identity.rpartition("/")[0]


@dataclass
class ChatMessage:
    """One line of a conversation: a text or a system event."""

    local_id: str
    sender: str  # identity "user/device", "" for system lines
    text: str
    ts: float
    kind: str = "text"  # "text" | "system"
    own: bool = False
    state: str = "received"  # "sending" | "sent" | "failed" | "received"
    seq: int | None = None
    epoch: int = 0


@dataclass
class Conversation:
    group_id: bytes
    name: str
    messages: list[ChatMessage] = field(default_factory=list)
    unread: int = 0
    active: bool = True

    @property
    def id(self) -> str:
        return gid_str(self.group_id)

    def to_json(self) -> dict[str, Any]:
        return {"group_id": self.id, "name": self.name, "unread": self.unread,
                "active": self.active, "messages": [asdict(m) for m in self.messages]}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Conversation:
        return cls(gid_bytes(obj["group_id"]), obj["name"],
                   [ChatMessage(**m) for m in obj["messages"]], obj["unread"], obj["active"])


Listener = Callable[[str, dict[str, Any]], None]


class Messenger:
    """One signed-in device. Create with :meth:`register_device` or :meth:`load`."""

    def __init__(self, transport: Transport, store: Store, *,
                 key_package_target: int = KEY_PACKAGE_TARGET) -> None:
        self.transport = transport
        self.store = store
        self.key_package_target = key_package_target
        self.core: CoreCrypto | None = None
        self.token: str | None = None
        self.user_id = ""
        self.device_id = ""
        self.welcome_after = 0
        self.cursors: dict[bytes, int] = {}
        self.conversations: dict[bytes, Conversation] = {}
        self.trust = TrustStore()
        self.status = "offline"  # "offline" | "connecting" | "online" | "reconnecting"
        self._lock = asyncio.Lock()
        self._listeners: list[Listener] = []
        self._realtime: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._stopping = False

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

    # -- HTTP ---------------------------------------------------------------------------
    async def _call(self, method: str, path: str, body: Any = None, *,
                    ok: Iterable[int] = (200, 201, 204)) -> Response:
        r = await self.transport.request(method, path, json=body, token=self.token)
        if r.status not in set(ok):
            raise MessengerError(f"{method} {path}: {r.error}", r.status)
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
                               ciphersuite: int = 1, device_name: str = "browser") -> None:
        """Log in and register this browser as a new device with a fresh identity key."""
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
        """For a panic wipe: retire this device on the server, best effort. Its
        KeyPackages are deleted, its sessions revoked, and the members of its groups are
        told to remove its leaf; the user's next device may rejoin those groups."""
        token, device_id = self.token, self.device_id

        async def cleanup() -> None:
            if not token:
                return
            if device_id:
                r = await self.transport.request("DELETE", f"/api/auth/devices/{device_id}",
                                                 token=token)
                if r.status == 200:
                    return
            # No device, or a server without retirement: at least this much.
            await self.transport.request("DELETE", "/api/mls/key-packages", token=token)
            await self.transport.request("POST", "/api/auth/logout", token=token)

        return cleanup

    async def replenish_key_packages(self) -> int:
        """Top the server's stock up to the target, with one last-resort package."""
        r = await self._call("GET", "/api/mls/key-packages/count")
        count, last_resort = int(r.body["count"]), bool(r.body["last_resort"])
        kps: list[bytes] = []
        if count < self.key_package_target // 2 + 1:
            kps += self.core_.generate_key_packages(self.key_package_target - count)
        if not last_resort:
            kps += self.core_.generate_key_packages(1, last_resort=True)
        if kps:
            # Persist the private keys before the server can hand the packages out.
            await self._save_keys()
            await self._call("POST", "/api/mls/key-packages",
                             {"key_packages": [b64(k) for k in kps]})
        return len(kps)

    # -- persistence --------------------------------------------------------------------
    async def _save_account(self) -> None:
        acct = {"user_id": self.user_id, "device_id": self.device_id, "token": self.token,
                "welcome_after": self.welcome_after,
                "groups": sorted(gid_str(g) for g in self.conversations)}
        await self.store.put("account", json.dumps(acct).encode())
        await self._save_keys()

    async def _save_keys(self) -> None:
        if self.core is not None:
            await self.store.put("identity", self.core.export_state(include_groups=False))

    async def _save_group(self, gid: bytes) -> None:
        conv = self.conversations.get(gid)
        if conv is not None:
            await self.store.put(f"conv:{conv.id}", json.dumps(conv.to_json()).encode())
        core = self.core_
        if core.has_group(gid):
            blob = json.dumps({"cursor": self.cursors.get(gid, 0)}).encode()
            state = core.export_group_state(gid)
            await self.store.put(f"group:{gid_str(gid)}",
                                 len(blob).to_bytes(4, "big") + blob + state)

    async def _save_trust(self) -> None:
        await self.store.put("trust", self.trust.to_bytes())

    @classmethod
    async def load(cls, transport: Transport, store: Store) -> Messenger | None:
        """The device saved in ``store``, or ``None`` on first run."""
        raw = await store.get("account")
        ident = await store.get("identity")
        if raw is None or ident is None:
            return None
        acct = json.loads(raw)
        m = cls(transport, store)
        m.user_id, m.device_id = acct["user_id"], acct["device_id"]
        m.token, m.welcome_after = acct["token"], acct["welcome_after"]
        m.core = CoreCrypto.import_state(ident)
        for g in acct["groups"]:
            gid = gid_bytes(g)
            conv_raw = await store.get(f"conv:{g}")
            if conv_raw is not None:
                m.conversations[gid] = Conversation.from_json(json.loads(conv_raw))
            group_raw = await store.get(f"group:{g}")
            if group_raw is not None:
                n = int.from_bytes(group_raw[:4], "big")
                meta = json.loads(group_raw[4:4 + n])
                m.core.import_group_state(group_raw[4 + n:])
                m.cursors[gid] = int(meta["cursor"])
        trust = await store.get("trust")
        if trust is not None:
            m.trust = TrustStore.from_bytes(trust)
        return m

    # -- receiving ----------------------------------------------------------------------
    def _system(self, conv: Conversation, text: str, seq: int | None = None) -> None:
        msg = ChatMessage(secrets.token_hex(8), "", text, time.time(), kind="system", seq=seq,
                          epoch=self.core_.epoch(conv.group_id)
                          if self.core_.has_group(conv.group_id) else 0)
        conv.messages.append(msg)
        self._emit("message", conversation=conv.id, message=asdict(msg))

    async def _process_event(self, ev: dict[str, Any]) -> None:
        """Apply one ``mls-message`` in sequence order (the caller holds the lock)."""
        gid = gid_bytes(ev["group_id"])
        seq = int(ev["seq"])
        if seq <= self.cursors.get(gid, 0) or not self.core_.has_group(gid):
            return  # already processed, or a group we are not in (any more)
        conv = self.conversations.setdefault(gid, Conversation(gid, "New conversation"))
        data = unb64(ev["data"])
        try:
            r = self.core_.process_message(gid, data)
        except EpochError as e:
            # A proposal or message of an epoch we already left (e.g. sent while our
            # commit was winning): nothing to apply; the sender will see our commit.
            log.info("skipping seq %d of %s: %s", seq, conv.id, e)
            r = None
        except MLSError as e:
            log.warning("undecryptable seq %d of %s: %s", seq, conv.id, e)
            self._system(conv, f"A message could not be processed ({type(e).__name__}).", seq)
            r = None
        self.cursors[gid] = seq
        if isinstance(r, ApplicationReceived):
            self._on_application(conv, r, seq)
        elif isinstance(r, OwnMessageEcho):
            for m in conv.messages:
                if m.own and m.seq == seq:
                    m.state = "sent"
        elif isinstance(r, CommitReceived):
            await self._on_commit(conv, r, seq)
        elif isinstance(r, ProposalReceived):
            await self._on_proposal(conv, r)
        await self._save_group(gid)

    def _on_application(self, conv: Conversation, r: ApplicationReceived, seq: int) -> None:
        try:
            payload = json.loads(r.plaintext)
            kind = payload.get("type")
        except (ValueError, AttributeError):
            payload, kind = {"text": r.plaintext.decode("utf-8", "replace")}, "text"
        if kind == "meta":
            name = str(payload.get("name", ""))[:100]
            if name and name != conv.name:
                conv.name = name
                self._emit("conversation", conversation=conv.id, name=name)
            return
        text = str(payload.get("text", ""))
        ts = float(payload.get("ts", time.time() * 1000)) / 1000
        msg = ChatMessage(secrets.token_hex(8), r.sender, text, ts, seq=seq, epoch=r.epoch)
        conv.messages.append(msg)
        conv.unread += 1
        self._emit("message", conversation=conv.id, message=asdict(msg))

    async def _on_commit(self, conv: Conversation, r: CommitReceived, seq: int) -> None:
        if r.self_removed:
            conv.active = False
            self._system(conv, "You were removed from this conversation.", seq)
            self.core_.delete_group(conv.group_id)
            self.cursors.pop(conv.group_id, None)
            await self.store.delete(f"group:{conv.id}")
            self._emit("conversation", conversation=conv.id, name=conv.name)
            return
        who = user_of(r.sender or "") or "someone"
        for ident in r.added:
            self._system(conv, f"{who} added {ident}.", seq)
        for ident in r.removed:
            self._system(conv, f"{who} removed {ident}.", seq)
        if not r.added and not r.removed and r.updated and not r.own:
            self._system(conv, f"{who} updated their keys.", seq)
        if r.added or r.removed:
            self._emit("members", conversation=conv.id,
                       members=self.core_.members(conv.group_id))
            await self._check_member_keys(conv)

    async def _on_proposal(self, conv: Conversation, r: ProposalReceived) -> None:
        # A member asked to leave: the lowest remaining leaf commits it.
        if r.proposal == "remove" and r.target and r.target == r.sender:
            members = [m for m in self.core_.members(conv.group_id) if m != r.target]
            if members and members[0] == self.identity:
                task = asyncio.ensure_future(self._commit_pending_soon(conv.group_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _commit_pending_soon(self, gid: bytes) -> None:
        try:
            await self._commit_with_retry(gid, lambda: self.core_.commit_pending_proposals(gid),
                                          lambda: True)
        except (MessengerError, MLSError, TransportError) as e:
            log.info("committing pending proposals failed: %s", e)

    async def _process_welcome_event(self, ev: dict[str, Any]) -> None:
        seq = int(ev["welcome_seq"])
        if seq <= self.welcome_after:
            return
        self.welcome_after = seq
        try:
            gid = self.core_.process_welcome(unb64(ev["data"]))
        except MLSError as e:
            log.warning("Welcome %d could not be processed: %s", seq, e)
            await self._save_account()
            return
        conv = self.conversations.setdefault(gid, Conversation(gid, "New conversation"))
        conv.active = True
        self.cursors[gid] = 0
        self._system(conv, f"You joined (added by {user_of(ev.get('sender') or '')}).")
        await self._save_group(gid)
        await self._save_account()
        self._emit("conversation", conversation=conv.id, name=conv.name)
        await self._check_member_keys(conv)
        await self.replenish_key_packages()

    async def sync(self) -> None:
        """Catch up over REST: the Welcome inbox, then every group's stream."""
        async with self._lock:
            await self._sync_locked()

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
        while self.core_.has_group(gid):
            r = await self._call("GET", f"/api/mls/messages/{gid_str(gid)}"
                                        f"?after={self.cursors.get(gid, 0)}", ok=(200, 403))
            if r.status == 403:
                return  # removed: the removal commit was already processed or never visible
            for ev in r.body["messages"]:
                await self._process_event(ev)
            if not r.body["has_more"]:
                return

    # -- realtime -----------------------------------------------------------------------
    def start(self) -> None:
        """Run the WebSocket loop in the background (reconnects with backoff)."""
        if self._realtime is None or self._realtime.done():
            self._stopping = False
            self._realtime = asyncio.ensure_future(self._run_realtime())

    async def stop(self) -> None:
        self._stopping = True
        task, self._realtime = self._realtime, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set_status("offline")

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
                while (text := await ws.receive()) is not None:
                    ev = json.loads(text)
                    t = ev.get("type")
                    if t == "ready":
                        backoff = 0.5
                        self._set_status("online")
                    elif t in ("mls-message", "mls-welcome"):
                        async with self._lock:
                            if t == "mls-message":
                                await self._process_event(ev)
                            else:
                                await self._process_welcome_event(ev)
                    elif t == "error":
                        log.warning("server closed the push channel: %s", ev)
                await ws.close()
            except (TransportError, OSError, ValueError, KeyError) as e:
                log.info("push channel broke: %s", e)
            except MessengerError as e:
                log.warning("push processing failed: %s", e)
            except Exception:  # the push loop must outlive any one bug: log it, reconnect
                log.exception("push loop error; reconnecting")
            if self._stopping:
                break
            self._set_status("reconnecting")
            await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311 - jitter only
            backoff = min(backoff * 2, 30.0)

    # -- sending ----------------------------------------------------------------------------
    async def _post(self, gid: bytes, message: bytes, welcome: bytes | None = None,
                    group_info: bytes | None = None) -> Response:
        body: dict[str, Any] = {"message": b64(message)}
        if welcome is not None:
            body["welcome"] = b64(welcome)
        if group_info is not None:
            body["group_info"] = b64(group_info)
        return await self._call("POST", "/api/mls/messages/group", body, ok=(201, 409))

    async def _commit_with_retry(
        self, gid: bytes, make: Callable[[], tuple[bytes, bytes | None]],
        still_needed: Callable[[], bool],
    ) -> bool:
        """Create a commit, post it; on 409 clear it, catch up and retry (§14)."""
        async with self._lock:
            await self._sync_group(gid)
            for _ in range(MAX_RETRIES):
                if not still_needed():
                    return False
                commit, welcome = make()
                try:
                    # A commit travels with the GroupInfo of the epoch it creates: the
                    # delivery service verifies it and hands it to external joiners.
                    group_info = self.core_.group(gid).pending_group_info()
                    r = await self._post(gid, commit, welcome, group_info)
                except (TransportError, MessengerError):
                    self.core_.clear_pending_commit(gid)
                    raise
                if r.status == 201:
                    # Our commit merges when the stream reaches it.
                    await self._sync_group(gid)
                    if self.core_.has_group(gid) and self.core_.has_pending_commit(gid):
                        raise MessengerError("our accepted commit did not come back")
                    return True
                self.core_.clear_pending_commit(gid)
                await self._sync_group(gid)
            raise MessengerError("another member kept winning the epoch; try again", 409)

    async def create_conversation(self, name: str, usernames: Iterable[str]) -> Conversation:
        gid = secrets.token_bytes(16)
        core = self.core_
        core.create_group(gid)
        try:
            await self._call("POST", "/api/mls/groups", {"group_id": gid_str(gid),
                                                         "cipher_suite": core.ciphersuite,
                                                         "group_info": b64(core.group_info(gid))})
        except (MessengerError, TransportError):
            core.delete_group(gid)
            raise
        conv = Conversation(gid, name or "Conversation")
        self.conversations[gid] = conv
        self.cursors[gid] = 0
        await self._save_group(gid)
        await self._save_account()
        others = [u for u in usernames if u and u != self.user_id]
        if others:
            await self.add_members(gid, others)
        else:
            await self._send_payload(gid, {"type": "meta", "name": conv.name})
        self._emit("conversation", conversation=conv.id, name=conv.name)
        return conv

    async def _claim(self, username: str) -> list[bytes]:
        r = await self._call("GET", f"/api/mls/key-packages/{username}")
        kps = [unb64(k["key_package"]) for k in r.body["key_packages"]]
        if not kps:
            raise MessengerError(f"{username} has no device that can be added", 404)
        await self.observe_user(username)
        return kps

    async def add_members(self, gid: bytes, usernames: Iterable[str]) -> None:
        names = [u for u in usernames if u]
        kps: list[bytes] = []
        for u in names:
            kps += await self._claim(u)

        def missing() -> bool:
            present = {user_of(i) for i in self.core_.members(gid)}
            return any(u not in present for u in names)

        def make() -> tuple[bytes, bytes | None]:
            present = set(self.core_.members(gid))
            todo = [k for k in kps if _kp_identity(k) not in present]
            return self.core_.add_members(gid, todo)

        conv = self.conversations[gid]
        if await self._commit_with_retry(gid, make, missing):
            self._system(conv, f"You added {', '.join(names)}.")
            await self._save_group(gid)
        # Joiners see only what follows their Welcome: tell them the name.
        await self._send_payload(gid, {"type": "meta", "name": conv.name})

    async def remove_member(self, gid: bytes, username: str) -> None:
        def targets() -> list[str]:
            return [i for i in self.core_.members(gid) if user_of(i) == username]

        if await self._commit_with_retry(
                gid, lambda: (self.core_.remove_members(gid, targets()), None),
                lambda: bool(targets())):
            self._system(self.conversations[gid], f"You removed {username}.")
            await self._save_group(gid)

    async def self_update(self, gid: bytes) -> None:
        await self._commit_with_retry(gid, lambda: (self.core_.self_update(gid), None),
                                      lambda: True)

    async def leave(self, gid: bytes) -> None:
        """Ask to be removed; another member commits it (RFC 9420 §12.1.3)."""
        async with self._lock:
            await self._sync_group(gid)
            r = await self._post(gid, self.core_.leave_group(gid))
            if r.status != 201:
                raise MessengerError("the group moved on; try again", r.status)
            conv = self.conversations[gid]
            conv.active = False
            self._system(conv, "You left this conversation.")
            await self._save_group(gid)

    async def _send_payload(self, gid: bytes, payload: dict[str, Any]) -> Response:
        async with self._lock:
            ct = self.core_.encrypt_message(
                gid, json.dumps({"v": PAYLOAD_VERSION, **payload}).encode())
            await self._save_group(gid)
            return await self._post(gid, ct)

    async def send_text(self, gid: bytes, text: str) -> ChatMessage:
        conv = self.conversations[gid]
        if not conv.active:
            raise MessengerError("you are no longer in this conversation")
        msg = ChatMessage(secrets.token_hex(8), self.identity, text, time.time(), own=True,
                          state="sending", epoch=self.core_.epoch(gid))
        conv.messages.append(msg)
        self._emit("message", conversation=conv.id, message=asdict(msg))
        try:
            r = await self._send_payload(gid, {"type": "text", "text": text,
                                               "ts": int(msg.ts * 1000)})
        except (MessengerError, TransportError, MLSError):
            msg.state = "failed"
            self._emit("message-state", conversation=conv.id, local_id=msg.local_id,
                       state="failed")
            raise
        if r.status == 201:
            msg.state, msg.seq = "sent", int(r.body["seq"])
        else:
            msg.state = "failed"
        async with self._lock:
            await self._save_group(gid)
        self._emit("message-state", conversation=conv.id, local_id=msg.local_id,
                   state=msg.state)
        return msg

    def mark_read(self, gid: bytes) -> None:
        conv = self.conversations.get(gid)
        if conv is not None:
            conv.unread = 0

    # -- trust ------------------------------------------------------------------------------
    async def directory(self, username: str) -> dict[str, bytes]:
        """device id -> identity key, from the server's key directory."""
        r = await self._call("GET", f"/api/users/{username}/devices")
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
                self._system(conv, f"{e.user_id}: {e.detail}.")
                self._emit("trust", event=e.kind, user=e.user_id, detail=e.detail)
        for e in check_group_keys(keys, directory):
            self._system(conv, f"Warning: {e.user_id}'s {e.detail} (possible MITM).")
            self._emit("trust", event=e.kind, user=e.user_id, detail=e.detail)
        await self._save_trust()

    async def refresh_trust(self, gid: bytes) -> None:
        """Re-read the key directory for everyone in a conversation: raises
        key-change and possible-MITM events (e.g. when a conversation is opened)."""
        conv = self.conversations.get(gid)
        if conv is not None:
            async with self._lock:
                await self._check_member_keys(conv)
                await self._save_group(gid)

    async def safety_number_with(self, username: str) -> SafetyNumber:
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


def _kp_identity(kp: bytes) -> str:
    body = MLSMessage.deserialize(kp).body
    assert isinstance(body, KeyPackage)
    return body.leaf_node.credential.identity.decode("utf-8", "replace")
