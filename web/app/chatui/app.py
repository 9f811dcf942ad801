"""The chat application: screens, conversations, verification and panic.

Screens and ``document.body.dataset.state``:

* first run (``locked``, screen ``welcome`` then ``setup``): register or sign
  in, then set the vault password that protects this device;
* later visits (``locked``, screen ``unlock``): the vault password;
* the chat (``ready``, screen ``chat``).

Everything the client keeps lives in the vault (IndexedDB, encrypted); the
messaging core is :class:`corecrypto.messenger.Messenger`.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import js  # type: ignore[import-not-found]

from corecrypto.messenger import (
    ChatMessage,
    Messenger,
    MessengerError,
    gid_bytes,
    user_of,
)
from corecrypto.transport import TransportError
from corecrypto.transport.browser import BrowserTransport
from corecrypto.trust import group_hex, identity_fingerprint
from corecrypto.vault import Vault, WrongPasswordError
from corecrypto.vault.browser import open_browser_vault
from mls.errors import MLSError

from .dom import Region, announce, append, by_id, document, h, on, set_state, spawn
from .strength import estimate

IDLE_LOCK_SECONDS = 15 * 60
PANIC_HOLD_SECONDS = 2.0


def _fmt_time(ts: float) -> str:
    return time.strftime("%H:%M", time.localtime(ts))


def _field(label: str, name: str, *, type_: str = "text", autocomplete: str = "off",
           value: str = "", hint: Any = None) -> Any:
    fid = f"f-{name}"
    return h("div", {"class_": "field"},
             h("label", {"for": fid}, label),
             h("input", {"id": fid, "name": name, "type": type_, "autocomplete": autocomplete,
                         "value": value, "required": True, "spellcheck": "false"}),
             hint)


def _value(name: str) -> str:
    el = by_id(f"f-{name}")
    return str(el.value) if el is not None else ""


class ChatApp:
    def __init__(self) -> None:
        self.root = Region(by_id("app"))
        self.modal = Region(by_id("modal"))
        self.vault: Any = None
        self.messenger: Messenger | None = None
        self.current: bytes | None = None
        self.messages_el: Any = None
        self.sidebar: Region | None = None
        self.chat: Region | None = None
        self._panic_task: asyncio.Future[Any] | None = None

    # -- start-up ------------------------------------------------------------------------
    async def boot(self) -> None:
        self.vault = await open_browser_vault(idle_lock_seconds=IDLE_LOCK_SECONDS)
        assert isinstance(self.vault, Vault)
        self.vault.on_lock(lambda *_: spawn(self._locked()))
        for event in ("keydown", "pointerdown"):
            on(document, event, lambda _ev: self.vault.touch() if self.vault else None)
        if await self.vault.exists():
            self.show_unlock()
        else:
            self.show_welcome()

    def busy(self, text: str) -> None:
        """A visible progress indicator (the CSS spinner keeps turning even while
        Argon2id occupies the main thread)."""
        el = by_id("busy")
        el.querySelector(".busy-text").textContent = text
        el.hidden = False

    def idle(self) -> None:
        by_id("busy").hidden = True

    def error(self, where: str, text: str) -> None:
        el = by_id(where)
        if el is not None:
            el.textContent = text
            el.hidden = False
        announce(text)

    # -- first run -------------------------------------------------------------------------
    def show_welcome(self, mode: str = "register") -> None:
        set_state("locked", "welcome")
        with self.root.render() as root:
            other = "signin" if mode == "register" else "register"
            title = "Create an account" if mode == "register" else "Sign in"
            form = h("form", {"class_": "card", "id": "welcome-form", "aria-labelledby": "w-title"},
                     h("h1", {"id": "w-title"}, title),
                     h("p", {}, "End-to-end encrypted group chat. Your keys never leave "
                                "this device unencrypted."),
                     _field("Username", "username", autocomplete="username"),
                     _field("Account password", "password", type_="password",
                            autocomplete="new-password" if mode == "register"
                            else "current-password"),
                     h("p", {"class_": "error", "id": "welcome-error", "role": "alert",
                             "hidden": True}),
                     h("button", {"type": "submit", "class_": "primary"},
                       "Continue"),
                     h("button", {"type": "button", "class_": "link",
                                  "on_click": lambda _e: self.show_welcome(other)},
                       "I already have an account" if mode == "register"
                       else "Create a new account"))
            on(form, "submit", lambda ev: self._welcome_submit(ev, mode))
            append(root, form)
        by_id("f-username").focus()

    def _welcome_submit(self, ev: Any, mode: str) -> None:
        ev.preventDefault()
        username, password = _value("username").strip(), _value("password")
        if not username or not password:
            self.error("welcome-error", "Enter a username and a password.")
            return
        if mode == "register" and len(password) < 8:
            self.error("welcome-error", "The account password needs at least 8 characters.")
            return
        self.show_setup(username, password, mode)

    def show_setup(self, username: str, password: str, mode: str) -> None:
        set_state("locked", "setup")
        with self.root.render() as root:
            meter = h("div", {"class_": "strength", "id": "strength", "aria-live": "polite"},
                      "strength: —")
            form = h("form", {"class_": "card", "id": "setup-form"},
                     h("h1", {}, "Protect this device"),
                     h("p", {}, "Choose a vault password. It encrypts everything stored in "
                                "this browser and is never sent anywhere."),
                     _field("Vault password", "vault", type_="password",
                            autocomplete="new-password", hint=meter),
                     _field("Repeat the vault password", "vault2", type_="password",
                            autocomplete="new-password"),
                     h("p", {"class_": "error", "id": "setup-error", "role": "alert",
                             "hidden": True}),
                     h("button", {"type": "submit", "class_": "primary"}, "Create vault"))
            on(form, "submit", lambda ev: self._setup_submit(ev, username, password, mode))
            append(root, form)
        vault_input = by_id("f-vault")
        on(vault_input, "input", lambda _e: self._show_strength())
        vault_input.focus()

    def _show_strength(self) -> None:
        _, label = estimate(_value("vault"))
        by_id("strength").textContent = f"strength: {label}"

    async def _setup_submit(self, ev: Any, username: str, password: str, mode: str) -> None:
        ev.preventDefault()
        vault_pw, again = _value("vault"), _value("vault2")
        if vault_pw != again:
            self.error("setup-error", "The two vault passwords differ.")
            return
        if len(vault_pw) < 8:
            self.error("setup-error", "The vault password needs at least 8 characters.")
            return
        self.busy("Deriving the vault key (Argon2id)…")
        await asyncio.sleep(0.05)  # let the indicator paint before the KDF runs
        try:
            await self.vault.create(vault_pw)
            self.busy("Creating your device keys…")
            m = Messenger(BrowserTransport(), self.vault)
            if mode == "register":
                await m.register(username, password)
            await m.login_new_device(username, password)
        except (MessengerError, TransportError, MLSError, ValueError) as e:
            self.idle()
            # Nothing half-made stays behind: the next attempt starts afresh.
            await self.vault.panic(None)
            self.vault = await open_browser_vault(idle_lock_seconds=IDLE_LOCK_SECONDS)
            self.vault.on_lock(lambda *_: spawn(self._locked()))
            self.show_welcome(mode)
            self.error("welcome-error", str(e))
            return
        await self.start(m)

    # -- unlock --------------------------------------------------------------------------------
    def show_unlock(self, message: str = "") -> None:
        set_state("locked", "unlock")
        with self.root.render() as root:
            form = h("form", {"class_": "card", "id": "unlock-form"},
                     h("h1", {}, "Unlock"),
                     h("p", {}, "Enter your vault password to open your conversations."),
                     _field("Vault password", "unlock", type_="password",
                            autocomplete="current-password"),
                     h("p", {"class_": "error", "id": "unlock-error", "role": "alert",
                             "hidden": not message}, message),
                     h("button", {"type": "submit", "class_": "primary"}, "Unlock"),
                     h("button", {"type": "button", "class_": "link danger-link",
                                  "on_click": lambda _e: self.confirm_panic()},
                       "Forgot it? Wipe this device"))
            on(form, "submit", self._unlock_submit)
            append(root, form)
        by_id("f-unlock").focus()

    async def _unlock_submit(self, ev: Any) -> None:
        ev.preventDefault()
        self.busy("Unlocking…")
        await asyncio.sleep(0.05)
        try:
            await self.vault.unlock(_value("unlock"))
        except WrongPasswordError:
            self.idle()
            self.error("unlock-error", "Wrong vault password. Nothing was changed.")
            by_id("f-unlock").value = ""
            by_id("f-unlock").focus()
            return
        m = await Messenger.load(BrowserTransport(), self.vault)
        if m is None:
            self.idle()
            self.show_welcome()
            return
        await self.start(m)

    async def _locked(self) -> None:
        """The vault locked (button, idle timer or another tab): drop every key."""
        m, self.messenger = self.messenger, None
        if m is not None:
            await m.stop()
            m.core = None  # the MLS state, including private keys, goes with it
        self.current = None
        with self.modal.render():
            pass
        if self.vault is not None and await self.vault.exists():
            self.show_unlock("Locked.")

    # -- the chat ---------------------------------------------------------------------------------
    async def start(self, m: Messenger) -> None:
        self.messenger = m
        m.on_event(self.on_event)
        self.busy("Catching up…")
        try:
            await m.sync()
        except MessengerError as e:
            if e.status == 401:
                self.idle()
                self.show_relogin()
                return
            announce(f"Offline: {e}")
        except TransportError as e:
            announce(f"Offline: {e}")
        m.start()
        self.idle()
        self.render_shell()
        set_state("ready", "chat")

    def show_relogin(self) -> None:
        set_state("locked", "relogin")
        with self.root.render() as root:
            form = h("form", {"class_": "card", "id": "relogin-form"},
                     h("h1", {}, "Sign in again"),
                     h("p", {}, "Your session expired. Enter your account password."),
                     _field("Account password", "relogin", type_="password",
                            autocomplete="current-password"),
                     h("p", {"class_": "error", "id": "relogin-error", "role": "alert",
                             "hidden": True}),
                     h("button", {"type": "submit", "class_": "primary"}, "Sign in"))
            on(form, "submit", self._relogin_submit)
            append(root, form)

    async def _relogin_submit(self, ev: Any) -> None:
        ev.preventDefault()
        m = self.messenger
        assert m is not None
        try:
            await m.login_existing_device(m.user_id, _value("relogin"))
        except (MessengerError, TransportError) as e:
            self.error("relogin-error", str(e))
            return
        await self.start(m)

    def render_shell(self) -> None:
        m = self.messenger
        assert m is not None
        with self.root.render() as root:
            panic = h("button", {"id": "panic", "class_": "danger hold", "type": "button",
                                 "aria-label": "Panic: hold for two seconds to wipe this device"},
                      h("span", {"class_": "hold-fill", "aria-hidden": "true"}),
                      h("span", {"class_": "hold-label"}, "Hold to wipe"))
            self._wire_hold(panic)
            top = h("header", {"class_": "topbar"},
                    h("h1", {"class_": "brand"}, "Intellacc"),
                    h("span", {"id": "conn", "class_": f"conn {m.status}", "role": "status"},
                      m.status),
                    h("span", {"class_": "me"}, m.identity),
                    h("button", {"type": "button", "id": "my-key",
                                 "on_click": lambda _e: spawn(self.show_my_key())}, "My key"),
                    h("button", {"type": "button", "id": "lock",
                                 "on_click": lambda _e: self.vault.lock()}, "Lock now"),
                    panic)
            side = h("aside", {"class_": "sidebar", "aria-label": "Conversations"})
            self.sidebar = Region(side)
            main = h("main", {"class_": "chat", "id": "chat"})
            self.chat = Region(main)
            append(root, h("div", {"class_": "shell"}, top, side, main))
        self.render_sidebar()
        self.render_chat()

    def render_sidebar(self) -> None:
        m = self.messenger
        if m is None or self.sidebar is None:
            return
        with self.sidebar.render() as side:
            items = []
            for conv in sorted(m.conversations.values(), key=lambda c: c.name.lower()):
                unread = h("span", {"class_": "unread", "aria-label": f"{conv.unread} unread"},
                           str(conv.unread)) if conv.unread else None
                items.append(h("li", {},
                               h("button", {"type": "button",
                                            "class_": "conv" + (" active"
                                                                if conv.group_id == self.current
                                                                else "")
                                            + ("" if conv.active else " inactive"),
                                            "data-conv": conv.id,
                                            "aria-current": "true"
                                            if conv.group_id == self.current else None,
                                            "on_click": lambda _e, g=conv.group_id:
                                                self.open_conversation(g)},
                                 h("span", {"class_": "conv-name"}, conv.name), unread)))
            append(side,
                   h("button", {"type": "button", "id": "new-conv", "class_": "primary",
                                "on_click": lambda _e: self.show_new_conversation()},
                     "New conversation"),
                   h("ul", {"class_": "conv-list", "id": "conv-list"}, items))

    def open_conversation(self, gid: bytes) -> None:
        self.current = gid
        if self.messenger is not None:
            self.messenger.mark_read(gid)
            spawn(self._refresh_trust(gid))
        self.render_sidebar()
        self.render_chat()
        box = by_id("composer-input")
        if box is not None:
            box.focus()

    async def _refresh_trust(self, gid: bytes) -> None:
        m = self.messenger
        if m is None:
            return
        try:
            await m.refresh_trust(gid)
        except (MessengerError, TransportError) as e:
            announce(f"Could not check keys: {e}")

    def _sender_badge(self, sender: str) -> Any:
        m = self.messenger
        assert m is not None
        user = user_of(sender)
        if user == m.user_id:
            return None
        ok = m.trust.is_verified(user)
        return h("span", {"class_": "badge " + ("verified" if ok else "unverified"),
                          "data-user": user, "title": "verified safety number" if ok
                          else "not verified"},
                 "✓ verified" if ok else "unverified")

    def message_el(self, msg: ChatMessage) -> Any:
        if msg.kind == "system":
            return h("li", {"class_": "msg system", "data-seq": msg.seq}, msg.text)
        who = "You" if msg.own else user_of(msg.sender)
        state = h("span", {"class_": f"state {msg.state}", "data-state": msg.state},
                  msg.state) if msg.own else None
        return h("li", {"class_": "msg own" if msg.own else "msg", "data-seq": msg.seq,
                        "data-local": msg.local_id},
                 h("div", {"class_": "meta"},
                   h("span", {"class_": "sender"}, who), self._sender_badge(msg.sender),
                   h("time", {}, _fmt_time(msg.ts)), state),
                 h("div", {"class_": "text"}, msg.text))

    def render_chat(self) -> None:
        m = self.messenger
        if m is None or self.chat is None:
            return
        conv = m.conversations.get(self.current) if self.current else None
        with self.chat.render() as main:
            if conv is None:
                append(main, h("div", {"class_": "empty"},
                               h("p", {}, "Pick a conversation or start a new one.")))
                self.messages_el = None
                return
            gid = conv.group_id
            head = h("div", {"class_": "chat-head"},
                     h("h2", {"id": "chat-title"}, conv.name),
                     h("button", {"type": "button", "id": "members-btn",
                                  "on_click": lambda _e: spawn(self.show_members(gid))},
                       f"Members ({len(m.members(gid))})"),
                     h("button", {"type": "button", "id": "group-code-btn",
                                  "on_click": lambda _e: self.show_group_code(gid),
                                  "disabled": not conv.active}, "Group code"),
                     h("button", {"type": "button", "id": "leave-btn",
                                  "on_click": lambda _e: spawn(self.leave(gid)),
                                  "disabled": not conv.active}, "Leave"))
            self.messages_el = h("ol", {"class_": "messages", "id": "messages",
                                        "aria-live": "polite", "aria-label": "Messages"},
                                 [self.message_el(x) for x in conv.messages])
            composer = h("form", {"class_": "composer", "id": "composer"},
                         h("label", {"for": "composer-input", "class_": "sr-only"}, "Message"),
                         h("textarea", {"id": "composer-input", "rows": "2",
                                        "placeholder": "Write a message"
                                        if conv.active else "You are not in this conversation",
                                        "disabled": not conv.active}),
                         h("button", {"type": "submit", "class_": "primary",
                                      "disabled": not conv.active}, "Send"))
            on(composer, "submit", lambda ev: self._send(ev, gid))
            on(composer.querySelector("textarea"), "keydown",
               lambda ev: self._composer_key(ev, composer))
            append(main, head, self.messages_el, composer)
        self._scroll()

    def _scroll(self) -> None:
        if self.messages_el is not None:
            self.messages_el.scrollTop = self.messages_el.scrollHeight

    def _composer_key(self, ev: Any, form: Any) -> None:
        if ev.key == "Enter" and not ev.shiftKey:
            ev.preventDefault()
            form.requestSubmit()

    async def _send(self, ev: Any, gid: bytes, *, confirmed: bool = False) -> None:
        ev.preventDefault()
        m = self.messenger
        box = by_id("composer-input")
        if m is None or box is None:
            return
        text = str(box.value).strip()
        if not text:
            return
        if not confirmed:
            changed = [u for u in {user_of(i) for i in m.members(gid)} - {m.user_id}
                       if m.trust.needs_warning(u)]
            if changed:
                self.show_key_change_warning(gid, changed, ev)
                return
        box.value = ""
        try:
            await m.send_text(gid, text)
        except (MessengerError, TransportError, MLSError) as e:
            announce(f"Not sent: {e}")

    # -- events from the messenger ---------------------------------------------------------------
    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        m = self.messenger
        if m is None:
            return
        if kind == "connection":
            el = by_id("conn")
            if el is not None:
                el.textContent = data["status"]
                el.className = f"conn {data['status']}"
        elif kind == "message":
            gid = _gid(data["conversation"])
            if gid == self.current and self.messages_el is not None:
                msg = ChatMessage(**data["message"])
                self.messages_el.appendChild(self.message_el(msg))
                m.mark_read(gid)
                self._scroll()
            self.render_sidebar()
        elif kind == "message-state":
            el = document.querySelector(f'[data-local="{data["local_id"]}"] .state')
            if el is not None:
                el.textContent = data["state"]
                el.dataset.state = data["state"]
                el.className = f"state {data['state']}"
        elif kind in ("conversation", "members"):
            self.render_sidebar()
            if _gid(data["conversation"]) == self.current:
                self.render_chat()
        elif kind == "trust":
            for el in document.querySelectorAll(f'.badge[data-user="{data["user"]}"]'):
                ok = m.trust.is_verified(data["user"])
                el.className = "badge " + ("verified" if ok else "unverified")
                el.textContent = "✓ verified" if ok else "unverified"
            if data.get("event") == "key-change":
                announce(f"{data['user']}'s keys changed.")

    # -- modals ---------------------------------------------------------------------------
    def open_modal(self, title: str, *body: Any) -> None:
        with self.modal.render() as box:
            dialog = h("div", {"class_": "dialog", "role": "dialog", "aria-modal": "true",
                               "aria-labelledby": "modal-title"},
                       h("div", {"class_": "dialog-head"},
                         h("h2", {"id": "modal-title"}, title),
                         h("button", {"type": "button", "class_": "close",
                                      "aria-label": "Close",
                                      "on_click": lambda _e: self.close_modal()},
                         "\u00d7")),  # multiplication sign as the close glyph
                       *body)
            on(dialog, "keydown", lambda ev: self.close_modal() if ev.key == "Escape" else None)
            append(box, h("div", {"class_": "backdrop"}), dialog)
        box.hidden = False
        first = box.querySelector("input, textarea, button.primary, button")
        if first is not None:
            first.focus()

    def close_modal(self) -> None:
        with self.modal.render() as box:
            box.hidden = True

    def show_new_conversation(self) -> None:
        form = h("form", {"id": "new-conv-form"},
                 _field("Name", "conv-name"),
                 _field("Members (usernames, comma separated)", "conv-members"),
                 h("p", {"class_": "error", "id": "new-conv-error", "role": "alert",
                         "hidden": True}),
                 h("button", {"type": "submit", "class_": "primary"}, "Create"))
        on(form, "submit", self._new_conversation_submit)
        self.open_modal("New conversation", form)

    async def _new_conversation_submit(self, ev: Any) -> None:
        ev.preventDefault()
        m = self.messenger
        assert m is not None
        names = [n.strip() for n in _value("conv-members").split(",") if n.strip()]
        self.busy("Creating the conversation…")
        try:
            conv = await m.create_conversation(_value("conv-name").strip() or "Conversation",
                                               names)
        except (MessengerError, TransportError, MLSError) as e:
            self.idle()
            self.error("new-conv-error", str(e))
            return
        self.idle()
        self.close_modal()
        self.open_conversation(conv.group_id)

    async def show_members(self, gid: bytes) -> None:
        m = self.messenger
        assert m is not None
        conv = m.conversations[gid]
        rows = []
        for ident in m.members(gid):
            user = user_of(ident)
            me = user == m.user_id
            rows.append(h("li", {"class_": "member", "data-identity": ident},
                          h("span", {"class_": "ident"}, ident + (" (you)" if me else "")),
                          None if me else self._sender_badge(ident),
                          None if me else h("button", {
                              "type": "button", "class_": "verify-btn", "data-user": user,
                              "on_click": lambda _e, u=user: spawn(self.show_verify(u))},
                              "Verify session"),
                          None if me or not conv.active else h("button", {
                              "type": "button", "class_": "remove-btn", "data-user": user,
                              "on_click": lambda _e, u=user: spawn(self.remove(gid, u))},
                              "Remove")))
        add = h("form", {"id": "add-member-form"},
                _field("Add a member (username)", "add-member"),
                h("p", {"class_": "error", "id": "add-member-error", "role": "alert",
                        "hidden": True}),
                h("button", {"type": "submit", "class_": "primary"}, "Add"))
        on(add, "submit", lambda ev: self._add_submit(ev, gid))
        self.open_modal(f"Members of {conv.name}",
                        h("ul", {"class_": "members", "id": "member-list"}, rows),
                        add if conv.active else None)

    async def _add_submit(self, ev: Any, gid: bytes) -> None:
        ev.preventDefault()
        m = self.messenger
        assert m is not None
        user = _value("add-member").strip()
        self.busy(f"Adding {user}…")
        try:
            await m.add_members(gid, [user])
        except (MessengerError, TransportError, MLSError) as e:
            self.idle()
            self.error("add-member-error", str(e))
            return
        self.idle()
        self.close_modal()
        self.render_chat()

    async def remove(self, gid: bytes, user: str) -> None:
        m = self.messenger
        assert m is not None
        self.busy(f"Removing {user}…")
        try:
            await m.remove_member(gid, user)
        except (MessengerError, TransportError, MLSError) as e:
            announce(f"Could not remove {user}: {e}")
        self.idle()
        self.close_modal()
        self.render_chat()

    async def leave(self, gid: bytes) -> None:
        m = self.messenger
        assert m is not None
        try:
            await m.leave(gid)
        except (MessengerError, TransportError, MLSError) as e:
            announce(f"Could not leave: {e}")
        self.render_sidebar()
        self.render_chat()

    async def show_my_key(self) -> None:
        m = self.messenger
        assert m is not None
        fp = identity_fingerprint(m.core_.signature_public_key)
        self.open_modal("My key",
                        h("p", {}, f"This device: {m.identity}"),
                        h("p", {"class_": "fingerprint", "id": "my-fingerprint"},
                          group_hex(fp)))

    async def show_verify(self, user: str) -> None:
        m = self.messenger
        assert m is not None
        try:
            sn = await m.safety_number_with(user)
            theirs = await m.directory(user)
        except (MessengerError, TransportError) as e:
            announce(f"Cannot verify {user}: {e}")
            return
        verified = m.trust.is_verified(user)
        payload = base64.b64encode(sn.qr_payload()).decode()
        qr = h("div", {"class_": "qr", "role": "img",
                       "aria-label": "QR code of the safety number"})
        qr.innerHTML = js.intellaccQrSvg(payload)
        result = h("p", {"id": "scan-result", "role": "status"})
        scan = h("form", {"id": "scan-form"},
                 _field("Or paste the code shown on their device", "scan"),
                 h("button", {"type": "submit"}, "Compare"), result)

        def compare(ev: Any) -> None:
            ev.preventDefault()
            try:
                ok = sn.matches_scanned(base64.b64decode(_value("scan").strip(), validate=True))
            except ValueError:
                ok = False
            result.textContent = ("The codes match: this is their session." if ok
                                  else "The codes do NOT match.")
            result.className = "match" if ok else "mismatch"

        on(scan, "submit", compare)
        devices = h("ul", {"class_": "devices"},
                    [h("li", {}, f"{user}/{d}: ",
                       h("code", {}, group_hex(identity_fingerprint(k))))
                     for d, k in sorted(theirs.items())])
        action = h("button", {"type": "button", "id": "verify-toggle",
                              "class_": "primary" if not verified else "",
                              "on_click": lambda _e: spawn(self._toggle_verify(user, verified))},
                   "Unverify" if verified else "Mark as verified")
        self.open_modal(
            f"Verify session with {user}",
            h("p", {}, "Compare these numbers with what your contact sees, in person or "
                       "over a channel you trust."),
            h("div", {"class_": "safety-number", "id": "safety-number",
                      "aria-label": "Safety number"},
              [h("span", {"class_": "sn-group"}, g) for g in sn.groups]),
            qr,
            h("h3", {}, "Your fingerprint"),
            h("p", {"class_": "fingerprint"},
              group_hex(identity_fingerprint(m.core_.signature_public_key))),
            h("h3", {}, f"{user}'s devices"), devices,
            h("p", {"id": "qr-payload", "class_": "payload"}, payload),
            scan, action)

    async def _toggle_verify(self, user: str, verified: bool) -> None:
        m = self.messenger
        assert m is not None
        if verified:
            await m.unverify(user)
        else:
            await m.mark_verified(user)
        self.close_modal()
        self.render_chat()

    def show_group_code(self, gid: bytes) -> None:
        m = self.messenger
        assert m is not None
        self.open_modal("Group code",
                        h("p", {}, "Everyone in this conversation sees the same code in the "
                                   "same epoch. Compare it to verify the whole group at once."),
                        h("p", {"class_": "group-code", "id": "group-code"},
                          m.group_code(gid)),
                        h("p", {"class_": "muted"}, f"epoch {m.core_.epoch(gid)}"))

    def show_key_change_warning(self, gid: bytes, users: list[str], ev: Any) -> None:
        m = self.messenger
        assert m is not None

        async def send_anyway(_e: Any) -> None:
            for u in users:
                m.trust.acknowledge_change(u)
            self.close_modal()
            await self._send(ev, gid, confirmed=True)

        self.open_modal(
            "Safety number changed",
            h("p", {"role": "alert"},
              f"The keys of {', '.join(users)} changed since you verified them. "
              "This can mean a new device, or someone intercepting your messages."),
            h("button", {"type": "button", "class_": "primary",
                         "on_click": lambda _e: spawn(self.show_verify(users[0]))},
              "Verify again"),
            h("button", {"type": "button", "id": "send-anyway", "on_click": send_anyway},
              "Send anyway"))

    # -- panic ---------------------------------------------------------------------------------
    def _wire_hold(self, button: Any) -> None:
        """Hold (pointer or Space/Enter) for PANIC_HOLD_SECONDS to wipe."""

        def start(_e: Any) -> None:
            if self._panic_task is None:
                button.classList.add("holding")
                self._panic_task = asyncio.ensure_future(self._hold())

        def cancel(_e: Any) -> None:
            button.classList.remove("holding")
            if self._panic_task is not None:
                self._panic_task.cancel()
                self._panic_task = None

        on(button, "pointerdown", start)
        for event in ("pointerup", "pointerleave", "pointercancel"):
            on(button, event, cancel)
        on(button, "keydown", lambda ev: start(ev) if ev.key in (" ", "Enter")
           and not ev.repeat else None)
        on(button, "keyup", lambda ev: cancel(ev) if ev.key in (" ", "Enter") else None)

    async def _hold(self) -> None:
        try:
            await asyncio.sleep(PANIC_HOLD_SECONDS)
        except asyncio.CancelledError:
            return
        self._panic_task = None
        await self.panic()

    def confirm_panic(self) -> None:
        button = h("button", {"type": "button", "class_": "danger hold", "id": "panic-confirm"},
                   h("span", {"class_": "hold-fill", "aria-hidden": "true"}),
                   h("span", {"class_": "hold-label"}, "Hold to wipe this device"))
        self._wire_hold(button)
        self.open_modal("Wipe this device",
                        h("p", {}, "This deletes every key, message and setting stored in "
                                   "this browser. It cannot be undone."), button)

    async def panic(self) -> None:
        m, self.messenger = self.messenger, None
        cleanup = m.server_cleanup() if m is not None else None
        if m is not None:
            await m.stop()
            m.core = None
        await self.vault.panic(cleanup)
        self.vault = await open_browser_vault(idle_lock_seconds=IDLE_LOCK_SECONDS)
        self.vault.on_lock(lambda *_: spawn(self._locked()))
        self.close_modal()
        self.current = None
        self.show_welcome()
        announce("This device was wiped.")


def _gid(text: str) -> bytes:
    return gid_bytes(text)
