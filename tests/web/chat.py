"""Driving the web chat in Chromium, for the end-to-end tests and the benchmark.

Everything waits for what the page shows (``data-state``, elements, texts), never for
a fixed time: the suite runs on a busy 2-core machine.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import OriginGuard, launch_chromium
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

VAULT_PASSWORD = "Vault passphrase 7 horses"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@dataclass
class Person:
    name: str
    context: BrowserContext
    page: Page
    guard: OriginGuard
    account_password: str = ""
    logs: list[str] = field(default_factory=list)
    signed_up: bool = False

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda e: self.logs.append(f"pageerror: {e}"))
        page.on("console", lambda m: self.logs.append(f"{m.type}: {m.text}")
                if m.type == "error" else None)


def wait(page: Page, predicate: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            conn = page.evaluate("document.getElementById('conn')?.textContent")
            convs = page.evaluate("document.getElementById('conv-list')?.innerText")
            raise AssertionError(f"timed out waiting for {what}; page state {state(page)}, "
                                 f"connection {conn}, conversations {convs!r}; "
                                 f"{page.evaluate('window.__log || []')}")
        page.wait_for_timeout(50)


def state(page: Page) -> str:
    return str(page.evaluate("document.body.dataset.state + '/' + document.body.dataset.screen"))


def wait_state(page: Page, want: str, timeout: float = 120) -> None:
    wait(page, lambda: state(page).startswith(want), f"state {want}", timeout)


def texts(page: Page) -> list[str]:
    return list(page.evaluate(
        "[...document.querySelectorAll('#messages li.msg:not(.system) .text')]"
        ".map(e => e.textContent)"))


def load_older(page: Page) -> bool:
    """Press "Show earlier messages" if it is there (scrolling may have loaded the
    page already and removed it); wait for the page before. False at the start."""
    before = len(texts(page))
    if not page.evaluate("() => { const b = document.getElementById('older-btn');"
                         " if (b) b.click(); return !!b; }"):
        return False
    wait(page, lambda: len(texts(page)) > before or not page.locator("#older-btn").count(),
         "earlier lines")
    return True


def all_texts(page: Page) -> list[str]:
    """The texts of the open conversation, after loading every earlier page."""
    while load_older(page):
        pass
    return texts(page)


def system_lines(page: Page) -> list[str]:
    return list(page.evaluate(
        "[...document.querySelectorAll('#messages li.system')].map(e => e.textContent)"))


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            yield browser
        finally:
            browser.close()


def person(browser: Browser, origin: str, name: str, suffix: str | None = None, *,
           block: bool = True) -> Person:
    """A user in a browser context of their own. ``block``: requests leaving the origin
    are aborted (else only recorded: for benchmarks, see :class:`OriginGuard`)."""
    ctx = browser.new_context(viewport={"width": 1100, "height": 720})
    guard = OriginGuard(ctx, origin, block=block)
    page = ctx.new_page()
    p = Person(f"{name}{suffix or secrets.token_hex(3)}", ctx, page, guard,
               f"Account pass {name} 2026!")
    p.watch(page)
    return p


def open_chat(page: Page, origin: str) -> None:
    page.goto(origin + "/")
    wait_state(page, "locked/")


def sign_up(p: Person, origin: str, vault_password: str = VAULT_PASSWORD) -> None:
    page = p.page
    open_chat(page, origin)
    wait_state(page, "locked/welcome")
    page.fill("#f-username", p.name)
    page.fill("#f-password", p.account_password)
    page.click("#welcome-form button[type=submit]")
    wait_state(page, "locked/setup")
    page.fill("#f-vault", vault_password)
    page.fill("#f-vault2", vault_password)
    page.click("#setup-form button[type=submit]")
    wait_state(page, "ready/chat")
    p.signed_up = True


def unlock(page: Page, password: str = VAULT_PASSWORD) -> None:
    wait_state(page, "locked/unlock")
    page.fill("#f-unlock", password)
    page.click("#unlock-form button[type=submit]")
    wait_state(page, "ready/chat")


def ensure_ready(p: Person, origin: str) -> None:
    """Signed up and on the chat screen, however the page was left."""
    if not p.signed_up:
        sign_up(p, origin)
        return
    s = state(p.page)
    if s.startswith("ready/chat"):
        return
    if not s.startswith("locked/unlock"):
        open_chat(p.page, origin)
    unlock(p.page)


def has_conversation(page: Page, name: str) -> bool:
    return page.locator(f"#conv-list button.conv:has-text('{name}')").count() > 0


def select_conversation(page: Page, name: str) -> None:
    wait(page, lambda: has_conversation(page, name), f"{name} listed")
    page.click(f"#conv-list button.conv:has-text('{name}')")
    wait(page, lambda: page.locator("#chat-title").count() == 1
         and page.inner_text("#chat-title") == name, f"{name} opened")


def create_conversation(owner: Person, name: str, members: list[Person]) -> None:
    page = owner.page
    page.click("#new-conv")
    page.fill("#f-conv-name", name)
    page.fill("#f-conv-members", ", ".join(m.name for m in members))
    page.click("#new-conv-form button[type=submit]")
    wait(page, lambda: page.locator("#chat-title").count() == 1
         and page.inner_text("#chat-title") == name, "chat opened")
    for m in members:
        wait(m.page, lambda m=m: has_conversation(m.page, name), f"{m.name} sees {name}")


def send(page: Page, text: str) -> None:
    page.fill("#composer-input", text)
    page.press("#composer-input", "Enter")
    wait(page, lambda: page.locator(
        f"#messages li.msg.own:has-text('{text}') .state[data-state='sent']").count() == 1,
         f"{text!r} acknowledged")


def stored_everything(page: Page) -> Any:
    """Every IndexedDB record, localStorage and sessionStorage of the page's origin."""
    return page.evaluate("""async () => {
      const out = {local: JSON.stringify(localStorage), session: JSON.stringify(sessionStorage),
                   idb: []};
      const hex = (u8) => [...u8].map(b => b.toString(16).padStart(2, '0')).join('');
      const ser = (v) => v instanceof ArrayBuffer ? hex(new Uint8Array(v))
          : ArrayBuffer.isView(v) ? hex(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))
          : v && typeof v === 'object' ? JSON.stringify(Object.fromEntries(
              Object.entries(v).map(([k, x]) => [k, ser(x)]))) : String(v);
      for (const {name} of await indexedDB.databases()) {
        const db = await new Promise((ok, ko) => {
          const r = indexedDB.open(name); r.onsuccess = () => ok(r.result); r.onerror = ko; });
        for (const store of db.objectStoreNames) {
          const all = await new Promise((ok, ko) => {
            const r = db.transaction(store).objectStore(store).getAll();
            r.onsuccess = () => ok(r.result); r.onerror = ko; });
          const keys = await new Promise((ok, ko) => {
            const r = db.transaction(store).objectStore(store).getAllKeys();
            r.onsuccess = () => ok(r.result); r.onerror = ko; });
          out.idb.push(name + ':' + store + ':' + keys.map(ser).join(',') + ':'
                       + all.map(ser).join(','));
        }
        db.close();
      }
      return out;
    }""")
