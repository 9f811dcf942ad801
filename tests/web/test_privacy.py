"""What people type stays out of the browser profile, passwords follow the server's
rules before anything is created, and dialogs behave (issue 11 §4-§6)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from harness import CHROMIUM, CHROMIUM_ARGS, OriginGuard
from playwright.sync_api import sync_playwright

from .chat import (
    VAULT_PASSWORD,
    Person,
    chromium,
    open_chat,
    person,
    sign_up,
    state,
    unlock,
    wait,
    wait_state,
)


def scan(root: Path, needles: dict[str, str]) -> dict[str, list[str]]:
    """Which files under ``root`` hold each needle, in UTF-8 or UTF-16 (either order)."""
    forms = {name: [text.encode(), text.encode("utf-16-le"), text.encode("utf-16-be")]
             for name, text in needles.items()}
    found: dict[str, list[str]] = {name: [] for name in needles}
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        for name, encodings in forms.items():
            if any(f in data for f in encodings):
                found[name].append(str(path.relative_to(root)))
    return found


def test_typed_drafts_never_reach_the_profile(app_server: Any, tmp_path: Path) -> None:
    origin = app_server.base_url
    profile = tmp_path / "profile"
    draft = f"draft-marker-{secrets.token_hex(6)}"
    dialog_draft = f"dialog-marker-{secrets.token_hex(6)}"
    control = f"control-marker-{secrets.token_hex(6)}"
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        guard = OriginGuard(ctx, origin)
        page = ctx.pages[0] if ctx.pages else ctx.new_page()
        alice = Person(f"alice{secrets.token_hex(3)}", ctx, page, guard,
                       "Account pass alice 2026!")
        sign_up(alice, origin)
        page.click("#new-conv")
        page.fill("#f-conv-name", "Notes")
        page.click("#new-conv-form button[type=submit]")
        wait(page, lambda: page.locator("#composer-input").count() == 1, "composer")
        # Typed, never sent: the composer, and a dialog's field.
        page.click("#composer-input")
        page.keyboard.type(draft)
        page.click("#members-btn")
        page.click("#f-add-member")
        page.keyboard.type(dialog_draft)
        # The scan can find what the browser keeps: a value put in localStorage.
        page.evaluate("(v) => localStorage.setItem('control', v)", control)
        # Lock clears the composer too.
        page.keyboard.press("Escape")
        assert page.input_value("#composer-input") == draft
        page.click("#lock")
        wait_state(page, "locked/unlock")
        unlock(page)
        page.click("#conv-list button.conv:has-text('Notes')")
        wait(page, lambda: page.locator("#composer-input").count() == 1, "composer")
        assert page.input_value("#composer-input") == ""
        page.click("#composer-input")
        page.keyboard.type(draft)  # typed again, then the browser is closed
        ctx.close()
    found = scan(profile, {"draft": draft, "dialog": dialog_draft, "control": control})
    assert found["control"], "the scan found nothing it should: it proves nothing"
    assert not found["draft"], f"the composer's draft is on disk: {found['draft']}"
    assert not found["dialog"], f"a dialog's draft is on disk: {found['dialog']}"


def test_passwords_follow_the_server_rules(app_server: Any) -> None:
    origin = app_server.base_url
    with chromium() as browser:
        taken = person(browser, origin, "taken")
        sign_up(taken, origin)
        p = person(browser, origin, "frank")
        page = p.page
        open_chat(page, origin)
        wait_state(page, "locked/welcome")

        def clear(error: str) -> None:
            """Hide the previous answer, so the wait below sees the new one."""
            page.evaluate("(id) => { const e = document.getElementById(id); "
                          "e.textContent = ''; e.hidden = true; }", error)

        def account(username: str, password: str) -> str:
            clear("welcome-error")
            page.fill("#f-username", username)
            page.fill("#f-password", password)
            page.click("#welcome-form button[type=submit]")
            wait(page, lambda: page.is_visible("#welcome-error")
                 or state(page).startswith("locked/setup"), "an answer")
            if state(page).startswith("locked/setup"):
                return ""
            return page.inner_text("#welcome-error")

        # Refused before anything is sent, in plain words; the form keeps what was typed.
        assert "commonly used" in account(p.name, "password")
        assert page.input_value("#f-username") == p.name
        assert page.input_value("#f-password") == "password"
        assert "at least 8" in account(p.name, "short")
        assert "must not contain the username" in account(p.name, f"my {p.name} pass!")
        # The server's own refusal (the username is taken), said plainly, no API path.
        message = account(taken.name, "A fine account password 1")
        assert "taken" in message and "/api/" not in message
        assert page.input_value("#f-username") == taken.name
        # Signing in with a wrong password fails here, before any vault exists.
        page.click("button[data-on-click='welcome-mode']")
        wait(page, lambda: "Sign in" in page.inner_text("#w-title"), "sign-in form")
        message = account(taken.name, "not the password at all")
        assert "Wrong username or password" in message
        assert state(page) == "locked/welcome"
        page.click("button[data-on-click='welcome-mode']")
        wait(page, lambda: "Create" in page.inner_text("#w-title"), "register form")
        assert account(p.name, p.account_password) == ""

        def vault(password: str, again: str | None = None) -> str:
            clear("setup-error")
            page.fill("#f-vault", password)
            page.fill("#f-vault2", password if again is None else again)
            page.click("#setup-form button[type=submit]")
            wait(page, lambda: page.is_visible("#setup-error")
                 or state(page).startswith("ready"), "an answer")
            if state(page).startswith("ready"):
                return ""
            text = page.inner_text("#setup-error")
            assert state(page) == "locked/setup"
            return text

        # The vault password follows the same rules, and is not the account password.
        assert "commonly used" in vault("password")
        assert "commonly used" in vault("Password1")
        assert "at least 8" in vault("abc")
        assert "must not contain the username" in vault(f"{p.name} vault pass")
        assert "different password" in vault(p.account_password)
        assert "differ" in vault(VAULT_PASSWORD, VAULT_PASSWORD + "x")
        assert page.input_value("#f-vault") == VAULT_PASSWORD  # not cleared
        assert vault(VAULT_PASSWORD) == ""
        wait_state(page, "ready/chat")
        assert not p.guard.offsite


def test_dialogs_behave(app_server: Any) -> None:
    origin = app_server.base_url
    with chromium() as browser:
        p = person(browser, origin, "gina")
        sign_up(p, origin)
        page = p.page
        focused = "() => document.activeElement?.id || document.activeElement?.tagName"
        inside = "() => !!document.activeElement?.closest('#dialog')"
        page.focus("#new-conv")
        page.keyboard.press("Enter")
        wait(page, lambda: page.locator("#dialog[open]").count() == 1, "dialog open")
        assert page.evaluate(inside)
        for _ in range(8):  # Tab and Shift+Tab never leave it
            page.keyboard.press("Tab")
            assert page.evaluate(inside), page.evaluate(focused)
        for _ in range(8):
            page.keyboard.press("Shift+Tab")
            assert page.evaluate(inside), page.evaluate(focused)
        page.keyboard.press("Escape")
        wait(page, lambda: page.locator("#dialog").count() == 0, "Escape closes")
        assert page.evaluate(focused) == "new-conv"  # focus went back
        # The backdrop closes it too.
        page.click("#new-conv")
        wait(page, lambda: page.locator("#dialog[open]").count() == 1, "dialog open")
        page.mouse.click(5, 5)
        wait(page, lambda: page.locator("#dialog").count() == 0, "the backdrop closes it")
        assert page.evaluate(focused) == "new-conv"
        # Leaving asks first; Cancel leaves things as they were.
        page.click("#new-conv")
        page.fill("#f-conv-name", "Stay")
        page.click("#new-conv-form button[type=submit]")
        wait(page, lambda: page.locator("#chat-title").count() == 1, "conversation open")
        page.click("#leave-btn")
        wait(page, lambda: page.is_visible("#confirm-no"), "confirmation")
        page.click("#confirm-no")
        wait(page, lambda: page.locator("#dialog").count() == 0, "cancelled")
        assert page.is_enabled("#composer-input")
        page.click("#leave-btn")
        page.click("#confirm-yes")
        wait(page, lambda: page.is_disabled("#composer-input"), "left")
        assert not p.guard.offsite
