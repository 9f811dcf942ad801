"""End-to-end: people in separate browser contexts use the web chat through the real
delivery service. Each test sets up what it needs (``pytest -k NAME`` runs it alone):
people sign up on first use, and every test makes conversations of its own."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from .chat import (
    VAULT_PASSWORD,
    Person,
    chromium,
    create_conversation,
    ensure_ready,
    open_chat,
    person,
    select_conversation,
    send,
    shot,
    sign_up,
    state,
    stored_everything,
    system_lines,
    texts,
    unlock,
    wait,
    wait_state,
)

ALL_VERIFIED = "els => els.map(e => e.classList.contains('verified'))"


@pytest.fixture(scope="module")
def world(app_server: Any) -> Iterator[dict[str, Any]]:
    origin = app_server.base_url
    with chromium() as browser:
        people = {name: person(browser, origin, name) for name in ("alice", "bob", "carol")}
        yield {"origin": origin, "people": people, "browser": browser}
        for p in people.values():
            assert not p.guard.offsite, f"{p.name} left the origin: {p.guard.offsite}"


def ready(world: dict[str, Any], *names: str) -> list[Person]:
    people = [world["people"][n] for n in names]
    for p in people:
        ensure_ready(p, world["origin"])
    return people


def group(prefix: str) -> str:
    return f"{prefix} {secrets.token_hex(2)}"


def test_first_run_screens(world: dict[str, Any]) -> None:
    dora = person(world["browser"], world["origin"], "dora")
    page = dora.page
    open_chat(page, world["origin"])
    wait_state(page, "locked/welcome")
    shot(page, "01-first-run")
    page.fill("#f-username", dora.name)
    page.fill("#f-password", dora.account_password)
    page.click("#welcome-form button[type=submit]")
    wait_state(page, "locked/setup")
    page.fill("#f-vault", "abc")
    assert "weak" in page.inner_text("#strength")
    page.fill("#f-vault", VAULT_PASSWORD)
    assert "weak" not in page.inner_text("#strength")
    shot(page, "02-vault-setup")
    page.fill("#f-vault2", VAULT_PASSWORD)
    page.click("#setup-form button[type=submit]")
    wait_state(page, "ready/chat")
    shot(page, "03-empty-chat")
    dora.context.close()


def test_group_with_live_messages(world: dict[str, Any]) -> None:
    alice, bob = ready(world, "alice", "bob")
    name = group("Plans")
    alice.page.click("#new-conv")
    alice.page.fill("#f-conv-name", name)
    alice.page.fill("#f-conv-members", bob.name)
    shot(alice.page, "04-new-conversation")
    alice.page.click("#new-conv-form button[type=submit]")
    wait(alice.page, lambda: alice.page.inner_text("#chat-title") == name, "chat opened")
    select_conversation(bob.page, name)
    send(alice.page, "hello bob")
    wait(bob.page, lambda: texts(bob.page) == ["hello bob"], "bob receives live")
    send(bob.page, "hi alice")
    wait(alice.page, lambda: texts(alice.page) == ["hello bob", "hi alice"], "alice receives")
    shot(alice.page, "05-chat")


def test_post_quantum_conversation(world: dict[str, Any]) -> None:
    """A conversation in the hybrid X25519+ML-KEM-768 suite (0x004F) created from the
    dialog, where it is the default; one in suite 1 when chosen; each shows its suite."""
    alice, bob = ready(world, "alice", "bob")
    name = group("Quantum")
    page = alice.page
    page.click("#new-conv")
    assert page.input_value("#f-conv-suite") == str(0x004F)  # the default choice
    page.fill("#f-conv-name", name)
    page.fill("#f-conv-members", bob.name)
    shot(page, "04b-new-conversation-suite")
    page.click("#new-conv-form button[type=submit]")
    wait(page, lambda: page.inner_text("#chat-title") == name, "chat opened")
    select_conversation(bob.page, name)
    for p in (alice, bob):
        assert p.page.inner_text("#suite-badge") == "Post-quantum"
        assert "0x004f" in str(p.page.get_attribute("#suite-badge", "title"))
    send(alice.page, "quantum-safe hello")
    wait(bob.page, lambda: texts(bob.page) == ["quantum-safe hello"], "bob receives")
    send(bob.page, "quantum-safe reply")
    wait(page, lambda: texts(page) == ["quantum-safe hello", "quantum-safe reply"],
         "alice receives")
    codes = []
    for p in (alice, bob):
        p.page.click("#group-code-btn")
        wait(p.page, lambda p=p: p.page.locator("#conv-suite").count() == 1, "suite shown")
        assert p.page.inner_text("#conv-suite") == (
            "Encryption: MLKEM768X25519 (post-quantum), 0x004f")
        codes.append(p.page.inner_text("#group-code"))
        p.page.click(".dialog .close")
    assert codes[0] == codes[1]
    shot(bob.page, "05b-post-quantum-chat")

    classic = group("Classic")
    page.click("#new-conv")
    page.fill("#f-conv-name", classic)
    page.fill("#f-conv-members", bob.name)
    page.select_option("#f-conv-suite", "1")
    page.click("#new-conv-form button[type=submit]")
    wait(page, lambda: page.inner_text("#chat-title") == classic, "chat opened")
    select_conversation(bob.page, classic)
    assert bob.page.inner_text("#suite-badge") == "Classic"
    send(bob.page, "classic hello")
    wait(page, lambda: texts(page) == ["classic hello"], "alice receives")


def test_carol_joins_later_and_bob_is_removed(world: dict[str, Any]) -> None:
    alice, bob, carol = ready(world, "alice", "bob", "carol")
    name = group("Later")
    create_conversation(alice, name, [bob])
    select_conversation(bob.page, name)
    send(alice.page, "before carol")
    alice.page.click("#members-btn")
    alice.page.fill("#f-add-member", carol.name)
    shot(alice.page, "06-members")
    alice.page.click("#add-member-form button[type=submit]")
    # The result is reported in the dialog, not silently.
    wait(alice.page, lambda: alice.page.is_visible("#add-member-report")
         and carol.name in alice.page.inner_text("#add-member-report"), "add reported")
    alice.page.keyboard.press("Escape")
    select_conversation(carol.page, name)
    send(alice.page, "welcome carol")
    wait(carol.page, lambda: texts(carol.page) == ["welcome carol"], "carol sees only new")
    wait(bob.page, lambda: "welcome carol" in texts(bob.page), "bob still a member")
    # alice removes bob, after confirming.
    alice.page.click("#members-btn")
    alice.page.click(f".remove-btn[data-user='{bob.name}']")
    wait(alice.page, lambda: alice.page.is_visible("#confirm-yes"), "confirmation asked")
    alice.page.click("#confirm-yes")
    wait(bob.page, lambda: any("You were removed" in t for t in system_lines(bob.page)),
         "bob removed")
    # carol sends once she has processed the removal (else her message would belong to
    # the epoch bob was still in).
    wait(carol.page, lambda: any(f"removed {bob.name}" in t for t in system_lines(carol.page)),
         "carol saw it")
    send(carol.page, "bob cannot read this")
    send(alice.page, "after the removal")
    wait(alice.page, lambda: "bob cannot read this" in texts(alice.page), "alice receives")
    # bob's stream ends with his removal: nothing after it can reach him.
    assert "bob cannot read this" not in texts(bob.page)
    assert "after the removal" not in texts(bob.page)
    assert bob.page.is_disabled("#composer-input")
    shot(bob.page, "07-removed")


def test_safety_numbers_and_badges(world: dict[str, Any]) -> None:
    alice, carol = ready(world, "alice", "carol")
    name = group("Trust")
    create_conversation(alice, name, [carol])
    select_conversation(carol.page, name)
    send(alice.page, "from alice")
    send(carol.page, "from carol")
    wait(alice.page, lambda: "from carol" in texts(alice.page), "alice has carol's line")
    wait(carol.page, lambda: "from alice" in texts(carol.page), "carol has alice's line")
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
    wait(alice.page, lambda: alice.page.get_attribute("#scan-result", "class") == "match",
         "codes match")
    shot(alice.page, "08-verify")
    carol.page.fill("#f-scan", "bm90IHRoZSBjb2Rl")
    carol.page.click("#scan-form button[type=submit]")
    wait(carol.page, lambda: carol.page.get_attribute("#scan-result", "class") == "mismatch",
         "a wrong code does not match")
    carol.page.fill("#f-scan", alice_code)
    carol.page.click("#scan-form button[type=submit]")
    wait(carol.page, lambda: carol.page.get_attribute("#scan-result", "class") == "match",
         "codes match")
    for me, other in ((alice, carol), (carol, alice)):
        badge = f"#messages .badge[data-user='{other.name}']"
        me.page.click("#verify-toggle")
        wait(me.page, lambda me=me, badge=badge: me.page.locator(badge).count() > 0 and all(
            me.page.eval_on_selector_all(badge, ALL_VERIFIED)), "badge turns verified")
    shot(alice.page, "09-verified-badges")
    alice.page.click("#group-code-btn")
    wait(alice.page, lambda: alice.page.locator("#group-code").count() == 1, "code shown")
    code_a = alice.page.inner_text("#group-code")
    alice.page.click(".dialog .close")
    carol.page.click("#group-code-btn")
    wait(carol.page, lambda: carol.page.locator("#group-code").count() == 1, "code shown")
    assert carol.page.inner_text("#group-code") == code_a
    shot(carol.page, "10-group-code")
    carol.page.click(".dialog .close")


def test_reload_unlock_and_wrong_password(world: dict[str, Any]) -> None:
    alice, carol = ready(world, "alice", "carol")
    name = group("Reload")
    create_conversation(alice, name, [carol])
    send(alice.page, "before the reload")
    before = texts(alice.page)
    alice.page.reload()
    wait_state(alice.page, "locked/unlock")
    alice.page.fill("#f-unlock", "not the password")
    alice.page.click("#unlock-form button[type=submit]")
    wait(alice.page, lambda: alice.page.is_visible("#unlock-error"), "error shown")
    assert "Wrong vault password" in alice.page.inner_text("#unlock-error")
    assert state(alice.page) == "locked/unlock"
    shot(alice.page, "11-unlock-wrong-password")
    unlock(alice.page)
    select_conversation(alice.page, name)
    assert texts(alice.page) == before
    # Still live after the reload.
    select_conversation(carol.page, name)
    send(carol.page, "after your reload")
    wait(alice.page, lambda: texts(alice.page)[-1:] == ["after your reload"], "live again")


def test_nothing_secret_in_browser_storage(world: dict[str, Any]) -> None:
    alice, bob = ready(world, "alice", "bob")
    name = group("Secrets")
    create_conversation(alice, name, [bob])
    secret_text = f"the secret plan {secrets.token_hex(4)}"
    send(alice.page, secret_text)
    select_conversation(bob.page, name)
    wait(bob.page, lambda: secret_text in texts(bob.page), "bob received it")
    for p in (alice, bob):
        dump = stored_everything(p.page)
        blob = json.dumps(dump)
        assert dump["idb"], "the vault's records should be in IndexedDB"
        for secret in (VAULT_PASSWORD, p.account_password, secret_text, name):
            for form in (secret, secret.encode().hex(), secret.encode("utf-16-le").hex()):
                assert form not in blob, f"{secret!r} found in {p.name}'s browser storage"


def test_lock_now(world: dict[str, Any]) -> None:
    (alice,) = ready(world, "alice")
    alice.page.click("#lock")
    wait_state(alice.page, "locked/unlock")
    shot(alice.page, "12-locked")
    unlock(alice.page)


def test_panic_wipes_the_device(world: dict[str, Any]) -> None:
    erin = person(world["browser"], world["origin"], "erin")
    sign_up(erin, world["origin"])
    page = erin.page
    button = page.locator("#panic")
    button.hover()
    page.mouse.down()
    page.wait_for_timeout(500)
    page.mouse.up()  # released early: nothing happens
    wait(page, lambda: not page.locator("#panic.holding").count(), "hold cancelled")
    assert state(page) == "ready/chat"
    page.mouse.down()
    wait_state(page, "locked/wiped", timeout=60)
    page.mouse.up()
    assert "This device was wiped" in page.inner_text("#app")
    shot(page, "13-after-panic")
    left = page.evaluate("""async () => ({
        dbs: (await indexedDB.databases()).map(d => d.name),
        local: localStorage.length, session: sessionStorage.length,
        caches: (await caches.keys()).length,
        workers: (await navigator.serviceWorker.getRegistrations()).length })""")
    assert left == {"dbs": [], "local": 0, "session": 0, "caches": 0, "workers": 0}
    page.click("#start-again")
    wait_state(page, "locked/welcome")
    erin.context.close()


def test_phone_width_and_pages_stay_on_origin(world: dict[str, Any]) -> None:
    alice, bob = ready(world, "alice", "bob")
    name = group("Phone")
    create_conversation(alice, name, [bob])
    alice.page.set_viewport_size({"width": 390, "height": 800})
    assert alice.page.is_visible("#composer-input")
    shot(alice.page, "14-phone")
    alice.page.set_viewport_size({"width": 1100, "height": 720})
    for p in world["people"].values():
        assert not p.guard.offsite, p.guard.offsite
        assert not [x for x in p.logs if x.startswith("pageerror")], p.logs
