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
