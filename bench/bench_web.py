"""The web client in headless Chromium, side by side with the bare-Pyodide floor
(issue 12 §4). Reported, never asserted.

    .venv/bin/python bench/bench_web.py [--runs 5] [--messages 100] [--history 10000]
    .venv/bin/python bench/bench_web.py --only burst [--runs 5] [--messages 100]

``--only burst`` runs just the burst part (one page, ``--runs`` bursts of ``--messages``
into the open conversation; a few minutes instead of 20+).

One run, one server (a real delivery server on a scratch PostgreSQL database), medians
of ``--runs``:

* start: the floor (``floor.html``: the same Pyodide from the same server, then
  ``1 + 1``) and the app, cold (a fresh browser context) and warm (a reload, the
  service worker and caches filled). For the app: the first usable screen (the unlock
  screen, or the first-run form; the client core goes on loading in its worker while
  the user types) and the core ready (Pyodide, mls, corecrypto imported); ratios to
  the floor;
* main-thread long tasks (PerformanceObserver ``longtask``, > 50 ms), how many and
  the longest, during ``--runs`` unlocks, during a burst of ``--messages`` incoming
  messages, and while opening a conversation with ``--history`` messages;
* send-to-display: the Enter keydown on one page to the text on the other (same
  clock), p50 and p99 over ``--messages`` messages;
* vault writes and bytes written per received and per sent message at history 10
  and ``--history`` (counted inside the worker, at IndexedDB);
* the machine's load average before and after (the numbers are only comparable on a
  quiet machine);
* MLS from Python in Pyodide (the self-check page): 1 KiB encrypt/decrypt, add-member
  commits in groups of 10 and 100.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "delivery"))
sys.path.insert(0, str(ROOT / "tests" / "browser"))

import build  # noqa: E402
from ds_harness import Postgres, ServerProcess  # noqa: E402
from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402
from tests.browser.harness import DIST, launch_chromium, serve  # noqa: E402
from tests.web.bot import Bot  # noqa: E402
from tests.web.chat import (  # noqa: E402
    person,
    select_conversation,
    sign_up,
    unlock,
    wait,
    wait_state,
)

GROUP_PY = r"""
import json, time, statistics
from mls.crypto import CipherSuite, default_provider
from mls.group import Group, Signer, create_key_package, join_from_welcome
from mls.proposals import Add

P = default_provider()
CS = CipherSuite(1, P)

def build(n):
    creator = Group.create(P, 1, b"bench-%d" % n, Signer.generate(CS, b"m/0"))
    bundles = [create_key_package(CS, Signer.generate(CS, b"m/%d" % i)) for i in range(1, n)]
    out = creator.commit([Add(b.key_package) for b in bundles])
    creator.merge_pending_commit()
    other = join_from_welcome(P, out.welcome, bundles[-1])
    return creator, other

res = {}
for n in (10, 100):
    creator, other = build(n)
    adds, procs = [], []
    for i in range(3):
        kp = create_key_package(CS, Signer.generate(CS, b"joiner/%d" % i))
        t = time.perf_counter()
        out = creator.commit([Add(kp.key_package)])
        adds.append((time.perf_counter() - t) * 1e3)
        creator.merge_pending_commit()
        t = time.perf_counter()
        other.process(out.commit)
        procs.append((time.perf_counter() - t) * 1e3)
    res[f"add_commit_ms_n{n}"] = statistics.median(adds)
    res[f"add_process_ms_n{n}"] = statistics.median(procs)
creator, other = build(2)
payload = bytes(1024)
cts, t = [], time.perf_counter()
for _ in range(50):
    cts.append(creator.encrypt(payload))
res["encrypt_1KiB_ms"] = (time.perf_counter() - t) * 1e3 / 50
t = time.perf_counter()
for ct in cts:
    other.process(ct)
res["decrypt_1KiB_ms"] = (time.perf_counter() - t) * 1e3 / 50
json.dumps(res)
"""

# Long tasks from the start of the page, and the moment each text first showed.
OBSERVE = """
window.__longtasks = [];
try {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__longtasks.push([e.startTime, e.duration]);
  }).observe({ type: "longtask", buffered: true });
} catch (e) {}
"""
MARK = "(name) => performance.getEntriesByName(name)[0]?.startTime ?? null"


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def percentile(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))] if s else float("nan")


def wait_mark(page: Page, name: str, timeout: float = 180) -> float:
    deadline = time.monotonic() + timeout
    while (t := page.evaluate(MARK, name)) is None:
        if time.monotonic() > deadline:
            sys.exit(f"no performance mark {name}")
        page.wait_for_timeout(20)
    return float(t)


def long_tasks(page: Page, since: float, until: float | None = None) -> list[float]:
    tasks = page.evaluate("window.__longtasks")
    return [d for s, d in tasks if s + d >= since and (until is None or s <= until)]


def last_text(page: Page) -> list[str]:
    """The open conversation's last text line, as ``texts(page)[-1:]`` but without
    copying every line of a long conversation out of the page at each poll."""
    return list(page.evaluate("""() => {
      for (let li = document.getElementById('messages')?.lastElementChild; li;
           li = li.previousElementSibling) {
        const t = li.matches('li.msg:not(.system)') && li.querySelector('.text');
        if (t) return [t.textContent];
      }
      return [];
    }"""))


def active(page: Page, predicate: Callable[[], bool]) -> Callable[[], bool]:
    """``predicate``, with a key press on ``page`` every minute: the vault locks after
    15 minutes without input, and growing a long history on a busy machine takes
    longer than that."""
    last = [time.monotonic()]

    def check() -> bool:
        if time.monotonic() - last[0] > 60:
            page.keyboard.press("Shift")
            last[0] = time.monotonic()
        return predicate()

    return check


def task_summary(durations: list[float]) -> dict[str, float]:
    """Main-thread long tasks (> 50 ms by definition): how many, the longest."""
    return {"count": len(durations), "max_ms": max(durations, default=0.0)}


def start_numbers(browser: Browser, origin: str, runs: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    floor_cold, floor_warm = [], []
    for _ in range(runs):
        ctx = browser.new_context()
        page = ctx.new_page()
        page.goto(origin + "/floor.html")
        floor_cold.append(wait_mark(page, "floor:ready"))
        page.reload()
        floor_warm.append(wait_mark(page, "floor:ready"))
        ctx.close()
    usable_cold, ready_cold, usable_warm, ready_warm = [], [], [], []
    ui_cold, ui_warm = [], []  # MicroPython: from the boot module to the UI's runtime
    for i in range(runs):
        ctx = browser.new_context()
        ctx.add_init_script(OBSERVE)
        page = ctx.new_page()
        page.goto(origin + "/")
        usable_cold.append(wait_mark(page, "ui:usable"))
        ui_cold.append(wait_mark(page, "ui:runtime") - wait_mark(page, "boot:start"))
        ready_cold.append(wait_mark(page, "core:ready"))
        if i == 0:
            # A vault, and the service worker's caches, for the warm starts.
            p = person(browser, origin, "warm", block=False)
            p.context.add_init_script(OBSERVE)
            sign_up(p, origin)
            wait(p.page, lambda p=p: p.page.evaluate(
                "async () => navigator.serviceWorker.controller !== null && "
                "(await caches.keys()).length > 0"), "service worker ready")
            for _ in range(runs):
                p.page.reload()
                usable_warm.append(wait_mark(p.page, "ui:usable"))
                ui_warm.append(wait_mark(p.page, "ui:runtime") - wait_mark(p.page, "boot:start"))
                ready_warm.append(wait_mark(p.page, "core:ready"))
                wait_state(p.page, "locked/unlock")
            out["unlock"] = unlock_numbers(p.page, runs)
            if p.guard.offsite:
                sys.exit(f"requests left the origin: {p.guard.offsite}")
            p.context.close()
        ctx.close()
    fc, fw = median(floor_cold), median(floor_warm)
    out["floor_ms"] = {"cold": fc, "warm": fw}
    out["usable_ms"] = {"cold": median(usable_cold), "warm": median(usable_warm)}
    out["core_ready_ms"] = {"cold": median(ready_cold), "warm": median(ready_warm)}
    out["ui_runtime_ms"] = {"cold": median(ui_cold), "warm": median(ui_warm)}
    out["ratio_usable"] = {"cold": median(usable_cold) / fc, "warm": median(usable_warm) / fw}
    out["ratio_core_ready"] = {"cold": median(ready_cold) / fc, "warm": median(ready_warm) / fw}
    return out


def unlock_numbers(page: Page, runs: int) -> dict[str, Any]:
    """Main-thread long tasks from pressing Unlock to the chat."""
    # The observer works: a 120 ms busy loop on the page must be seen.
    t0 = page.evaluate("performance.now()")
    page.evaluate("setTimeout(() => { const t = performance.now(); "
                  "while (performance.now() - t < 120); }, 0)")
    wait(page, lambda: bool(long_tasks(page, t0)), "the long-task observer sees a busy loop")
    tasks: list[float] = []
    took = []
    for _ in range(runs):
        wait_state(page, "locked/unlock")
        page.evaluate("window.__longtasks = []")
        t0 = page.evaluate("performance.now()")
        unlock(page)
        t1 = page.evaluate("performance.now()")
        took.append(t1 - t0)
        tasks += long_tasks(page, t0, t1)
        page.click("#lock")
    return {"longtasks": task_summary(tasks), "unlocks": runs, "unlock_ms": median(took)}


def chat_numbers(browser: Browser, origin: str, messages: int, history: int
                 ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # Requests are recorded, not intercepted: Playwright's routing would add a round
    # trip to this process to every request (the tests block offsite requests).
    alice = person(browser, origin, "alice", block=False)
    bob = person(browser, origin, "bob", block=False)
    for p in (alice, bob):
        p.context.add_init_script(OBSERVE)
        sign_up(p, origin)
    # Send-to-display between two pages.
    alice.page.click("#new-conv")
    alice.page.fill("#f-conv-name", "Bench")
    alice.page.fill("#f-conv-members", bob.name)
    alice.page.click("#new-conv-form button[type=submit]")
    select_conversation(bob.page, "Bench")
    bob.page.evaluate("""() => {
        window.__seen = {};
        window.__observer = new MutationObserver(() => {
          for (const el of document.querySelectorAll('#messages .text')) {
            const t = el.textContent;
            if (!(t in window.__seen)) window.__seen[t] = Date.now();
          }
        });
        window.__observer.observe(document.getElementById('chat'),
                                  {childList: true, subtree: true});
    }""")
    # The moment of the Enter key, on alice's page (not before Playwright's command,
    # whose own round trip to the browser would be counted).
    alice.page.evaluate("""() => { window.__enter = null;
        addEventListener('keydown', (e) => {
          if (e.key === 'Enter') window.__enter = Date.now(); }, true); }""")
    lat = []
    alice_before = alice.page.workers[0].evaluate("globalThis.__vaultStats()")
    for i in range(messages):
        text = f"bench message {i} {secrets.token_hex(4)}"
        alice.page.fill("#composer-input", text)
        alice.page.evaluate("window.__enter = null")
        alice.page.press("#composer-input", "Enter")
        sent_at = alice.page.evaluate("window.__enter")
        deadline = time.monotonic() + 30
        while (seen := bob.page.evaluate("(t) => window.__seen[t]", text)) is None:
            if time.monotonic() > deadline:
                sys.exit("message not delivered in 30 s")
            bob.page.wait_for_timeout(2)
        lat.append(seen - sent_at)
    out["send_to_display_ms"] = {"p50": median(lat), "p99": percentile(lat, 99),
                                 "max": max(lat), "n": len(lat)}
    alice_after = alice.page.workers[0].evaluate("globalThis.__vaultStats()")
    # The sender's side of those messages: its vault writes (the line, its "sent"
    # state, its share of the group state) while the history was short.
    wait(alice.page, lambda: alice.page.locator(
        "#messages li.msg.own .state[data-state='sent']").count() == messages, "all sent")
    alice_sent = {"writes": (alice_after["puts"] - alice_before["puts"]) / messages,
                  "bytes": (alice_after["putBytes"] - alice_before["putBytes"]) / messages}
    bob.page.evaluate("window.__observer.disconnect()")  # not to weigh on what follows

    # A burst of incoming messages, and the vault's cost per message at two lengths.
    bot = Bot(origin)
    conv = bot.create("Burst", [bob.name])
    select_conversation(bob.page, "Burst")
    worker = bob.page.workers[0]

    def stats() -> dict[str, int]:
        return dict(worker.evaluate("globalThis.__vaultStats()"))

    def settled() -> dict[str, int]:
        """The worker's counters once its writes are done: a received line is shown
        before its record is written, so the display alone does not mean the
        writes are counted. Settled = unchanged over half a second."""
        last = stats()
        while True:
            time.sleep(0.5)
            now = stats()
            if now == last:
                return now
            last = now

    def per_message(n: int) -> dict[str, float]:
        before = settled()
        lines = [f"cost {secrets.token_hex(3)} {i}" for i in range(n)]
        bot.send(conv, lines)
        wait(bob.page, active(bob.page, lambda: last_text(bob.page) == lines[-1:]), "received",
             timeout=600)
        after = settled()
        return {"writes": (after["puts"] - before["puts"]) / n,
                "bytes": (after["putBytes"] - before["putBytes"]) / n}

    def per_sent_message(n: int) -> dict[str, float]:
        """bob sends from the page; counted once the server acknowledged them all."""
        sent = "#messages li.msg.own .state[data-state='sent']"
        have = bob.page.locator(sent).count()
        before = settled()
        for i in range(n):
            bob.page.fill("#composer-input", f"sent cost {i} {secrets.token_hex(3)}")
            bob.page.press("#composer-input", "Enter")
            wait(bob.page, lambda i=i: bob.page.locator(sent).count() == have + i + 1,
                 "sent", timeout=120)
        after = settled()
        return {"writes": (after["puts"] - before["puts"]) / n,
                "bytes": (after["putBytes"] - before["putBytes"]) / n}

    bot.send(conv, [f"warm-up {i}" for i in range(10)])
    wait(bob.page, lambda: last_text(bob.page) == ["warm-up 9"], "warm-up")
    cost_10 = per_message(20)
    sent_10 = per_sent_message(20)
    bob.page.evaluate("window.__longtasks = []")
    t0 = bob.page.evaluate("performance.now()")
    burst = [f"burst {i}" for i in range(messages)]
    bot.send(conv, burst)
    wait(bob.page, active(bob.page, lambda: last_text(bob.page) == burst[-1:]), "burst shown",
         timeout=600)
    out["burst_longtasks"] = task_summary(long_tasks(bob.page, t0))

    # Grow the history to --history lines (in the background: the page keeps up).
    have = 10 + 20 + 20 + messages
    step = 500
    while have < history:
        n = min(step, history - have)
        bot.send(conv, [f"history {have + i}" for i in range(n)])
        have += n
        bob.page.keyboard.press("Shift")  # input: no idle lock while this takes
    wait(bob.page, active(bob.page, lambda: last_text(bob.page) == [f"history {history - 1}"]),
         "history received", timeout=3600)
    cost_big = per_message(20)
    sent_big = per_sent_message(20)
    out["vault_per_message"] = {"history_10": cost_10, f"history_{history}": cost_big}
    out["vault_per_sent_message"] = {"history_10": sent_10, f"history_{history}": sent_big,
                                     "send_to_display_run": alice_sent}
    # Opening the long conversation.
    bob.page.click("#conv-list button.conv:has-text('Bench')")
    wait(bob.page, lambda: bob.page.inner_text("#chat-title") == "Bench", "other open")
    bob.page.evaluate("window.__longtasks = []")
    t0 = bob.page.evaluate("performance.now()")
    select_conversation(bob.page, "Burst")
    wait(bob.page, lambda: bool(last_text(bob.page)), "history shown")
    t1 = bob.page.evaluate("performance.now()")
    out["open_history"] = {"lines": have + 40, "ms": t1 - t0,
                           "longtasks": task_summary(long_tasks(bob.page, t0))}
    bot.close()
    for p in (alice, bob):
        if p.guard.offsite:
            sys.exit(f"requests left the origin: {p.guard.offsite}")
    return out


def burst_numbers(browser: Browser, origin: str, messages: int, runs: int
                  ) -> dict[str, Any]:
    """Main-thread long tasks during ``runs`` bursts of ``messages`` incoming messages
    into the open conversation (the burst part of :func:`chat_numbers` alone)."""
    bob = person(browser, origin, "bob", block=False)
    bob.context.add_init_script(OBSERVE)
    sign_up(bob, origin)
    bot = Bot(origin)
    conv = bot.create("Burst", [bob.name])
    select_conversation(bob.page, "Burst")
    bot.send(conv, [f"warm-up {i}" for i in range(10)])
    wait(bob.page, lambda: last_text(bob.page) == ["warm-up 9"], "warm-up")
    per_burst = []
    for r in range(runs):
        bob.page.evaluate("window.__longtasks = []; window.__uiBatches = []")
        t0 = bob.page.evaluate("performance.now()")
        burst = [f"burst {r} {i}" for i in range(messages)]
        bot.send(conv, burst)
        wait(bob.page, active(bob.page, lambda b=burst: last_text(bob.page) == b[-1:]),
             "burst shown", timeout=600)
        t1 = bob.page.evaluate("performance.now()")
        batches = bob.page.evaluate("window.__uiBatches ?? []")
        per_burst.append({**task_summary(long_tasks(bob.page, t0)), "shown_ms": t1 - t0,
                          "batches": len(batches),
                          "batch_max_events": max((n for n, _ in batches), default=0),
                          "batch_max_ms": max((d for _, d in batches), default=0.0)})
    lines = bob.page.locator("#messages li.msg").count()
    bot.close()
    if bob.guard.offsite:
        sys.exit(f"requests left the origin: {bob.guard.offsite}")
    return {"bursts": per_burst, "lines_shown": lines}


def mls_numbers() -> dict[str, float]:
    with serve(DIST) as origin, sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page()
        page.goto(f"{origin}/selfcheck.html")
        page.wait_for_function("document.documentElement.dataset.state", timeout=180_000)
        res: dict[str, float] = json.loads(page.evaluate(
            "async (code) => (await globalThis.mlsPython).runPython(code)", GROUP_PY))
        browser.close()
    return res


def with_app(measure: Callable[[Browser, str], dict[str, Any]]) -> dict[str, Any]:
    """Build the bundle, serve it with a server on a fresh database, run ``measure``
    in Chromium against it, clean up, and print the machine's load around it."""
    load_before = os.getloadavg()
    build.build()
    pg = Postgres.start()
    db = f"bench_web_{secrets.token_hex(3)}"
    url = pg.create_database(db)
    server = ServerProcess({"DATABASE_URL": url, "STATIC_DIR": str(DIST)},
                           log_dir=Path("/tmp")).start()
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            res = measure(browser, server.base_url)
            browser.close()
    finally:
        server.stop()
        pg.drop_database(db)
    res["load_average"] = {"before": load_before, "after": os.getloadavg(),
                           "cpus": os.cpu_count()}
    la = res["load_average"]
    print(f"machine: {la['cpus']} CPUs, load average (1/5/15 min) "
          f"{'/'.join(f'{x:.1f}' for x in la['before'])} before, "
          f"{'/'.join(f'{x:.1f}' for x in la['after'])} after")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--messages", type=int, default=100)
    ap.add_argument("--history", type=int, default=10_000)
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--only", choices=["burst"], help="run only this part")
    args = ap.parse_args()
    if args.only == "burst":
        return burst_main(args)
    res = with_app(lambda browser, base: start_numbers(browser, base, args.runs)
                   | chat_numbers(browser, base, args.messages, args.history))
    f, u, c = res["floor_ms"], res["usable_ms"], res["core_ready_ms"]
    print(f"start (medians of {args.runs})          cold        warm")
    print(f"  floor: bare Pyodide, 1 + 1    {f['cold']:7.0f} ms  {f['warm']:7.0f} ms")
    print(f"  app: first usable screen      {u['cold']:7.0f} ms  {u['warm']:7.0f} ms"
          f"   ratio {res['ratio_usable']['cold']:.2f} / {res['ratio_usable']['warm']:.2f}")
    print(f"  app: client core ready        {c['cold']:7.0f} ms  {c['warm']:7.0f} ms"
          f"   ratio {res['ratio_core_ready']['cold']:.2f} / "
          f"{res['ratio_core_ready']['warm']:.2f}")
    r = res["ui_runtime_ms"]
    print(f"  of which MicroPython for the UI {r['cold']:7.0f} ms  {r['warm']:7.0f} ms")
    print("main-thread long tasks (PerformanceObserver longtask; goal: none over 50 ms)")
    ul, oh = res["unlock"], res["open_history"]
    for what, t, note in (
            (f"{ul['unlocks']} unlocks", ul["longtasks"],
             f"unlock took {ul['unlock_ms']:.0f} ms, median"),
            (f"burst of {args.messages} incoming", res["burst_longtasks"], ""),
            (f"open a {oh['lines']}-line conversation", oh["longtasks"],
             f"latest page shown after {oh['ms']:.0f} ms")):
        print(f"  {what:32s} {t['count']:3d} tasks, longest {t['max_ms']:4.0f} ms"
              + (f"   ({note})" if note else ""))
    s = res["send_to_display_ms"]
    print(f"send to display over {s['n']} (Enter on one page to the text on the other): "
          f"p50 {s['p50']:.0f} ms, p99 {s['p99']:.0f} ms, max {s['max']:.0f} ms")
    for title, key in (("received", "vault_per_message"), ("sent", "vault_per_sent_message")):
        print(f"vault per {title} message (IndexedDB puts and bytes, counted in the worker):")
        for k, v in res[key].items():
            print(f"  {k:20s} {v['writes']:6.2f} writes, {v['bytes']:10.0f} bytes")
    mls = mls_numbers()
    print("MLS from Python in Pyodide (Chromium), suite 1:")
    for k, v in mls.items():
        print(f"  {k:24s} {v:8.2f} ms")
    if args.json:
        args.json.write_text(json.dumps({**res, "mls": mls}, indent=2))


def burst_main(args: argparse.Namespace) -> None:
    res = with_app(lambda browser, base: burst_numbers(browser, base, args.messages,
                                                       args.runs))
    print(f"main-thread long tasks during bursts of {args.messages} incoming messages "
          "(goal: none over 50 ms)")
    for i, b in enumerate(res["bursts"]):
        print(f"  burst {i + 1}: {b['count']:3d} tasks, longest {b['max_ms']:4.0f} ms"
              f"   (last line shown after {b['shown_ms']:.0f} ms; {b['batches']} UI batches,"
              f" largest {b['batch_max_events']} events, slowest {b['batch_max_ms']:.0f} ms)")
    print(f"  lines in the conversation at the end: {res['lines_shown']}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
