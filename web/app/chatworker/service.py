"""The UI's requests, served by the client core in the worker.

One :class:`ChatService` per worker. The UI sends ``(method, params)`` and gets a
JSON-able result or an :class:`RpcError`; the service pushes events ``(kind, data)``
(the messenger's, plus ``locked``). Everything is plain data: the UI never holds a
key, a vault or a messenger, and nothing here touches the DOM.

Requests that change state run one at a time (``_busy``), so a hand-over to another
tab (:meth:`ChatService.shutdown`) waits for the one in progress and then refuses
the rest: two tabs never write the device's state at once.

Runs on CPython too (tests drive it against a real server with the local vault).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from corecrypto.chat import ChatMessage, Conversation, gid_bytes, user_of
from corecrypto.errors import CoreCryptoError
from corecrypto.messenger import Messenger, MessengerError
from corecrypto.transport import Transport, TransportError
from corecrypto.trust import group_hex, identity_fingerprint
from corecrypto.vault import LockReason, Vault, VaultError, WrongPasswordError
from mls.errors import MLSError

log = logging.getLogger("corecrypto.worker")

Emit = Callable[[str, dict[str, Any]], None]
PAGE = 50  # lines per page of history
MAX_PAGE = 200


class RpcError(Exception):
    """A request failed in a way the UI explains: ``kind`` says which, ``field``
    names the form field it is about, ``message`` is for people."""

    def __init__(self, kind: str, message: str, *, field: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.field = field
        self.status = status

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "field": self.field,
                "status": self.status}


def _server_error(e: MessengerError | TransportError, doing: str) -> RpcError:
    """A server refusal or network failure, said plainly (no API paths)."""
    if isinstance(e, TransportError):
        return RpcError("offline", f"Could not reach the server while {doing}. "
                                   "Check the connection and try again.")
    detail = str(e) or "refused"  # the server's explanation (no method or path)
    if e.status == 429:
        return RpcError("rate-limited", "Too many attempts. Wait a minute and try again.",
                        status=429)
    if e.status is not None and e.status >= 500:
        return RpcError("server", f"The server failed while {doing}. Try again later.",
                        status=e.status)
    return RpcError("refused", detail[:1].upper() + detail[1:], status=e.status)


def _message(msg: ChatMessage) -> dict[str, Any]:
    return msg.to_json()


def _param(params: dict[str, Any], name: str, kind: type = str) -> Any:
    value = params.get(name)
    if not isinstance(value, kind):
        raise RpcError("bad-request", f"{name} is missing or not a {kind.__name__}")
    return value


class ChatService:
    """The worker's side of the UI: see the module's docstring."""

    def __init__(self, transport: Transport, open_vault: Callable[[], Awaitable[Vault]],
                 emit: Emit) -> None:
        self.transport = transport
        self._open_vault = open_vault
        self._emit = emit
        self.vault: Vault | None = None
        self.messenger: Messenger | None = None
        self._pending: tuple[str, str, str] | None = None  # mode, username, password
        self._busy = asyncio.Lock()
        self._closed = False
        self._sending: set[asyncio.Future[Any]] = set()

    # -- dispatch -------------------------------------------------------------------------
    async def call(self, method: str, params: dict[str, Any]) -> Any:
        """Run one request; raises :class:`RpcError` for anything the UI shows."""
        handler = getattr(self, f"rpc_{method.replace('-', '_')}", None)
        if handler is None:
            raise RpcError("bad-request", f"no method {method!r}")
        if self._closed:
            raise RpcError("released", "This chat is now open in another tab.")
        try:
            result: Any = await handler(params)
        except RpcError:
            raise
        except (MessengerError, TransportError) as e:
            raise _server_error(e, "doing that") from None
        except (MLSError, CoreCryptoError, VaultError, ValueError, KeyError) as e:
            log.warning("%s failed: %s: %s", method, type(e).__name__, e)
            raise RpcError("failed", str(e) or type(e).__name__) from None
        return result

    async def _vault(self) -> Vault:
        if self.vault is None:
            self.vault = await self._open_vault()
            self.vault.on_lock(self._on_lock)
        return self.vault

    def _m(self) -> Messenger:
        if self.messenger is None:
            raise RpcError("locked", "The vault is locked.")
        return self.messenger

    def _conv(self, params: dict[str, Any]) -> Conversation:
        m = self._m()
        try:
            conv = m.conversations.get(gid_bytes(_param(params, "conversation")))
        except (ValueError, binascii.Error):
            conv = None
        if conv is None:
            raise RpcError("not-found", "No such conversation.")
        return conv

    # -- start-up, account, vault -----------------------------------------------------------
    async def rpc_status(self, _params: dict[str, Any]) -> dict[str, Any]:
        vault = await self._vault()
        return {"vault": await vault.exists(), "unlocked": not vault.locked,
                "signed_in": self.messenger is not None}

    async def rpc_account(self, params: dict[str, Any]) -> dict[str, Any]:
        """The first step of the first run: register (or check a sign-in) with the
        server before any vault exists, so its refusal comes now, field by field."""
        mode = _param(params, "mode")
        username = _param(params, "username").strip()
        password = _param(params, "password")
        if mode not in ("register", "signin"):
            raise RpcError("bad-request", "mode must be register or signin")
        async with self._busy:
            m = Messenger(self.transport, await self._vault())
            try:
                if mode == "register":
                    await m.register(username, password)
                else:
                    r = await self.transport.request(
                        "POST", "/api/auth/login", json={"username": username,
                                                         "password": password})
                    if r.status == 401:
                        raise RpcError("refused", "Wrong username or password.",
                                       field="password", status=401)
                    if not r.ok:
                        raise MessengerError(f"login: {r.error}", r.status)
                    # Only a check: the device gets its own session in the vault step.
                    await self.transport.request("POST", "/api/auth/logout",
                                                 token=str(r.body["token"]))
            except MessengerError as e:
                err = _server_error(e, "creating the account")
                if e.status == 409:
                    err = RpcError("refused", "This username is taken. Choose another, or "
                                   "sign in if it is yours.", field="username", status=409)
                elif e.status == 400:
                    detail = f"{e.code} {e}".lower()
                    err.field = ("username" if "username" in e.code or (
                        "username" in detail and "password" not in detail) else "password")
                raise err from None
            except TransportError as e:
                raise _server_error(e, "creating the account") from None
            self._pending = (mode, username, password)
        return {"username": username}

    async def rpc_create_vault(self, params: dict[str, Any]) -> dict[str, Any]:
        password = _param(params, "password")
        if self._pending is None:
            raise RpcError("bad-request", "Sign in or create an account first.")
        _, username, account_password = self._pending
        async with self._busy:
            vault = await self._vault()
            await vault.create(password)
            m = Messenger(self.transport, vault)
            try:
                await m.login_new_device(username, account_password)
            except (MessengerError, TransportError, MLSError) as e:
                # Nothing half-made stays behind: the next attempt starts afresh.
                await vault.panic(None)
                self.vault = None
                raise (_server_error(e, "registering this device")
                       if isinstance(e, MessengerError | TransportError)
                       else RpcError("failed", str(e))) from None
            self._pending = None
            return await self._start(m)

    async def rpc_unlock(self, params: dict[str, Any]) -> dict[str, Any]:
        password = _param(params, "password")
        async with self._busy:
            vault = await self._vault()
            try:
                await vault.unlock(password)
            except WrongPasswordError:
                raise RpcError("wrong-password", "Wrong vault password. Nothing was changed.",
                               field="password") from None
            m = await Messenger.load(self.transport, vault)
            if m is None:
                return {"welcome": True}
            return await self._start(m)

    async def _start(self, m: Messenger) -> dict[str, Any]:
        self.messenger = m
        m.on_event(self._forward)
        relogin = False
        try:
            await m.sync()
        except MessengerError as e:
            if e.status == 401:
                relogin = True
            else:
                log.info("catching up failed: %s", e)
        except TransportError as e:
            log.info("offline at start: %s", e)
        if not relogin:
            m.start()
        return {**self._snapshot(m), "relogin": relogin}

    async def rpc_relogin(self, params: dict[str, Any]) -> dict[str, Any]:
        m = self._m()
        async with self._busy:
            try:
                await m.login_existing_device(m.user_id, _param(params, "password"))
            except MessengerError as e:
                if e.status == 401:
                    raise RpcError("refused", "Wrong account password.", field="password",
                                   status=401) from None
                raise
            return await self._start(m)

    async def rpc_lock(self, _params: dict[str, Any]) -> None:
        if self.vault is not None:
            self.vault.lock()

    async def rpc_touch(self, _params: dict[str, Any]) -> None:
        if self.vault is not None:
            self.vault.touch()

    def _on_lock(self, reason: LockReason) -> None:
        m, self.messenger = self.messenger, None
        if m is not None:
            task = asyncio.ensure_future(self._drop(m))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        self._emit("locked", {"reason": reason.name.lower()})

    async def _drop(self, m: Messenger) -> None:
        await m.stop()
        m.core = None  # the MLS state, including private keys, goes with it

    async def rpc_panic(self, _params: dict[str, Any]) -> dict[str, Any]:
        m, self.messenger = self.messenger, None
        cleanup = m.server_cleanup() if m is not None else None
        if m is not None:
            await m.stop()
            m.core = None
        vault = await self._vault()
        report = await vault.panic(cleanup)
        self.vault = None
        self._pending = None
        return {"complete": report.complete, "errors": list(report.errors)}

    async def shutdown(self) -> None:
        """For a hand-over to another tab: finish what is in progress, stop, drop the
        keys; every later request is refused."""
        async with self._busy:
            self._closed = True
            pending = list(self._sending)
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            m, self.messenger = self.messenger, None
            if m is not None:
                await m.stop()
                m.core = None
            if self.vault is not None:
                self.vault.close()

    # -- reading ----------------------------------------------------------------------------
    def _verified(self, m: Messenger, users: set[str]) -> dict[str, bool]:
        return {u: m.trust.is_verified(u) for u in sorted(users) if u != m.user_id}

    def _summary(self, conv: Conversation) -> dict[str, Any]:
        return self._m().summary_of(conv)

    def _snapshot(self, m: Messenger) -> dict[str, Any]:
        return {"me": {"user": m.user_id, "device": m.device_id, "identity": m.identity},
                "status": m.status,
                "conversations": [self._summary(c) for c in m.conversations.values()]}

    async def rpc_snapshot(self, _params: dict[str, Any]) -> dict[str, Any]:
        return self._snapshot(self._m())

    async def rpc_open(self, params: dict[str, Any]) -> dict[str, Any]:
        """A conversation's latest page of lines, its members and trust state."""
        m = self._m()
        conv = self._conv(params)
        limit = min(int(params.get("limit") or PAGE), MAX_PAGE)
        m.mark_read(conv.group_id)
        lines = conv.messages[-limit:]
        members = m.members(conv.group_id)
        senders = {x.user or user_of(x.sender) for x in lines if x.sender} | {
            user_of(i) for i in members}
        return {**self._summary(conv), "messages": [_message(x) for x in lines],
                "has_older": len(lines) < len(conv.messages) or conv.has_older,
                "members": members, "verified": self._verified(m, senders),
                "epoch": m.core_.epoch(conv.group_id) if m.core_.has_group(conv.group_id)
                else None}

    async def rpc_older(self, params: dict[str, Any]) -> dict[str, Any]:
        """The page of lines before the line ``before`` (a local id)."""
        m = self._m()
        conv = self._conv(params)
        before = _param(params, "before")
        limit = min(int(params.get("limit") or PAGE), MAX_PAGE)
        end = next((i for i, x in enumerate(conv.messages) if x.local_id == before), None)
        if end is None:
            raise RpcError("not-found", "That line is not in this conversation.")
        if end == 0:  # the start of the loaded window: read the page before it
            lines = await m.load_older(conv.group_id, limit)
            more = conv.has_older
        else:
            lines = conv.messages[max(0, end - limit):end]
            more = end - len(lines) > 0 or conv.has_older
        senders = {x.user or user_of(x.sender) for x in lines if x.sender}
        return {"messages": [_message(x) for x in lines], "has_older": more,
                "verified": self._verified(m, senders)}

    async def rpc_mark_read(self, params: dict[str, Any]) -> None:
        self._m().mark_read(self._conv(params).group_id)

    async def rpc_members(self, params: dict[str, Any]) -> dict[str, Any]:
        m = self._m()
        conv = self._conv(params)
        rows = []
        for ident in m.members(conv.group_id):
            user = user_of(ident)
            rows.append({"identity": ident, "user": user, "me": ident == m.identity,
                         "mine": user == m.user_id, "verified": m.trust.is_verified(user)})
        return {"name": conv.name, "active": conv.active, "members": rows}

    # -- sending ------------------------------------------------------------------------------
    def _key_changes(self, m: Messenger, conv: Conversation) -> list[str]:
        users = {user_of(i) for i in m.members(conv.group_id)} - {m.user_id}
        return sorted(u for u in users if m.trust.needs_warning(u))

    async def rpc_key_changes(self, params: dict[str, Any]) -> dict[str, Any]:
        """The verified contacts of a conversation whose keys changed since (send
        only after the user saw the warning)."""
        m = self._m()
        return {"users": self._key_changes(m, self._conv(params))}

    async def rpc_acknowledge(self, params: dict[str, Any]) -> None:
        m = self._m()
        for u in _param(params, "users", list):
            m.trust.acknowledge_change(str(u))

    async def rpc_send(self, params: dict[str, Any]) -> dict[str, Any]:
        """Send a text; the line appears at once ("sending") through a ``message``
        event and changes state through ``message-state`` events.

        With ``check_keys``, nothing is sent if a verified contact in the conversation
        changed keys: the answer is ``{"state": "unsent", "key_changes": [users]}``
        (the UI warns, and sends again once the user acknowledged). The check and
        the send are one request: no round trip between them on every message, and
        no change can slip in between."""
        m = self._m()
        conv = self._conv(params)
        text = _param(params, "text").strip()
        if not text:
            raise RpcError("bad-request", "Nothing to send.")
        if len(text) > 20_000:
            raise RpcError("bad-request", "The message is too long (at most 20,000 "
                                          "characters).")
        if params.get("check_keys") and (changed := self._key_changes(m, conv)):
            return {"state": "unsent", "key_changes": changed}
        return await self._send(m, conv, text)

    async def _tracked(self, aw: Awaitable[ChatMessage]) -> dict[str, Any]:
        """A send or retry, which a hand-over waits for."""
        task = asyncio.ensure_future(aw)
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        msg = await task
        return {"state": msg.state, "local_id": msg.local_id, "reason": msg.reason}

    async def _send(self, m: Messenger, conv: Conversation, text: str) -> dict[str, Any]:
        # The line is shown at once ("sending"); its state follows as events.
        return await self._tracked(m.send_text(conv.group_id, text))

    async def rpc_retry(self, params: dict[str, Any]) -> dict[str, Any]:
        """Send a failed line again (the same line: the server never gets two)."""
        m = self._m()
        conv = self._conv(params)
        return await self._tracked(m.retry(conv.group_id, _param(params, "local_id")))

    # -- conversations and members ---------------------------------------------------------
    async def rpc_create(self, params: dict[str, Any]) -> dict[str, Any]:
        m = self._m()
        name = str(params.get("name") or "").strip()[:100] or "Conversation"
        users = [str(u).strip() for u in params.get("members") or [] if str(u).strip()]
        suite = params.get("suite")
        if suite is not None and (not isinstance(suite, int) or isinstance(suite, bool)):
            raise RpcError("bad-request", "suite is not a number")
        async with self._busy:
            conv = await m.create_conversation(name, [], suite=suite)
            report = await self._add(m, conv, users) if users else None
        return {"conversation": conv.id, "report": report}

    async def _add(self, m: Messenger, conv: Conversation, users: list[str]) -> dict[str, Any]:
        """Add users (all their devices); what happened, per user, in words."""
        try:
            report = await m.add_members(conv.group_id, users)
        except MessengerError as e:
            if e.code == "not_added":  # nothing could be added: the summary says why
                return {"summary": str(e), "added": [], "failed": True}
            raise
        return {**report.to_json(), "failed": False}

    async def rpc_add(self, params: dict[str, Any]) -> dict[str, Any]:
        m = self._m()
        conv = self._conv(params)
        users = [str(u).strip() for u in _param(params, "users", list) if str(u).strip()]
        if not users:
            raise RpcError("bad-request", "Name someone to add.", field="add-member")
        async with self._busy:
            return {"report": await self._add(m, conv, users)}

    async def rpc_remove(self, params: dict[str, Any]) -> None:
        m = self._m()
        conv = self._conv(params)
        async with self._busy:
            await m.remove_member(conv.group_id, _param(params, "user"))

    async def rpc_leave(self, params: dict[str, Any]) -> None:
        m = self._m()
        conv = self._conv(params)
        async with self._busy:
            await m.leave(conv.group_id)

    # -- trust ---------------------------------------------------------------------------------
    async def rpc_refresh_trust(self, params: dict[str, Any]) -> None:
        await self._m().refresh_trust(self._conv(params).group_id)

    async def rpc_my_key(self, _params: dict[str, Any]) -> dict[str, Any]:
        """This device's identity and fingerprint, and every device of this user."""
        m = self._m()
        devices = [{"device": str(d["device_id"]), "name": str(d.get("name") or ""),
                    "current": bool(d.get("current")), "retired": bool(d.get("retired")),
                    "fingerprint": group_hex(identity_fingerprint(
                        base64.b64decode(d["signature_key"])))
                    if d.get("signature_key") else ""}
                   for d in await m.devices()]
        return {"identity": m.identity, "devices": devices,
                "fingerprint": group_hex(identity_fingerprint(m.core_.signature_public_key))}

    async def rpc_retire_device(self, params: dict[str, Any]) -> None:
        """Retire another device of this user (lost, or wiped elsewhere): the other
        members remove it from every conversation."""
        m = self._m()
        async with self._busy:
            try:
                await m.retire_device(_param(params, "device"), _param(params, "password"))
            except MessengerError as e:
                if e.status in (401, 403):
                    raise RpcError("refused", "Wrong account password.", field="password",
                                   status=e.status) from None
                raise

    async def rpc_verify(self, params: dict[str, Any]) -> dict[str, Any]:
        m = self._m()
        user = _param(params, "user")
        sn = await m.safety_number_with(user)
        theirs = await m.directory(user)
        return {
            "user": user, "groups": list(sn.groups),
            "qr": base64.b64encode(sn.qr_payload()).decode(),
            "mine": group_hex(identity_fingerprint(m.core_.signature_public_key)),
            "devices": [[f"{user}/{d}", group_hex(identity_fingerprint(k))]
                        for d, k in sorted(theirs.items())],
            "verified": m.trust.is_verified(user),
        }

    async def rpc_compare(self, params: dict[str, Any]) -> dict[str, Any]:
        m = self._m()
        sn = await m.safety_number_with(_param(params, "user"))
        try:
            scanned = base64.b64decode(_param(params, "code").strip(), validate=True)
        except (ValueError, binascii.Error):
            return {"match": False}
        return {"match": sn.matches_scanned(scanned)}

    async def rpc_set_verified(self, params: dict[str, Any]) -> dict[str, Any]:
        m = self._m()
        user = _param(params, "user")
        if _param(params, "verified", bool):
            await m.mark_verified(user)
        else:
            await m.unverify(user)
        return {"verified": m.trust.is_verified(user)}

    async def rpc_group_code(self, params: dict[str, Any]) -> dict[str, Any]:
        m = self._m()
        conv = self._conv(params)
        if not m.core_.has_group(conv.group_id):
            raise RpcError("not-found", "You are not in this conversation any more.")
        return {"code": m.group_code(conv.group_id), "epoch": m.core_.epoch(conv.group_id),
                "suite_label": m.summary_of(conv)["suite_label"]}

    # -- events ---------------------------------------------------------------------------------
    def _forward(self, kind: str, data: dict[str, Any]) -> None:
        m = self.messenger
        if kind == "message" and m is not None:
            user = user_of(str(data["message"].get("sender") or ""))
            if user and user != m.user_id:
                data = {**data, "verified": m.trust.is_verified(user)}
        elif kind == "trust" and m is not None:
            data = {**data, "verified": m.trust.is_verified(str(data.get("user")))}
        self._emit(kind, data)

