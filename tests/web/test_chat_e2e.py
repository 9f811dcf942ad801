"""End-to-end: three people in separate browser contexts use the web chat
through the real delivery service. The steps run in order and share state."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from harness import OriginGuard, launch_chromium
from playwright.sync_api import BrowserContext, Page, sync_playwright

from .conftest import ARTIFACTS

SUFFIX = secrets.token_hex(3)
VAULT_PASSWORD = "Vault passphrase 7 horses"
ALL_VERIFIED = "els => els.map(e => e.classList.contains('verified'))"


@dataclass
class Person:
    name: str
    context: BrowserContext
    page: Page
    guard: OriginGuard
    account_password: str = ""
    logs: list[str] = field(default_factory=list)


def wait(page: Page, predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            conn = page.evaluate("document.getElementById('conn')?.textContent")
            raise AssertionError(f"timed out waiting for {what}; page state {state(page)}, "
                                 f"connection {conn}; {page.evaluate('window.__log || []')}")
        page.wait_for_timeout(100)


def state(page: Page) -> str:
    return str(page.evaluate("document.body.dataset.state + '/' + document.body.dataset.screen"))


def wait_state(page: Page, want: str, timeout: float = 90) -> None:
    wait(page, lambda: state(page).startswith(want), f"state {want}", timeout)


def texts(page: Page) -> list[str]:
    return list(page.evaluate(
        "[...document.querySelectorAll('#messages li.msg:not(.system) .text')]"
        ".map(e => e.textContent)"))


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


@pytest.fixture(scope="module")
def world(app_server: Any) -> Iterator[dict[str, Any]]:
    origin = app_server.base_url
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        people: dict[str, Person] = {}
        for name in ("alice", "bob", "carol"):
            ctx = browser.new_context(viewport={"width": 1100, "height": 720})
            guard = OriginGuard(ctx, origin)
            page = ctx.new_page()
            p = Person(f"{name}{SUFFIX}", ctx, page, guard, f"Account pass {name} 2026!")
            page.on("pageerror", lambda e, p=p: p.logs.append(f"pageerror: {e}"))
            page.on("console", lambda m, p=p: p.logs.append(f"{m.type}: {m.text}")
                    if m.type == "error" else None)
            people[name] = p
        yield {"origin": origin, "people": people, "browser": browser}
        for p in people.values():
            assert not p.guard.offsite, f"{p.name} left the origin: {p.guard.offsite}"
        browser.close()


def open_chat(p: Person, origin: str) -> None:
    p.page.goto(origin + "/")
    wait_state(p.page, "locked/welcome")


def sign_up(p: Person) -> None:
    page = p.page
    page.fill("#f-username", p.name)
    page.fill("#f-password", p.account_password)
    page.click("#welcome-form button[type=submit]")
    wait_state(page, "locked/setup")
    page.fill("#f-vault", VAULT_PASSWORD)
    page.fill("#f-vault2", VAULT_PASSWORD)
    page.click("#setup-form button[type=submit]")
    wait_state(page, "ready/chat")


def select_conversation(p: Person, name: str) -> None:
    p.page.click(f"#conv-list button.conv:has-text('{name}')")
    wait(p.page, lambda: p.page.inner_text("#chat-title") == name, f"{name} opened")


def send(p: Person, text: str) -> None:
    p.page.fill("#composer-input", text)
    p.page.press("#composer-input", "Enter")
    wait(p.page, lambda: p.page.locator(
        f"#messages li.msg.own:has-text('{text}') .state[data-state='sent']").count() == 1,
         f"{text!r} acknowledged")


def test_first_run_screens(world: dict[str, Any]) -> None:
    people = world["people"]
    alice = people["alice"]
    open_chat(alice, world["origin"])
    shot(alice.page, "01-first-run")
    alice.page.fill("#f-username", alice.name)
    alice.page.fill("#f-password", alice.account_password)
    alice.page.click("#welcome-form button[type=submit]")
    wait_state(alice.page, "locked/setup")
    alice.page.fill("#f-vault", "abc")
    assert "weak" in alice.page.inner_text("#strength")
    alice.page.fill("#f-vault", VAULT_PASSWORD)
    assert "weak" not in alice.page.inner_text("#strength")
    shot(alice.page, "02-vault-setup")
    alice.page.fill("#f-vault2", VAULT_PASSWORD)
    alice.page.click("#setup-form button[type=submit]")
    wait_state(alice.page, "ready/chat")
    for name in ("bob", "carol"):
        open_chat(people[name], world["origin"])
        sign_up(people[name])
    shot(alice.page, "03-empty-chat")


def test_group_with_live_messages(world: dict[str, Any]) -> None:
    alice, bob = world["people"]["alice"], world["people"]["bob"]
    alice.page.click("#new-conv")
    alice.page.fill("#f-conv-name", "Plans")
    alice.page.fill("#f-conv-members", bob.name)
    shot(alice.page, "04-new-conversation")
    alice.page.click("#new-conv-form button[type=submit]")
    wait(alice.page, lambda: alice.page.inner_text("#chat-title") == "Plans", "chat opened")
    wait(bob.page, lambda: bob.page.locator("#conv-list button.conv:has-text('Plans')").count()
         == 1, "bob sees the conversation")
    select_conversation(bob, "Plans")
    send(alice, "hello bob")
    wait(bob.page, lambda: texts(bob.page) == ["hello bob"], "bob receives live")
    send(bob, "hi alice")
    wait(alice.page, lambda: texts(alice.page) == ["hello bob", "hi alice"], "alice receives")
    shot(alice.page, "05-chat")


def test_carol_joins_later_and_bob_is_removed(world: dict[str, Any]) -> None:
    people = world["people"]
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    alice.page.click("#members-btn")
    alice.page.fill("#f-add-member", carol.name)
    shot(alice.page, "06-members")
    alice.page.click("#add-member-form button[type=submit]")
    wait(carol.page, lambda: carol.page.locator(
        "#conv-list button.conv:has-text('Plans')").count() == 1, "carol sees the conversation")
    select_conversation(carol, "Plans")
    send(alice, "welcome carol")
    wait(carol.page, lambda: texts(carol.page) == ["welcome carol"], "carol sees only new")
    wait(bob.page, lambda: "welcome carol" in texts(bob.page), "bob still a member")
    # alice removes bob.
    alice.page.click("#members-btn")
    alice.page.click(f".remove-btn[data-user='{bob.name}']")
    wait(bob.page, lambda: bob.page.locator(
        "#messages li.system:has-text('You were removed')").count() == 1, "bob removed")
    # carol sends once she has processed the removal (else her message would belong to
    # the epoch bob was still in).
    wait(carol.page, lambda: carol.page.locator(
        f"#messages li.system:has-text('removed {bob.name}')").count() == 1, "carol saw it")
    send(carol, "bob cannot read this")
    wait(alice.page, lambda: "bob cannot read this" in texts(alice.page), "alice receives")
    bob.page.wait_for_timeout(1000)
    assert "bob cannot read this" not in texts(bob.page)
    assert bob.page.is_disabled("#composer-input")
    shot(bob.page, "07-removed")


def test_safety_numbers_and_badges(world: dict[str, Any]) -> None:
    people = world["people"]
    alice, carol = people["alice"], people["carol"]
    numbers = {}
    for me, other in ((alice, carol), (carol, alice)):
        me.page.click("#members-btn")
        me.page.click(f".verify-btn[data-user='{other.name}']")
        wait(me.page, lambda me=me: me.page.locator("#safety-number .sn-group").count() == 12,
             "safety number shown")
        numbers[me.name] = me.page.inner_text("#safety-number").split()
        assert me.page.locator(".qr svg").count() == 1
    assert numbers[alice.name] == numbers[carol.name]
    assert all(len(g) == 5 and g.isdigit() for g in numbers[alice.name])
    # Each side checks the other's QR payload, then marks the other verified.
    alice_code = alice.page.inner_text("#qr-payload")
    carol_code = carol.page.inner_text("#qr-payload")
    alice.page.fill("#f-scan", carol_code)
    alice.page.click("#scan-form button[type=submit]")
    assert "match" in alice.page.get_attribute("#scan-result", "class")
    shot(alice.page, "08-verify")
    carol.page.fill("#f-scan", alice_code)
    carol.page.click("#scan-form button[type=submit]")
    assert alice.page.get_attribute("#scan-result", "class") == "match"
    for me, other in ((alice, carol), (carol, alice)):
        badge = f"#messages .badge[data-user='{other.name}']"
        me.page.click("#verify-toggle")
        wait(me.page, lambda me=me, badge=badge: me.page.locator(badge).count() > 0 and all(
            me.page.eval_on_selector_all(badge, ALL_VERIFIED)), "badge turns verified")
    shot(alice.page, "09-verified-badges")
    alice.page.click("#group-code-btn")
    code_a = alice.page.inner_text("#group-code")
    alice.page.click(".dialog .close")
    carol.page.click("#group-code-btn")
    assert carol.page.inner_text("#group-code") == code_a
    shot(carol.page, "10-group-code")
    carol.page.click(".dialog .close")


def test_reload_unlock_and_wrong_password(world: dict[str, Any]) -> None:
    alice = world["people"]["alice"]
    before = texts(alice.page)
    alice.page.reload()
    wait_state(alice.page, "locked/unlock")
    alice.page.fill("#f-unlock", "not the password")
    alice.page.click("#unlock-form button[type=submit]")
    wait(alice.page, lambda: alice.page.is_visible("#unlock-error"), "error shown")
    assert "Wrong vault password" in alice.page.inner_text("#unlock-error")
    assert state(alice.page) == "locked/unlock"
    shot(alice.page, "11-unlock-wrong-password")
    alice.page.fill("#f-unlock", VAULT_PASSWORD)
    alice.page.click("#unlock-form button[type=submit]")
    wait_state(alice.page, "ready/chat")
    select_conversation(alice, "Plans")
    assert texts(alice.page) == before
    # Still live after the reload.
    carol = world["people"]["carol"]
    send(carol, "after your reload")
    wait(alice.page, lambda: texts(alice.page)[-1:] == ["after your reload"], "live again")


def test_nothing_secret_in_browser_storage(world: dict[str, Any]) -> None:
    alice = world["people"]["alice"]
    dump = alice.page.evaluate("""async () => {
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
    blob = json.dumps(dump)
    assert dump["idb"], "the vault's records should be in IndexedDB"
    for secret in (VAULT_PASSWORD, alice.account_password, "hello bob", "welcome carol",
                   "after your reload", "Plans"):
        for form in (secret, secret.encode().hex()):
            assert form not in blob, f"{secret!r} found in browser storage"


def test_lock_now(world: dict[str, Any]) -> None:
    alice = world["people"]["alice"]
    alice.page.click("#lock")
    wait_state(alice.page, "locked/unlock")
    shot(alice.page, "12-locked")
    alice.page.fill("#f-unlock", VAULT_PASSWORD)
    alice.page.click("#unlock-form button[type=submit]")
    wait_state(alice.page, "ready/chat")


def test_panic_wipes_the_device(world: dict[str, Any]) -> None:
    bob = world["people"]["bob"]
    page = bob.page
    button = page.locator("#panic")
    button.hover()
    page.mouse.down()
    page.wait_for_timeout(500)
    page.mouse.up()  # released early: nothing happens
    page.wait_for_timeout(300)
    assert state(page) == "ready/chat"
    page.mouse.down()
    wait_state(page, "locked/welcome", timeout=30)
    page.mouse.up()
    shot(page, "13-after-panic")
    left = page.evaluate("""async () => ({
        dbs: (await indexedDB.databases()).map(d => d.name),
        local: localStorage.length, session: sessionStorage.length,
        caches: (await caches.keys()).length })""")
    assert left == {"dbs": [], "local": 0, "session": 0, "caches": 0}


def test_phone_width_and_pages_stay_on_origin(world: dict[str, Any]) -> None:
    alice = world["people"]["alice"]
    alice.page.set_viewport_size({"width": 390, "height": 800})
    select_conversation(alice, "Plans")
    assert alice.page.is_visible("#composer-input")
    shot(alice.page, "14-phone")
    for p in world["people"].values():
        assert p.guard.requests, f"{p.name} made no requests?"
        assert not p.guard.offsite, p.guard.offsite
        assert not [x for x in p.logs if x.startswith("pageerror")], p.logs
