"""The web client in headless Chromium: start-up, live delivery and MLS costs.

    .venv/bin/python bench/bench_web.py [--messages 20]

Measures (reported, never asserted):

* the chat page (served by a real delivery server on a scratch PostgreSQL
  database): time from navigation to an interactive page (``data-state`` leaves
  ``loading``), cold (fresh browser context) and warm (reload, HTTP cache warm);
* time from pressing Enter on one page to the text appearing on another
  (``Date.now()`` on both sides, same machine clock), over ``--messages`` sends;
* from Python in Pyodide (the self-check page): encrypt and decrypt of a 1 KiB
  application message, and the add-member commit in groups of 10 and 100.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "delivery"))

import build  # noqa: E402
from ds_harness import Postgres, ServerProcess  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402
from tests.browser.harness import DIST, OriginGuard, launch_chromium, serve  # noqa: E402

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

PASSWORD = "Bench vault passphrase 9"


def _state(page: Page) -> str:
    return str(page.evaluate("document.body.dataset.state + '/' + document.body.dataset.screen"))


def _wait(page: Page, prefix: str, timeout: float = 120) -> float:
    start = time.monotonic()
    while not _state(page).startswith(prefix):
        if time.monotonic() - start > timeout:
            sys.exit(f"page stuck at {_state(page)}")
        page.wait_for_timeout(10)
    return time.monotonic() - start


def _interactive_ms(page: Page, url: str) -> float:
    """Navigation to the first non-loading state, measured in the page."""
    page.goto(url)
    _wait(page, "locked")
    # performance.now() counts from this navigation's start (polled every 10 ms).
    return float(page.evaluate("performance.now()"))


def _sign_up(page: Page, name: str) -> None:
    page.fill("#f-username", name)
    page.fill("#f-password", f"Account pass for {name[::-1]} 1!")
    page.click("#welcome-form button[type=submit]")
    _wait(page, "locked/setup")
    page.fill("#f-vault", PASSWORD)
    page.fill("#f-vault2", PASSWORD)
    page.click("#setup-form button[type=submit]")
    _wait(page, "ready/chat")


def chat_numbers(messages: int) -> dict[str, Any]:
    build.build()
    pg = Postgres.start()
    db = f"bench_web_{secrets.token_hex(3)}"
    url = pg.create_database(db)
    server = ServerProcess({"DATABASE_URL": url, "STATIC_DIR": str(DIST)},
                           log_dir=Path("/tmp")).start()
    out: dict[str, Any] = {}
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            origin = server.base_url
            cold, warm = [], []
            for _ in range(3):
                ctx = browser.new_context()
                page = ctx.new_page()
                cold.append(_interactive_ms(page, origin + "/"))
                for _ in range(2):
                    warm.append(_interactive_ms(page, origin + "/"))
                ctx.close()
            out["interactive_ms"] = {"cold": statistics.median(cold),
                                     "warm": statistics.median(warm)}
            sfx = secrets.token_hex(3)
            pages = {}
            guards = []
            for name in ("alice", "bob"):
                ctx = browser.new_context()
                guards.append(OriginGuard(ctx, origin))
                page = ctx.new_page()
                page.goto(origin + "/")
                _wait(page, "locked/welcome")
                _sign_up(page, f"{name}{sfx}")
                pages[name] = page
            alice, bob = pages["alice"], pages["bob"]
            alice.click("#new-conv")
            alice.fill("#f-conv-name", "Bench")
            alice.fill("#f-conv-members", f"bob{sfx}")
            alice.click("#new-conv-form button[type=submit]")
            while bob.locator("#conv-list button.conv:has-text('Bench')").count() == 0:
                bob.wait_for_timeout(50)
            bob.click("#conv-list button.conv:has-text('Bench')")
            bob.evaluate("""() => {
                window.__seen = {};
                new MutationObserver(() => {
                  for (const el of document.querySelectorAll('#messages .text')) {
                    const t = el.textContent;
                    if (!(t in window.__seen)) window.__seen[t] = Date.now();
                  }
                }).observe(document.getElementById('chat'), {childList: true, subtree: true});
            }""")
            lat = []
            for i in range(messages):
                text = f"bench message {i} {secrets.token_hex(4)}"
                alice.fill("#composer-input", text)
                sent_at = alice.evaluate("Date.now()")
                alice.press("#composer-input", "Enter")
                deadline = time.monotonic() + 20
                while True:
                    seen = bob.evaluate("(t) => window.__seen[t]", text)
                    if seen:
                        lat.append(seen - sent_at)
                        break
                    if time.monotonic() > deadline:
                        sys.exit("message not delivered in 20 s")
                    bob.wait_for_timeout(5)
            lat.sort()
            out["send_to_display_ms"] = {"p50": statistics.median(lat), "max": lat[-1],
                                         "n": len(lat)}
            if any(g.offsite for g in guards):
                sys.exit("requests left the origin")
            browser.close()
    finally:
        server.stop()
        pg.drop_database(db)
    return out


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20)
    args = ap.parse_args()
    chat = chat_numbers(args.messages)
    mls = mls_numbers()
    print(f"time to interactive page: cold {chat['interactive_ms']['cold']:.0f} ms, "
          f"warm {chat['interactive_ms']['warm']:.0f} ms (medians)")
    s = chat["send_to_display_ms"]
    print(f"send on one page -> shown on another: p50 {s['p50']:.0f} ms, max {s['max']:.0f} ms "
          f"over {s['n']} messages")
    print("MLS from Python in Pyodide (Chromium), suite 1:")
    for k, v in mls.items():
        print(f"  {k:24s} {v:8.2f} ms")


if __name__ == "__main__":
    main()
