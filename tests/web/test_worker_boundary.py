"""The client core's worker can die at any moment (a crash, a reload): what it had
written stays consistent. After a restart the vault unlocks, every message of a burst
that was arriving is there exactly once and in order, and sending still works (the
MLS state was not forked or half-saved)."""

from __future__ import annotations

import threading
from typing import Any

from .bot import Bot
from .chat import (
    all_texts,
    chromium,
    person,
    select_conversation,
    send,
    sign_up,
    texts,
    unlock,
    wait,
    wait_state,
)


def burst(bot: Bot, conv: str, lines: list[str]) -> threading.Thread:
    thread = threading.Thread(target=bot.send, args=(conv, lines), daemon=True)
    thread.start()
    return thread


def test_worker_crash_and_reload_mid_burst(app_server: Any) -> None:
    origin = app_server.base_url
    bot = Bot(origin)
    with chromium() as browser:
        alice = person(browser, origin, "alice")
        sign_up(alice, origin)
        page = alice.page
        conv = bot.create("Burst", [alice.name])
        select_conversation(page, "Burst")

        first = [f"burst one {i:03d}" for i in range(60)]
        sender = burst(bot, conv, first)
        wait(page, lambda: len(texts(page)) >= 10, "the burst is arriving")
        page.evaluate("globalThis.__intellacc.crashCore()")
        wait_state(page, "locked/unlock")
        assert "restarted" in page.inner_text("#unlock-error")
        unlock(page)
        select_conversation(page, "Burst")
        sender.join(300)
        wait(page, lambda: texts(page)[-1:] == first[-1:], "the burst's last line")
        assert all_texts(page) == first, "every line once, in order, after a crash"

        second = [f"burst two {i:03d}" for i in range(60)]
        sender = burst(bot, conv, second)
        wait(page, lambda: len(texts(page)) >= len(first) + 10, "the second burst arrives")
        page.reload()
        unlock(page)
        select_conversation(page, "Burst")
        sender.join(300)
        wait(page, lambda: texts(page)[-1:] == second[-1:], "the burst's last line")
        assert all_texts(page) == first + second, "every line once, in order, after a reload"

        send(page, "still sending after all that")
        wait(page, lambda: bot.received(conv) == ["still sending after all that"],
             "the bot reads it: the group state is intact")
        bot.send(conv, ["and receiving"])
        wait(page, lambda: texts(page)[-1:] == ["and receiving"], "alice reads the bot")
        assert not alice.guard.offsite
    bot.close()
