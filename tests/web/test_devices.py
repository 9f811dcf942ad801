"""A user is their devices (issue 11 §2), end to end in Chromium: a second device of
bob joins every conversation by itself, alice wipes her device and comes back, and
adding a user whose devices are partly present adds the rest and says so."""

from __future__ import annotations

from typing import Any

from corecrypto.messenger import Messenger
from corecrypto.transport import MemoryStore
from corecrypto.transport.http import HttpTransport

from .bot import Bot
from .chat import (
    chromium,
    create_conversation,
    ensure_ready,
    person,
    select_conversation,
    send,
    sign_up,
    system_lines,
    texts,
    wait,
    wait_state,
)


def sign_in(p: Any, origin: str, account_password: str) -> None:
    """A new device of an existing account: sign in, then its own vault."""
    page = p.page
    page.goto(origin + "/")
    wait_state(page, "locked/welcome")
    page.click("button[data-on-click='welcome-mode']")
    wait(page, lambda: "Sign in" in page.inner_text("#w-title"), "sign-in form")
    page.fill("#f-username", p.name)
    page.fill("#f-password", account_password)
    page.click("#welcome-form button[type=submit]")
    wait_state(page, "locked/setup")
    page.fill("#f-vault", "Another vault passphrase 42")
    page.fill("#f-vault2", "Another vault passphrase 42")
    page.click("#setup-form button[type=submit]")
    wait_state(page, "ready/chat")
    p.signed_up = True


def test_second_device_joins_every_conversation(app_server: Any) -> None:
    origin = app_server.base_url
    with chromium() as browser:
        alice = person(browser, origin, "alice")
        bob = person(browser, origin, "bob")
        for p in (alice, bob):
            sign_up(p, origin)
        create_conversation(alice, "Work", [bob])
        create_conversation(alice, "Home", [bob])
        send(alice.page, "before the second device")
        bob2 = person(browser, origin, "bob")
        bob2.name = bob.name
        sign_in(bob2, origin, bob.account_password)
        for name in ("Work", "Home"):
            select_conversation(bob2.page, name)
            # MLS gives a new device no history, and the page says so.
            wait(bob2.page, lambda: any("Earlier messages are not available" in t
                                        for t in system_lines(bob2.page)),
                 "where history starts on this device")
            assert "before the second device" not in texts(bob2.page)
        select_conversation(alice.page, "Work")
        send(alice.page, "work, to both of bob")
        select_conversation(bob.page, "Work")
        select_conversation(bob2.page, "Work")
        for page in (bob.page, bob2.page):
            wait(page, lambda page=page: "work, to both of bob" in texts(page), "received")
        send(bob2.page, "from the second device of bob")
        wait(alice.page, lambda: "from the second device of bob" in texts(alice.page),
             "alice got it")
        # Shown as bob on alice's side, as yours (other device) on bob's first device.
        line = "#messages li.msg:has-text('from the second device of bob')"
        assert alice.page.inner_text(f"{line} .sender") == bob.name
        wait(bob.page, lambda: "from the second device of bob" in texts(bob.page), "bob1 got it")
        assert bob.page.inner_text(f"{line} .sender") == "You"
        assert bob.page.locator(f"{line} .device-note").count() == 1


def test_alice_wipes_and_comes_back(app_server: Any) -> None:
    origin = app_server.base_url
    with chromium() as browser:
        alice = person(browser, origin, "alice")
        bob = person(browser, origin, "bob")
        for p in (alice, bob):
            sign_up(p, origin)
        create_conversation(alice, "Again", [bob])
        select_conversation(bob.page, "Again")
        send(alice.page, "before the wipe")
        alice.page.locator("#panic").hover()
        alice.page.mouse.down()
        wait_state(alice.page, "locked/wiped", timeout=60)
        alice.page.mouse.up()
        alice.page.click("#start-again")
        sign_in(alice, origin, alice.account_password)
        select_conversation(alice.page, "Again")
        send(bob.page, "welcome back")
        wait(alice.page, lambda: "welcome back" in texts(alice.page), "alice reads bob again")
        send(alice.page, "i am back")
        wait(bob.page, lambda: "i am back" in texts(bob.page), "bob reads alice again")
        # The wiped device leaves the group with the next commit.
        wait(bob.page, lambda: any("removed" in t for t in system_lines(bob.page)),
             "the wiped device was removed")


def test_adding_a_partly_present_user_adds_the_rest(app_server: Any) -> None:
    origin = app_server.base_url
    with chromium() as browser:
        alice = person(browser, origin, "alice")
        bob = person(browser, origin, "bob")
        for p in (alice, bob):
            sign_up(p, origin)
        create_conversation(alice, "Partly", [bob])
        # A second device of bob that stays away (never syncs, so never joins by itself).
        helper = Bot(origin)
        bob2 = Messenger(HttpTransport(origin), MemoryStore())
        helper.run(lambda: bob2.login_new_device(bob.name, bob.account_password))
        alice.page.click("#members-btn")
        alice.page.fill("#f-add-member", bob.name)
        alice.page.click("#add-member-form button[type=submit]")
        wait(alice.page, lambda: alice.page.is_visible("#add-member-report"), "reported")
        report = alice.page.inner_text("#add-member-report")
        assert "1 more device" in report and bob2.device_id in report, report
        # Adding again: nothing missing, and the page says so rather than nothing.
        alice.page.fill("#f-add-member", bob.name)
        alice.page.click("#add-member-form button[type=submit]")
        wait(alice.page, lambda: "already in this conversation" in alice.page.inner_text(
            "#add-member-report"), "reported as already there")
        ensure_ready(bob, origin)
        helper.close()
