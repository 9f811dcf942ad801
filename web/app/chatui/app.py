"""The chat's screens.

``document.body.dataset.state`` / ``.screen`` (for tests and people): ``loading``;
``standby/standby`` (another tab holds this device); ``locked/welcome``,
``locked/setup`` (first run), ``locked/unlock``, ``locked/relogin``; ``ready/chat``;
``locked/wiped`` (after a panic); ``error/...``.

The UI keeps only what it shows: the conversation list and the lines on screen. The
core in the worker holds the rest and is asked (:func:`rpc.call`) or tells
(events from ``core_js.listen``).
"""

import json

import core_js
import dom_js

from . import passwords
from .dom import (
    action,
    announce,
    append,
    busy,
    close_dialog,
    h,
    open_dialog,
    prepend,
    render,
    replace,
    set_state,
    show_error,
    spawn,
)
from .rpc import CoreError, call
from .strength import estimate

PAGE = 50


def user_of(identity):
    return identity.rpartition("/")[0]


def field(label, name, type_="text", autocomplete="off", value="", hint=None, extra=None):
    """A labelled input; ``autocomplete`` is off unless the browser must fill it (the
    username and password managers)."""
    attrs = {"id": "f-" + name, "name": name, "type": type_, "autocomplete": autocomplete,
             "value": value, "required": True, "spellcheck": "false"}
    attrs.update(extra or {})
    return h("div", {"class": "field"},
             h("label", {"for": "f-" + name}, label), h("input", attrs), hint)


# The cipher suites a new conversation can use (docs/pq.md); the first is the default.
SUITE_CHOICES = (
    (0x004F, "Post-quantum: X25519 + ML-KEM-768 (recommended)"),
    (0x0001, "Classic: X25519 only (for apps without post-quantum support)"),
)


def suite_select():
    """The encryption choice of the new-conversation dialog."""
    options = [h("option", {"value": str(v), "selected": i == 0}, label)
               for i, (v, label) in enumerate(SUITE_CHOICES)]
    return h("div", {"class": "field"},
             h("label", {"for": "f-conv-suite"}, "Encryption"),
             h("select", {"id": "f-conv-suite", "name": "conv-suite"}, options),
             h("p", {"class": "muted"}, "Post-quantum key exchange protects today's messages "
                                       "against future quantum computers."))


def error_line(eid, text=""):
    return h("p", {"class": "error", "id": eid, "role": "alert", "hidden": not text}, text)


class ChatApp:
    def __init__(self):
        self.phase = "waiting"
        self.vault = None  # whether a vault exists (from the core's "owner" phase)
        self.screen = ""
        self.me = None
        self.convs = {}
        self.status = "offline"
        self.current = None
        self.view = None  # the open conversation: has_older, first, members, verified...
        self.lines = {}
        self.account = None  # (mode, username, password) between the two first-run steps
        self.restarted = False
        self.tz = dom_js.tz_offset_minutes() * 60
        self._sidebar_due = False
        # Lines of the open conversation received in this batch, not yet on screen.
        self._incoming = []
        for name in dir(ChatApp):
            if name.startswith("on_") and name not in ("on_event", "on_events"):
                action(name[3:].replace("_", "-"))(getattr(self, name))

    # -- core life ------------------------------------------------------------------------
    def on_events(self, text):
        """A batch of the core's events, in order (web/js/app_boot.mjs sends at most one
        batch per frame). New lines of the open conversation are gathered and drawn
        together (:meth:`flush_lines`) before any other event and at the end, and the
        sidebar once: a burst costs one layout read, one DOM append, one mark-read."""
        try:
            for ev in json.loads(text):
                kind, data = ev.get("event"), ev.get("data") or {}
                if kind != "message":
                    self.flush_lines()
                handler = getattr(self, "ev_" + kind.replace("-", "_"), None)
                if handler is not None:
                    try:
                        handler(data)
                    except Exception as e:  # noqa: BLE001 - one bad event, not the batch
                        print("UI event failed:", kind, repr(e))
        finally:
            self.flush_lines()
            if self._sidebar_due:
                self.render_sidebar()

    def ev_core(self, data):
        phase = data.get("phase")
        self.phase = phase
        if phase == "standby":
            busy("")
            self.show_standby()
        elif phase == "owner":
            busy("")
            self.vault = data.get("vault")
            message = ""
            if self.restarted:
                message = "The secure core stopped and was restarted. Unlock again."
                self.restarted = False
            if self.vault:
                self.show_unlock(message)
            else:
                self.show_welcome("register")
        elif phase == "releasing":
            core_js.clear_drafts()
            close_dialog()
            busy("Handing over to the other tab…")
        elif phase == "released":
            self.reset()
            busy("")
            self.show_standby(handed=True)
        elif phase == "stopped":
            self.reset()
            self.restarted = True
            busy("")
            self.show_message("stopped", "Restarting…",
                              "The secure core stopped unexpectedly. It is restarting; "
                              "nothing was lost.")
        elif phase == "failed":
            busy("")
            self.show_message("failed", "Could not start",
                              data.get("message") or "The secure core did not start.",
                              state="error", reload=True)

    def reset(self):
        core_js.clear_drafts()
        close_dialog()
        self.me = None
        self.convs = {}
        self.current = None
        self.view = None
        self.lines = {}
        self._incoming = []

    def show_message(self, screen, title, text, state="locked", reload=False):
        set_state(state, screen)
        self.screen = screen
        render("#app", h("div", {"class": "card", "id": screen + "-card"},
                         h("h1", {}, title), h("p", {}, text),
                         h("button", {"type": "button", "class": "primary",
                                      "data-on-click": "reload"}, "Reload")
                         if reload else None))

    def on_reload(self, _arg, _values):
        dom_js.reload()

    # -- one tab at a time --------------------------------------------------------------------
    def show_standby(self, handed=False):
        set_state("standby", "standby")
        self.screen = "standby"
        render("#app", h(
            "div", {"class": "card", "id": "standby-card"},
            h("h1", {}, "This chat is open in another tab"),
            h("p", {}, "Your messages were handed over to the other tab."
              if handed else "Only one tab at a time can hold this device's keys."),
            h("p", {}, "Use it here instead: the other tab finishes what it is doing, "
                       "then hands over."),
            h("button", {"type": "button", "class": "primary", "id": "take-over",
                         "data-on-click": "take-over"}, "Use it here")))
        dom_js.focus("#take-over")

    def on_take_over(self, _arg, _values):
        busy("Waiting for the other tab to hand over…")
        core_js.take_over()

    # -- first run ----------------------------------------------------------------------------
    def show_welcome(self, mode, username="", error=""):
        set_state("locked", "welcome")
        self.screen = "welcome"
        register = mode == "register"
        render("#app", h(
            "form", {"class": "card", "id": "welcome-form", "data-on-submit": "welcome",
                     "data-arg": mode, "aria-labelledby": "w-title", "autocomplete": "off",
                     "novalidate": True},
            h("h1", {"id": "w-title"}, "Create an account" if register else "Sign in"),
            h("p", {}, "End-to-end encrypted group chat. Your keys never leave this device "
                       "unencrypted."),
            field("Username", "username", autocomplete="username", value=username),
            field("Account password", "password", type_="password",
                  autocomplete="new-password" if register else "current-password",
                  hint=h("p", {"class": "hint"}, "At least 8 characters; not a common "
                                                 "password; not containing the username.")
                  if register else None),
            error_line("welcome-error", error),
            h("button", {"type": "submit", "class": "primary"}, "Continue"),
            h("button", {"type": "button", "class": "link", "data-on-click": "welcome-mode",
                         "data-arg": "signin" if register else "register"},
              "I already have an account" if register else "Create a new account")))
        dom_js.focus("#f-username")
        spawn(passwords.load())  # the common-password list, while the user types

    def on_welcome_mode(self, mode, _values):
        self.show_welcome(mode, dom_js.value("#f-username"))

    async def on_welcome(self, mode, values):
        username = (values.get("username") or "").strip()
        password = values.get("password") or ""
        if not username or not password:
            return self.field_error("welcome-error", "#f-username" if not username
                                    else "#f-password", "Enter a username and a password.")
        if mode == "register":
            problem = passwords.username_problem(username)
            if problem:
                return self.field_error("welcome-error", "#f-username", problem)
            problem = await passwords.problem(password, username.lower(), "account password")
            if problem:
                return self.field_error("welcome-error", "#f-password", problem)
        show_error("#welcome-error", "")
        busy("Checking with the server…" if self.phase == "ready"
             else "Starting the secure core…")
        try:
            result = await call("account", mode=mode, username=username, password=password)
        except CoreError as e:
            busy("")
            where = "#f-username" if e.field == "username" else "#f-password"
            return self.field_error("welcome-error", where, e.message)
        busy("")
        self.account = (mode, result.get("username") or username, password)
        self.show_setup()

    def field_error(self, eid, selector, text):
        """An error next to the form, focus on the field; the form keeps its values."""
        show_error("#" + eid, text)
        dom_js.set_attr(selector, "aria-invalid", "true")
        dom_js.focus(selector)

    def show_setup(self):
        set_state("locked", "setup")
        self.screen = "setup"
        render("#app", h(
            "form", {"class": "card", "id": "setup-form", "data-on-submit": "setup",
                     "autocomplete": "off", "novalidate": True},
            h("h1", {}, "Protect this device"),
            h("p", {}, "Choose a vault password. It encrypts everything stored in this "
                       "browser and is never sent anywhere. Use a different one than your "
                       "account password."),
            field("Vault password", "vault", type_="password", autocomplete="new-password",
                  extra={"data-on-input": "vault-strength"},
                  hint=h("div", {"class": "strength", "id": "strength",
                                 "aria-live": "polite"}, "strength: —")),
            field("Repeat the vault password", "vault2", type_="password",
                  autocomplete="new-password"),
            error_line("setup-error"),
            h("button", {"type": "submit", "class": "primary"}, "Create vault"),
            h("button", {"type": "button", "class": "link", "data-on-click": "setup-back"},
              "Back")))
        dom_js.focus("#f-vault")

    def on_setup_back(self, _arg, _values):
        mode, username, _ = self.account or ("register", "", "")
        self.account = None
        self.show_welcome(mode, username)

    def on_vault_strength(self, _arg, values):
        pw = values.get("value") or ""
        _, label = estimate(pw, passwords.is_common(pw))
        dom_js.set_text("#strength", "strength: " + label)

    async def on_setup(self, _arg, values):
        vault_pw, again = values.get("vault") or "", values.get("vault2") or ""
        if self.account is None:
            return self.show_welcome("register")
        _, username, account_pw = self.account
        problem = await passwords.problem(vault_pw, username.lower(), "vault password")
        if problem:
            return self.field_error("setup-error", "#f-vault", problem)
        if vault_pw == account_pw:
            return self.field_error(
                "setup-error", "#f-vault", "Use a different password for the vault than "
                "for your account: the server sees the account password.")
        if vault_pw != again:
            return self.field_error("setup-error", "#f-vault2", "The two vault passwords "
                                    "differ.")
        show_error("#setup-error", "")
        busy("Deriving the vault key and creating your device keys…")
        try:
            snapshot = await call("create_vault", password=vault_pw)
        except CoreError as e:
            busy("")
            return self.field_error("setup-error", "#f-vault", e.message)
        self.account = None
        await self.start_chat(snapshot)

    # -- unlock ------------------------------------------------------------------------------
    def show_unlock(self, message=""):
        set_state("locked", "unlock")
        self.screen = "unlock"
        render("#app", h(
            "form", {"class": "card", "id": "unlock-form", "data-on-submit": "unlock",
                     "novalidate": True},
            h("h1", {}, "Unlock"),
            h("p", {}, "Enter your vault password to open your conversations."),
            field("Vault password", "unlock", type_="password",
                  autocomplete="current-password"),
            error_line("unlock-error", message),
            h("button", {"type": "submit", "class": "primary"}, "Unlock"),
            h("button", {"type": "button", "class": "link danger-link", "id": "forgot",
                         "data-on-click": "confirm-wipe"}, "Forgot it? Wipe this device")))
        dom_js.focus("#f-unlock")

    async def on_unlock(self, _arg, values):
        busy("Unlocking…" if self.phase == "ready" else "Starting the secure core…")
        try:
            result = await call("unlock", password=values.get("unlock") or "")
        except CoreError as e:
            busy("")
            dom_js.set_value("#f-unlock", "")
            return self.field_error("unlock-error", "#f-unlock", e.message)
        if result.get("welcome"):
            busy("")
            return self.show_welcome("signin")
        await self.start_chat(result)

    def show_relogin(self):
        set_state("locked", "relogin")
        self.screen = "relogin"
        render("#app", h(
            "form", {"class": "card", "id": "relogin-form", "data-on-submit": "relogin",
                     "novalidate": True},
            h("h1", {}, "Sign in again"),
            h("p", {}, "Your session expired. Enter your account password."),
            field("Account password", "relogin", type_="password",
                  autocomplete="current-password"),
            error_line("relogin-error"),
            h("button", {"type": "submit", "class": "primary"}, "Sign in")))
        dom_js.focus("#f-relogin")

    async def on_relogin(self, _arg, values):
        busy("Signing in…")
        try:
            result = await call("relogin", password=values.get("relogin") or "")
        except CoreError as e:
            busy("")
            return self.field_error("relogin-error", "#f-relogin", e.message)
        await self.start_chat(result)

    def ev_locked(self, data):
        """The vault locked (button, idle timer, another tab): every key is gone."""
        core_js.clear_drafts()
        close_dialog()
        if self.screen in ("chat", "relogin"):
            self.reset()
            self.show_unlock("Locked." if data.get("reason") != "idle"
                             else "Locked after a while without activity.")

    def on_lock(self, _arg, _values):
        core_js.clear_drafts()
        spawn(call("lock"))

    # -- the chat ----------------------------------------------------------------------------
    async def start_chat(self, snapshot):
        busy("")
        if snapshot.get("relogin"):
            self.me = snapshot.get("me")
            return self.show_relogin()
        self.me = snapshot["me"]
        self.status = snapshot.get("status") or "offline"
        self.convs = {c["conversation"]: c for c in snapshot.get("conversations") or []}
        self.render_shell()
        set_state("ready", "chat")
        self.screen = "chat"

    def render_shell(self):
        panic = h("button", {"id": "panic", "class": "danger hold", "type": "button",
                             "data-on-click": "panic",
                             "aria-label": "Panic: hold for two seconds to wipe this device"},
                  h("span", {"class": "hold-fill", "aria-hidden": "true"}),
                  h("span", {"class": "hold-label"}, "Hold to wipe"))
        top = h("header", {"class": "topbar"},
                h("h1", {"class": "brand"}, "Intellacc"),
                h("span", {"id": "conn", "class": "conn " + self.status, "role": "status"},
                  self.status),
                h("span", {"class": "me"}, self.me["identity"]),
                h("button", {"type": "button", "id": "my-key", "data-on-click": "my-key"},
                  "My key"),
                h("button", {"type": "button", "id": "lock", "data-on-click": "lock"},
                  "Lock now"),
                panic)
        render("#app", h("div", {"class": "shell"}, top,
                         h("aside", {"class": "sidebar", "id": "sidebar",
                                     "aria-label": "Conversations"}),
                         h("main", {"class": "chat", "id": "chat"})))
        self.render_sidebar()
        self.render_empty_chat()

    def render_empty_chat(self):
        render("#chat", h("div", {"class": "empty"},
                          h("p", {}, "Pick a conversation or start a new one.")))

    def render_sidebar(self):
        self._sidebar_due = False
        if self.screen != "chat" and self.me is None:
            return
        items = []
        for c in sorted(self.convs.values(), key=lambda c: c["name"].lower()):
            active = c["conversation"] == self.current
            unread = c.get("unread") or 0
            items.append(h("li", {}, h(
                "button", {"type": "button", "data-on-click": "open",
                           "data-arg": c["conversation"], "data-conv": c["conversation"],
                           "class": "conv" + (" active" if active else "")
                           + ("" if c.get("active", True) else " inactive"),
                           "aria-current": "true" if active else None},
                h("span", {"class": "conv-name"}, c["name"]),
                h("span", {"class": "unread", "aria-label": str(unread) + " unread"},
                  str(unread)) if unread else None)))
        render("#sidebar", [
            h("button", {"type": "button", "id": "new-conv", "class": "primary",
                         "data-on-click": "new-conv"}, "New conversation"),
            h("ul", {"class": "conv-list", "id": "conv-list"}, items)])

    def sidebar_soon(self):
        """Redraw the sidebar once, at the end of the event batch."""
        self._sidebar_due = True

    async def on_open(self, conv_id, _values):
        await self.open_conversation(conv_id)

    async def open_conversation(self, conv_id):
        try:
            data = await call("open", conversation=conv_id, limit=PAGE)
        except CoreError as e:
            return announce(e.message)
        self.current = conv_id
        self.convs[conv_id] = {k: data[k] for k in ("conversation", "name", "unread",
                                                    "active", "count") if k in data}
        self.convs[conv_id]["unread"] = 0
        self.view = data
        self.lines = {m["local_id"]: m for m in data["messages"]}
        self.render_sidebar()
        self.render_chat()
        spawn(self._refresh_trust(conv_id))

    async def _refresh_trust(self, conv_id):
        try:
            await call("refresh_trust", conversation=conv_id)
        except CoreError as e:
            announce("Could not check keys: " + e.message)

    def render_chat(self):
        v = self.view
        conv_id = v["conversation"]
        active = v.get("active", True)
        head = h("div", {"class": "chat-head"},
                 h("h2", {"id": "chat-title"}, v["name"]),
                 h("span", {"class": "suite-badge", "id": "suite-badge",
                            "title": v.get("suite_label") or ""},
                   "Post-quantum" if v.get("post_quantum") else "Classic")
                 if v.get("suite") else None,
                 h("button", {"type": "button", "id": "members-btn", "data-on-click": "members",
                              "data-arg": conv_id}, "Members (" + str(len(v["members"])) + ")"),
                 h("button", {"type": "button", "id": "group-code-btn",
                              "data-on-click": "group-code", "data-arg": conv_id,
                              "disabled": not active}, "Group code"),
                 h("button", {"type": "button", "id": "leave-btn", "data-on-click": "leave",
                              "data-arg": conv_id, "disabled": not active}, "Leave"))
        messages = h("ol", {"class": "messages", "id": "messages", "aria-live": "polite",
                            "aria-label": "Messages", "data-on-top": "older",
                            "tabindex": "0"},
                     self.history_start(v), [self.line(m) for m in v["messages"]])
        composer = h("form", {"class": "composer", "id": "composer", "data-on-submit": "send",
                              "data-arg": conv_id, "autocomplete": "off"},
                     h("label", {"for": "composer-input", "class": "sr-only"}, "Message"),
                     h("textarea", {"id": "composer-input", "name": "text", "rows": "2",
                                    "autocomplete": "off", "spellcheck": "true",
                                    "data-enter-submits": True,
                                    "placeholder": "Write a message" if active
                                    else "You are not in this conversation",
                                    "disabled": not active}),
                     h("button", {"type": "submit", "class": "primary",
                                  "disabled": not active}, "Send"))
        render("#chat", [head, messages, composer])
        dom_js.scroll_bottom("#messages")
        dom_js.focus("#composer-input")

    def history_start(self, v):
        """The top of the list: a button for earlier lines, or where history starts."""
        if v.get("has_older"):
            return h("li", {"class": "history-start", "id": "history-start"},
                     h("button", {"type": "button", "class": "link", "id": "older-btn",
                                  "data-on-click": "older"}, "Show earlier messages"))
        # A device that joined late: the core's first line says where its history
        # starts (corecrypto.messenger.NO_HISTORY).
        return None

    async def on_older(self, _arg, _values):
        v = self.view
        if v is None or not v.get("has_older") or v.get("loading"):
            return
        first = next(iter(v["messages"]), None)
        if first is None:
            return
        v["loading"] = True
        try:
            page = await call("older", conversation=v["conversation"],
                              before=first["local_id"], limit=PAGE)
        except CoreError as e:
            v["loading"] = False
            return announce(e.message)
        v["loading"] = False
        if self.view is not v:
            return
        v["messages"] = page["messages"] + v["messages"]
        v["has_older"] = page["has_older"]
        v["verified"].update(page.get("verified") or {})
        for m in page["messages"]:
            self.lines[m["local_id"]] = m
        dom_js.remove("#history-start")
        prepend("#messages", [self.history_start(v), [self.line(m) for m in page["messages"]]])

    def fmt_time(self, ts):
        t = int(ts) - self.tz
        return f"{(t // 3600) % 24:02d}:{(t // 60) % 60:02d}"

    def badge(self, user):
        if not user or self.me is None or user == self.me["user"]:
            return None
        ok = bool(((self.view or {}).get("verified") or {}).get(user))
        return h("span", {"class": "badge " + ("verified" if ok else "unverified"),
                          "data-user": user,
                          "title": "verified safety number" if ok else "not verified"},
                 "✓ verified" if ok else "unverified")

    def line(self, m):
        if m.get("kind") == "system":
            return h("li", {"class": "msg system", "data-local": m["local_id"],
                            "data-seq": m.get("seq")}, m["text"])
        sender = m.get("sender") or ""
        user = m.get("user") or user_of(sender)
        mine = user == self.me["user"]
        here = sender == self.me["identity"]
        state = m.get("state") if here else None
        meta = [h("span", {"class": "sender"}, "You" if mine else user),
                h("span", {"class": "device-note"}, "from your other device")
                if mine and not here else None,
                self.badge(user), h("time", {}, self.fmt_time(m.get("ts") or 0))]
        if state in ("sending", "sent", "failed"):
            meta.append(h("span", {"class": "state " + state, "data-state": state,
                                   "title": m.get("reason") or None}, state))
            if state == "failed":
                meta.append(h("button", {"type": "button", "class": "link retry",
                                         "data-on-click": "retry",
                                         "data-arg": m["local_id"]}, "Retry"))
        return h("li", {"class": "msg own" if mine else "msg", "data-local": m["local_id"],
                        "data-seq": m.get("seq")},
                 h("div", {"class": "meta"}, meta), h("div", {"class": "text"}, m["text"]))

    # -- sending ------------------------------------------------------------------------------
    async def on_send(self, conv_id, values, confirmed=False):
        text = (values.get("text") or "").strip()
        if not text:
            return
        dom_js.set_value("#composer-input", "")
        try:
            # One request: the worker checks for changed keys of verified contacts and
            # sends nothing if there are any (unless the user already confirmed).
            result = await call("send", conversation=conv_id, text=text,
                                check_keys=not confirmed)
        except CoreError as e:
            return announce("Not sent: " + e.message)
        if result.get("key_changes"):
            dom_js.set_value("#composer-input", text)
            return self.show_key_change_warning(conv_id, result["key_changes"], text)
        if result.get("state") == "failed":
            announce("Not sent: " + (result.get("reason") or "the server refused it"))

    async def on_retry(self, local_id, _values):
        if self.current is None:
            return
        try:
            await call("retry", conversation=self.current, local_id=local_id)
        except CoreError as e:
            announce("Not sent: " + e.message)

    def show_key_change_warning(self, conv_id, users, text):
        self._warned = (conv_id, users, text)
        open_dialog(
            "Safety number changed",
            h("p", {"role": "alert"},
              "The keys of " + ", ".join(users) + " changed since you verified them. This "
              "can mean a new device, or someone intercepting your messages."),
            h("div", {"class": "actions"},
              h("button", {"type": "button", "class": "primary", "data-on-click": "verify",
                           "data-arg": users[0]}, "Verify again"),
              h("button", {"type": "button", "id": "send-anyway",
                           "data-on-click": "send-anyway"}, "Send anyway")))

    async def on_send_anyway(self, _arg, _values):
        conv_id, users, text = self._warned
        close_dialog()
        await call("acknowledge", users=users)
        await self.on_send(conv_id, {"text": text}, confirmed=True)

    # -- events from the core --------------------------------------------------------------
    def ev_connection(self, data):
        self.status = data.get("status") or "offline"
        dom_js.set_text("#conn", self.status)
        dom_js.set_attr("#conn", "class", "conn " + self.status)

    def ev_message(self, data):
        conv_id, m = data["conversation"], data["message"]
        conv = self.convs.get(conv_id)
        if conv is None:
            conv = self.convs[conv_id] = {"conversation": conv_id, "name": "New conversation",
                                          "unread": 0, "active": True}
        if conv_id == self.current and self.view is not None:
            user = m.get("user") or user_of(m.get("sender") or "")
            if "verified" in data:
                self.view["verified"][user] = data["verified"]
            if m["local_id"] in self.lines:
                return
            self.lines[m["local_id"]] = m
            self.view["messages"].append(m)
            self._incoming.append(m)
        elif m.get("kind") != "system" and not m.get("own"):
            conv["unread"] = (conv.get("unread") or 0) + 1
        self.sidebar_soon()

    def flush_lines(self):
        """Shows the gathered lines of the open conversation: one layout read (follow
        the bottom only if it was there, or for an own line), one append, one
        mark-read request."""
        lines = self._incoming
        if not lines:
            return
        self._incoming = []
        if self.view is None or self.current is None:
            return
        follow = dom_js.near_bottom("#messages")
        append("#messages", [self.line(m) for m in lines])
        me = self.me["identity"]
        if follow or any(m.get("sender") == me for m in lines):
            dom_js.scroll_bottom("#messages")
        core_js.call("mark_read", json.dumps({"conversation": self.current}))

    def ev_message_state(self, data):
        m = self.lines.get(data["local_id"])
        if m is None or data["conversation"] != self.current:
            return
        m["state"] = data["state"]
        for k in ("seq", "reason"):
            if k in data:
                m[k] = data[k]
        replace('#messages [data-local="' + data["local_id"] + '"]', self.line(m))

    def ev_conversation(self, data):
        conv_id = data["conversation"]
        conv = self.convs.setdefault(conv_id, {"conversation": conv_id, "unread": 0,
                                               "active": True})
        for k in ("name", "active", "unread", "joined_late"):
            if k in data:
                conv[k] = data[k]
        if conv_id == self.current:
            conv["unread"] = 0
        conv.setdefault("name", "New conversation")
        self.sidebar_soon()
        if conv_id == self.current:
            spawn(self.open_conversation(conv_id))

    def ev_device(self, data):
        event = data.get("event")
        if event == "joined":
            announce("This device joined a conversation of yours.")
        elif event == "join-failed":
            announce("This device could not join a conversation: " + (data.get("detail") or ""))
        elif event == "retired":
            core_js.clear_drafts()
            self.reset()
            self.show_message("retired", "This device was removed",
                              "This device was removed from your account (from another "
                              "device, or by a wipe). Wipe it to set it up again.")

    def ev_members(self, data):
        if data.get("conversation") == self.current and self.view is not None:
            self.view["members"] = data.get("members") or self.view["members"]
            dom_js.set_text("#members-btn", "Members (" + str(len(self.view["members"])) + ")")

    def ev_trust(self, data):
        user = data.get("user")
        ok = bool(data.get("verified"))
        if self.view is not None:
            self.view["verified"][user] = ok
        dom_js.set_attr('.badge[data-user="' + user + '"]', "class",
                        "badge " + ("verified" if ok else "unverified"))
        for_each = '.badge[data-user="' + user + '"]'
        if dom_js.count(for_each):
            for m in list(self.lines.values()):
                if (m.get("user") or user_of(m.get("sender") or "")) == user:
                    replace('#messages [data-local="' + m["local_id"] + '"]', self.line(m))
        if data.get("event") == "key-change":
            announce(user + "'s keys changed.")

    # -- dialogs ------------------------------------------------------------------------------
    def on_new_conv(self, _arg, _values):
        open_dialog("New conversation", h(
            "form", {"id": "new-conv-form", "data-on-submit": "create", "autocomplete": "off"},
            field("Name", "conv-name"),
            field("Members (usernames, comma separated)", "conv-members",
                  extra={"required": False}),
            suite_select(),
            error_line("new-conv-error"),
            h("button", {"type": "submit", "class": "primary"}, "Create")))

    async def on_create(self, _arg, values):
        names = [n.strip() for n in (values.get("conv-members") or "").split(",") if n.strip()]
        busy("Creating the conversation…")
        try:
            result = await call("create", name=(values.get("conv-name") or "").strip(),
                                members=names,
                                suite=int(values.get("conv-suite") or SUITE_CHOICES[0][0]))
        except CoreError as e:
            busy("")
            return show_error("#new-conv-error", e.message)
        busy("")
        report = (result.get("report") or {}).get("summary") or ""
        conv_id = result["conversation"]
        self.convs.setdefault(conv_id, {"conversation": conv_id, "unread": 0, "active": True,
                                        "name": values.get("conv-name") or "Conversation"})
        close_dialog()
        await self.open_conversation(conv_id)
        if report:
            announce(report)

    async def on_members(self, conv_id, _values):
        try:
            data = await call("members", conversation=conv_id)
        except CoreError as e:
            return announce(e.message)
        rows = []
        for r in data["members"]:
            me, user = r["me"], r["user"]
            rows.append(h(
                "li", {"class": "member", "data-identity": r["identity"]},
                h("span", {"class": "ident"}, r["identity"] + (" (you)" if me else "")),
                None if r["mine"] else self.badge(user),
                None if r["mine"] else h("button", {"type": "button", "class": "verify-btn",
                                                    "data-user": user, "data-on-click": "verify",
                                                    "data-arg": user}, "Verify session"),
                None if r["mine"] or not data["active"] else h(
                    "button", {"type": "button", "class": "remove-btn", "data-user": user,
                               "data-on-click": "confirm-remove", "data-arg": user},
                    "Remove")))
        add = h("form", {"id": "add-member-form", "data-on-submit": "add", "data-arg": conv_id,
                         "autocomplete": "off"},
                field("Add a member (username)", "add-member"),
                error_line("add-member-error"),
                h("p", {"id": "add-member-report", "role": "status", "hidden": True}),
                h("button", {"type": "submit", "class": "primary"}, "Add"))
        open_dialog("Members of " + data["name"],
                    h("ul", {"class": "members", "id": "member-list"}, rows),
                    add if data["active"] else None)

    async def on_add(self, conv_id, values):
        user = (values.get("add-member") or "").strip()
        if not user:
            return show_error("#add-member-error", "Enter a username.")
        show_error("#add-member-error", "")
        busy("Adding " + user + "…")
        try:
            result = await call("add", conversation=conv_id, users=[user])
        except CoreError as e:
            busy("")
            return show_error("#add-member-error", e.message)
        busy("")
        report = (result.get("report") or {}).get("summary") or "Nothing to add."
        dom_js.set_value("#f-add-member", "")
        dom_js.show_error("#add-member-report", report)
        announce(report)

    def on_confirm_remove(self, user, _values):
        conv_id = self.current
        self.confirm("Remove " + user + "?",
                     user + " will no longer receive new messages in this conversation.",
                     "Remove " + user, "remove", user)
        self._confirm_conv = conv_id

    def confirm(self, title, text, yes, act, arg):
        open_dialog(title, h("p", {}, text), h(
            "div", {"class": "actions"},
            h("button", {"type": "button", "class": "danger", "id": "confirm-yes",
                         "data-on-click": act, "data-arg": arg}, yes),
            h("button", {"type": "button", "id": "confirm-no",
                         "data-on-click": "close-dialog"}, "Cancel")))
        dom_js.focus("#confirm-no")

    async def on_remove(self, user, _values):
        conv_id = self._confirm_conv
        close_dialog()
        busy("Removing " + user + "…")
        try:
            await call("remove", conversation=conv_id, user=user)
        except CoreError as e:
            announce("Could not remove " + user + ": " + e.message)
        busy("")

    def on_leave(self, conv_id, _values):
        name = (self.convs.get(conv_id) or {}).get("name", "this conversation")
        self.confirm("Leave " + name + "?", "You will no longer receive its messages. "
                     "Someone must add you again to rejoin.", "Leave", "leave-now", conv_id)

    async def on_leave_now(self, conv_id, _values):
        close_dialog()
        try:
            await call("leave", conversation=conv_id)
        except CoreError as e:
            return announce("Could not leave: " + e.message)
        if conv_id == self.current:
            await self.open_conversation(conv_id)

    async def on_my_key(self, _arg, _values):
        try:
            data = await call("my_key")
        except CoreError as e:
            return announce(e.message)
        rows = []
        for d in data.get("devices") or []:
            label = d["device"] + (" (" + d["name"] + ")" if d["name"] else "")
            rows.append(h(
                "li", {"class": "device", "data-device": d["device"]},
                h("span", {"class": "ident"}, label + (" — this device" if d["current"] else "")
                  + (" — removed" if d["retired"] else "")),
                h("code", {}, d["fingerprint"]),
                None if d["current"] or d["retired"] else h(
                    "button", {"type": "button", "class": "retire-btn",
                               "data-on-click": "retire", "data-arg": d["device"]}, "Remove")))
        open_dialog("My key", h("p", {}, "This device: " + data["identity"]),
                    h("p", {"class": "fingerprint", "id": "my-fingerprint"},
                      data["fingerprint"]),
                    h("h3", {}, "Your devices"),
                    h("p", {"class": "hint"}, "Each device has its own keys. A new device "
                                              "joins your conversations by itself; it gets "
                                              "only what is sent after it joined."),
                    h("ul", {"class": "members", "id": "device-list"}, rows))

    def on_retire(self, device, _values):
        open_dialog("Remove device " + device + "?", h(
            "form", {"id": "retire-form", "data-on-submit": "retire-now", "data-arg": device,
                     "novalidate": True},
            h("p", {}, "The device is signed out and removed from every conversation. Use "
                       "this for a lost device."),
            field("Account password", "retire-password", type_="password",
                  autocomplete="current-password"),
            error_line("retire-error"),
            h("div", {"class": "actions"},
              h("button", {"type": "submit", "class": "danger", "id": "confirm-yes"},
                "Remove " + device),
              h("button", {"type": "button", "id": "confirm-no",
                           "data-on-click": "close-dialog"}, "Cancel"))))

    async def on_retire_now(self, device, values):
        try:
            await call("retire_device", device=device,
                       password=values.get("retire-password") or "")
        except CoreError as e:
            return self.field_error("retire-error", "#f-retire-password", e.message)
        close_dialog()
        announce("Device " + device + " was removed.")

    async def on_verify(self, user, _values):
        try:
            data = await call("verify", user=user)
        except CoreError as e:
            return announce("Cannot verify " + user + ": " + e.message)
        verified = data["verified"]
        open_dialog(
            "Verify session with " + user,
            h("p", {}, "Compare these numbers with what your contact sees, in person or over "
                       "a channel you trust."),
            h("div", {"class": "safety-number", "id": "safety-number",
                      "aria-label": "Safety number"},
              [h("span", {"class": "sn-group"}, g) for g in data["groups"]]),
            h("div", {"class": "qr", "role": "img", "aria-label": "QR code of the safety number",
                      "svg": data["qr"]}),
            h("h3", {}, "Your fingerprint"), h("p", {"class": "fingerprint"}, data["mine"]),
            h("h3", {}, user + "'s devices"),
            h("ul", {"class": "devices"},
              [h("li", {}, d + ": ", h("code", {}, fp)) for d, fp in data["devices"]]),
            h("p", {"id": "qr-payload", "class": "payload"}, data["qr"]),
            h("form", {"id": "scan-form", "data-on-submit": "compare", "data-arg": user,
                       "autocomplete": "off"},
              field("Or paste the code shown on their device", "scan"),
              h("button", {"type": "submit"}, "Compare"),
              h("p", {"id": "scan-result", "role": "status"})),
            h("button", {"type": "button", "id": "verify-toggle",
                         "class": "primary" if not verified else None,
                         "data-on-click": "unverify" if verified else "mark-verified",
                         "data-arg": user}, "Unverify" if verified else "Mark as verified"))

    async def on_compare(self, user, values):
        try:
            ok = (await call("compare", user=user, code=values.get("scan") or ""))["match"]
        except CoreError as e:
            ok = False
            announce(e.message)
        dom_js.set_text("#scan-result", "The codes match: this is their session." if ok
                        else "The codes do NOT match.")
        dom_js.set_attr("#scan-result", "class", "match" if ok else "mismatch")

    async def on_mark_verified(self, user, _values):
        await self._set_verified(user, True)

    async def on_unverify(self, user, _values):
        await self._set_verified(user, False)

    async def _set_verified(self, user, verified):
        try:
            await call("set_verified", user=user, verified=verified)
        except CoreError as e:
            return announce(e.message)
        close_dialog()

    async def on_group_code(self, conv_id, _values):
        try:
            data = await call("group_code", conversation=conv_id)
        except CoreError as e:
            return announce(e.message)
        open_dialog("Group code",
                    h("p", {}, "Everyone in this conversation sees the same code in the same "
                               "epoch. Compare it to verify the whole group at once."),
                    h("p", {"class": "group-code", "id": "group-code"}, data["code"]),
                    h("p", {"class": "muted"}, "epoch " + str(data["epoch"])),
                    h("p", {"id": "conv-suite"}, "Encryption: " + data["suite_label"]))

    # -- panic -------------------------------------------------------------------------------
    def on_confirm_wipe(self, _arg, _values):
        open_dialog("Wipe this device",
                    h("p", {}, "This deletes every key, message and setting stored in this "
                               "browser. It cannot be undone."),
                    h("button", {"type": "button", "class": "danger hold", "id": "panic-confirm",
                                 "data-on-click": "panic"},
                      h("span", {"class": "hold-fill", "aria-hidden": "true"}),
                      h("span", {"class": "hold-label"}, "Hold to wipe this device")))

    async def on_panic(self, _arg, _values):
        core_js.clear_drafts()
        close_dialog()
        busy("Wiping this device…")
        try:
            report = await call("panic")
        except CoreError as e:
            report = {"complete": False, "errors": [e.message]}
        problems = json.loads(await core_js.wipe_page())
        self.reset()
        busy("")
        set_state("locked", "wiped")
        self.screen = "wiped"
        complete = report.get("complete") and not problems
        render("#app", h(
            "div", {"class": "card", "id": "wiped-card"},
            h("h1", {}, "This device was wiped"),
            h("p", {}, "Every key, message and setting this browser stored for the chat was "
                       "deleted. The server was asked to delete this device's keys and end "
                       "its session."),
            None if complete else h("p", {"class": "error"},
                                    "Some stored data could not be deleted now: "
                                    + "; ".join(report.get("errors", []) + problems)
                                    + ". Close every tab of this site to finish."),
            h("button", {"type": "button", "class": "primary", "id": "start-again",
                         "data-on-click": "start-again"}, "Set up this device again")))
        announce("This device was wiped.")
        dom_js.focus("#start-again")

    def on_start_again(self, _arg, _values):
        self.show_welcome("signin")


def start():
    app = ChatApp()
    core_js.listen(app.on_events)
    return app
