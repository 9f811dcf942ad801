"""A long conversation opens at its latest page and pages back on demand (scrolling
to the top, or the "Show earlier messages" button), with every line once, in order."""

from __future__ import annotations

from typing import Any

from .bot import Bot
from .chat import all_texts, chromium, person, select_conversation, sign_up, texts, wait

LINES = 170  # pages of 50: three and a bit


def test_paging_back_through_a_long_history(app_server: Any) -> None:
    origin = app_server.base_url
    bot = Bot(origin)
    with chromium() as browser:
        alice = person(browser, origin, "alice")
        sign_up(alice, origin)
        page = alice.page
        conv = bot.create("Long", [alice.name])
        lines = [f"line {i:03d}" for i in range(LINES)]
        bot.send(conv, lines)
        # Opened only once alice's core has every line (else they arrive live).
        unread = "#conv-list button.conv:has-text('Long') .unread"
        wait(page, lambda: page.locator(unread).count() == 1
             and page.inner_text(unread) == str(LINES), "every line received")
        select_conversation(page, "Long")
        wait(page, lambda: texts(page)[-1:] == [lines[-1]], "the latest line")
        shown = texts(page)
        assert shown == lines[-len(shown):] and len(shown) < LINES, len(shown)
        assert page.is_visible("#older-btn")
        # Scrolling to the top loads the page before, keeping the view in place.
        page.eval_on_selector("#messages", "el => { el.scrollTop = 0; }")
        wait(page, lambda: len(texts(page)) > len(shown), "scrolling up loads more")
        assert all_texts(page) == lines
        assert not alice.guard.offsite
    bot.close()


def test_a_burst_into_the_open_conversation(app_server: Any) -> None:
    """A burst is drawn in batches (web/js/app_boot.mjs, ChatApp.on_events): every line
    once and in order, the view follows the bottom only if it was there, the open
    conversation gains no unread count while another one does."""
    origin = app_server.base_url
    bot = Bot(origin)
    with chromium() as browser:
        alice = person(browser, origin, "alice")
        sign_up(alice, origin)
        page = alice.page
        conv = bot.create("Burst", [alice.name])
        other = bot.create("Other", [alice.name])
        select_conversation(page, "Burst")
        first = [f"first {i:02d}" for i in range(5)]
        bot.send(conv, first)
        wait(page, lambda: texts(page)[-1:] == first[-1:], "the first lines")
        burst = [f"burst {i:02d}" for i in range(60)]
        bot.send(conv, burst)
        bot.send(other, ["elsewhere 0", "elsewhere 1", "elsewhere 2"])
        wait(page, lambda: texts(page)[-1:] == burst[-1:], "the burst")
        assert texts(page) == first + burst
        at_bottom = "el => el.scrollHeight - el.scrollTop - el.clientHeight < 80"
        assert page.eval_on_selector("#messages", at_bottom)
        badge = "#conv-list button.conv:has-text('{}') .unread"
        wait(page, lambda: page.locator(badge.format("Other")).count() == 1
             and page.inner_text(badge.format("Other")) == "3", "the other's unread count")
        assert page.locator(badge.format("Burst")).count() == 0
        # Scrolled up (no older page to load): new lines come in below, the view stays.
        page.eval_on_selector("#messages", "el => { el.scrollTop = 0; }")
        later = [f"later {i}" for i in range(5)]
        bot.send(conv, later)
        wait(page, lambda: texts(page)[-1:] == later[-1:], "the later lines")
        assert texts(page) == first + burst + later
        assert page.eval_on_selector("#messages", "el => el.scrollTop") == 0
        assert not page.eval_on_selector("#messages", at_bottom)
        assert not alice.guard.offsite
    bot.close()
