"""Benchmarks of the encrypted vault, from Python in Pyodide in headless Chromium.

    .venv/bin/python bench/bench_vault.py [--unlocks N] [--ops N] [--json FILE]

Measures, on the bundle (built first, if needed) served from localhost, with the
browser implementations (IndexedDB with strict durability, WebCrypto, libsodium's
Argon2id at the default m=64 MiB, t=3, p=1):

* Argon2id alone (``derive_key_argon2id``), and a whole unlock (Argon2id, KEK import,
  unwrap of the data key, header read);
* put and get of a 1 KiB and a 100 KiB record (each: AES-256-GCM in WebCrypto, the
  FFI crossings, one IndexedDB transaction).

Twice: in an ordinary Playwright context (incognito-like: IndexedDB is kept in
memory) and in a persistent profile on disk (what a user's browser does; strict
durability then waits for the disk). Medians (and min/max) in milliseconds. Numbers
are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the browser tests' server and Chromium set-up

from playwright.sync_api import BrowserContext, sync_playwright  # noqa: E402
from tests.browser.harness import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    DIST,
    OriginGuard,
    launch_chromium,
    serve,
)

BENCH_PY = r"""
import json, os, statistics, time
from corecrypto.kdf import Argon2Params, derive_key_argon2id
from corecrypto.vault.browser import open_browser_vault
import vault_js

await vault_js.wipeAll()
UNLOCKS, OPS = {unlocks}, {ops}

def summary(samples):
    return {{"median": statistics.median(samples), "min": min(samples), "max": max(samples),
             "n": len(samples)}}

async def timed(fn, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t) * 1000)
    return summary(out)

async def argon2():
    derive_key_argon2id("a benchmark password", os.urandom(16), Argon2Params())

v = await open_browser_vault(idle_lock_seconds=None)
t = time.perf_counter()
await v.create("a benchmark password")
create_ms = (time.perf_counter() - t) * 1000

async def unlock():
    v.lock()
    await v.unlock("a benchmark password")

result = {{"create": summary([create_ms]), "argon2id": await timed(argon2, UNLOCKS),
          "unlock": await timed(unlock, UNLOCKS)}}
for label, size in (("1 KiB", 1024), ("100 KiB", 100 * 1024)):
    data = os.urandom(size)
    name = f"bench/{{size}}"
    result[f"put {{label}}"] = await timed(lambda: v.put(name, data), OPS)
    result[f"get {{label}}"] = await timed(lambda: v.get(name), OPS)
    assert await v.get(name) == data
await v.panic()
json.dumps(result)
"""


def _build() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "build.py"), "--quiet"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"build.py failed:\n{proc.stderr}")


def _measure(context: BrowserContext, origin: str, code: str) -> dict[str, Any]:
    guard = OriginGuard(context, origin)
    page = context.new_page()
    page.goto(f"{origin}/selfcheck.html")
    page.wait_for_function("document.documentElement.dataset.state", timeout=180_000)
    if page.evaluate("document.documentElement.dataset.state") != "ready":
        sys.exit(f"page failed: {page.inner_text('#status')}")
    timings: dict[str, Any] = json.loads(page.evaluate(
        "async (code) => (await globalThis.mlsPython).runPythonAsync(code)", code))
    if guard.offsite:
        sys.exit(f"requests left the origin: {guard.offsite}")
    return timings


def run(unlocks: int, ops: int) -> dict[str, Any]:
    _build()
    code = BENCH_PY.format(unlocks=unlocks, ops=ops)
    results: dict[str, Any] = {}
    with serve(DIST) as origin, sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            context = browser.new_context()
            try:
                results["in-memory profile"] = _measure(context, origin, code)
            finally:
                context.close()
        finally:
            browser.close()
        with tempfile.TemporaryDirectory(prefix="bench-vault-") as profile:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                results["on-disk profile"] = _measure(context, origin, code)
            finally:
                context.close()
    version = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True,
                             check=False).stdout.strip()
    return {"chromium": version, "unlocks": unlocks, "ops": ops, "ms": results}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unlocks", type=int, default=5, help="Argon2id runs and unlocks")
    ap.add_argument("--ops", type=int, default=30, help="puts and gets per record size")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    result = run(args.unlocks, args.ops)
    print(f"{result['chromium']}; vault from Python in Pyodide (ms: median [min-max], n)")
    for profile, timings in result["ms"].items():
        print(f" {profile}:")
        for name, s in timings.items():
            print(f"  {name:16s} {s['median']:8.2f}   [{s['min']:.2f}-{s['max']:.2f}], "
                  f"n={s['n']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
