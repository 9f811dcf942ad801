"""One live instance per device (issue 11 §1): two tabs of one browser profile.

Only the tab holding the device's Web Lock runs the client core; the other offers
"Use it here", and the hand-over waits for the first tab to finish and stop. Messages
sent from either tab all arrive, once, and none is shown as sent when it was not."""

from __future__ import annotations

from typing import Any

from .bot import Bot
from .chat import (
    chromium,
    person,
    select_conversation,
    send,
    sign_up,
    state,
    texts,
    unlock,
    wait,
    wait_state,
)


def own_lines(page: Any) -> list[tuple[str, str]]:
    return list(map(tuple, page.evaluate(
        "[...document.querySelectorAll('#messages li.msg.own')].map(e => "
        "[e.querySelector('.text').textContent, e.querySelector('.state')?.dataset.state])")))


def test_two_tabs_hand_over_and_lose_nothing(app_server: Any) -> None:
    origin = app_server.base_url
    bot = Bot(origin)
    with chromium() as browser:
        alice = person(browser, origin, "alice")
        sign_up(alice, origin)
        tab1 = alice.page
        conv = bot.create("Tabs", [alice.name])
        select_conversation(tab1, "Tabs")
        send(tab1, "tab one, first")

        tab2 = alice.context.new_page()
        alice.watch(tab2)
        tab2.goto(origin + "/")
        wait_state(tab2, "standby/standby")
        assert tab2.locator("#composer-input").count() == 0
        assert state(tab1) == "ready/chat"  # the first tab is untouched
        send(tab1, "tab one, second")

        # Hand over to the second tab: the first one stops before the second starts.
        tab2.click("#take-over")
        wait_state(tab1, "standby/standby")
        assert tab1.locator("#composer-input").count() == 0
        unlock(tab2)
        select_conversation(tab2, "Tabs")
        assert texts(tab2) == ["tab one, first", "tab one, second"]
        send(tab2, "tab two")
        bot.send(conv, ["bot to whichever tab"])
        wait(tab2, lambda: "bot to whichever tab" in texts(tab2), "tab two receives")

        # And back.
        tab1.click("#take-over")
        wait_state(tab2, "standby/standby")
        unlock(tab1)
        select_conversation(tab1, "Tabs")
        wait(tab1, lambda: texts(tab1)[-2:] == ["tab two", "bot to whichever tab"],
             "tab one has what tab two did")
        send(tab1, "tab one, third")

        sent = ["tab one, first", "tab one, second", "tab two", "tab one, third"]
        wait(tab1, lambda: bot.received(conv) == sent, "the bot got every message once")
        # Every line shown as sent was delivered: none is "sent" that the bot lacks.
        shown = own_lines(tab1)
        assert [t for t, s in shown if s == "sent"] == sent, shown
        assert not alice.guard.offsite
        assert not [x for x in alice.logs if x.startswith("pageerror")], alice.logs
    bot.close()


def test_reload_keeps_the_device_in_this_tab(app_server: Any) -> None:
    """A reload is not a second tab: the new page gets the lock the old one held."""
    origin = app_server.base_url
    with chromium() as browser:
        bob = person(browser, origin, "bob")
        sign_up(bob, origin)
        for _ in range(2):
            bob.page.reload()
            unlock(bob.page)
