"""Benchmarks of the browser runtime, from Python in Pyodide in headless Chromium.

    .venv/bin/python bench/bench_pyodide.py [--runs N] [--json FILE]

Measures, on the bundle (built first, if needed) served from localhost:

* start to ready: navigation start until Python can use ``mls`` with the JS-backed
  provider (``mls:ready`` in ``web/js/mls_runtime.mjs``), cold (fresh browser
  context: empty HTTP and code caches) and warm (reload in the same context);
  ``pyodide`` is the part spent until ``loadPyodide`` resolved;
* per-operation cost through ``PyodideProvider`` from Python (so each includes the
  FFI crossing): Ed25519, X25519, AES-128-GCM and ChaCha20-Poly1305 on 1 KiB, P-256,
  an HPKE seal (suite 1), plus a bare FFI call for reference.

Numbers are reported, never asserted. Browser timers are coarse (100 µs without
cross-origin isolation), so each operation is timed over at least 0.2 s of calls.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the browser tests' server and Chromium set-up

from playwright.sync_api import BrowserContext, Page, sync_playwright  # noqa: E402
from tests.browser.harness import CHROMIUM, DIST, OriginGuard, launch_chromium, serve  # noqa: E402

OPS_PY = r"""
import json, time
from js import Math
from pyodide.ffi import to_js
from mls.crypto import AeadAlg, CipherSuite, KemAlg, SignatureScheme, default_provider

p = default_provider()
ED, P256 = SignatureScheme.ED25519, SignatureScheme.ECDSA_SECP256R1_SHA256
msg, kib = bytes(range(100)), bytes(1024)
ed_sk = bytes(range(32))
ed_pk, ed_sig = p.signature_public_key(ED, ed_sk), p.sign(ED, ed_sk, msg)
x_sk, x_pk = bytes(range(1, 33)), p.kem_public_key(KemAlg.DHKEM_X25519, bytes(range(2, 34)))
p_sk = bytes(range(1, 33))
p_pk, p_sig = p.signature_public_key(P256, p_sk), p.sign(P256, p_sk, msg)
p_peer = p.kem_public_key(KemAlg.DHKEM_P256, bytes(range(3, 35)))
key16, key32, nonce = bytes(16), bytes(32), bytes(12)
gcm_ct = p.aead_seal(AeadAlg.AES128GCM, key16, nonce, b"", kib)
suite1 = CipherSuite(1, p)
_, hpke_pk = suite1.generate_hpke_key_pair()
abs_ = Math.abs

OPS = {
    "FFI call, no data (Math.abs)": lambda: abs_(1),
    "to_js(1 KiB bytes)": lambda: to_js(kib),
    "Ed25519 sign (100 B)": lambda: p.sign(ED, ed_sk, msg),
    "Ed25519 verify (100 B)": lambda: p.verify(ED, ed_pk, msg, ed_sig),
    "X25519 DH": lambda: p.dh(KemAlg.DHKEM_X25519, x_sk, x_pk),
    "X25519 public key": lambda: p.kem_public_key(KemAlg.DHKEM_X25519, x_sk),
    "AES-128-GCM seal 1 KiB": lambda: p.aead_seal(AeadAlg.AES128GCM, key16, nonce, b"", kib),
    "AES-128-GCM open 1 KiB": lambda: p.aead_open(AeadAlg.AES128GCM, key16, nonce, b"", gcm_ct),
    "ChaCha20-Poly1305 seal 1 KiB": lambda: p.aead_seal(
        AeadAlg.CHACHA20POLY1305, key32, nonce, b"", kib),
    "P-256 ECDSA sign (100 B)": lambda: p.sign(P256, p_sk, msg),
    "P-256 ECDSA verify (100 B)": lambda: p.verify(P256, p_pk, msg, p_sig),
    "P-256 ECDH": lambda: p.dh(KemAlg.DHKEM_P256, p_sk, p_peer),
    "HPKE seal, suite 1 (EncryptWithLabel 1 KiB)": lambda: suite1.encrypt_with_label(
        hpke_pk, b"label", b"ctx", kib),
}

def per_op_us(fn, min_seconds=0.2, repeats=3):
    fn()
    n = 1
    while True:  # calibrate: enough calls for min_seconds
        t = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t >= min_seconds:
            break
        n *= 2
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best * 1e6

json.dumps({name: per_op_us(fn) for name, fn in OPS.items()})
"""


def _build() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "build.py"), "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"build.py failed:\n{proc.stderr}")


def _ready_times(page: Page) -> dict[str, float]:
    """ms since navigation start until Pyodide loaded and until ready."""
    page.wait_for_function("document.documentElement.dataset.state", timeout=180_000)
    state = page.evaluate("document.documentElement.dataset.state")
    if state != "ready":
        sys.exit(f"page failed: {page.inner_text('#status')}")
    marks: dict[str, float] = page.evaluate(
        "Object.fromEntries(performance.getEntriesByType('mark').map((m) => [m.name, m.startTime]))"
    )
    return {"pyodide": marks["mls:pyodide-loaded"], "ready": marks["mls:ready"]}


@contextmanager
def selfcheck_page() -> Iterator[tuple[BrowserContext, Page]]:
    """The bundle built and served, ``selfcheck.html`` open and ready in headless
    Chromium (one context, no step timeout); on leaving, the run fails if a request
    left the origin."""
    _build()
    with serve(DIST) as origin, sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            context = browser.new_context()
            guard = OriginGuard(context, origin)
            page = context.new_page()
            page.set_default_timeout(1_800_000)
            page.goto(f"{origin}/selfcheck.html")
            _ready_times(page)
            yield context, page
            context.close()
            if guard.offsite:
                sys.exit(f"requests left the origin: {guard.offsite}")
        finally:
            browser.close()


def run(runs: int) -> dict[str, Any]:
    _build()
    cold: list[dict[str, float]] = []
    warm: list[dict[str, float]] = []
    with serve(DIST) as origin, sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            for _ in range(runs):
                context = browser.new_context()  # empty HTTP cache and code cache
                guard = OriginGuard(context, origin)
                page = context.new_page()
                page.goto(f"{origin}/selfcheck.html")
                cold.append(_ready_times(page))
                for _ in range(runs):
                    page.reload()
                    warm.append(_ready_times(page))
                ops = json.loads(
                    page.evaluate(
                        "async (code) => (await globalThis.mlsPython).runPython(code)", OPS_PY
                    )
                )
                context.close()
                if guard.offsite:
                    sys.exit(f"requests left the origin: {guard.offsite}")
        finally:
            browser.close()

    def median(samples: list[dict[str, float]], key: str) -> float:
        return statistics.median(s[key] for s in samples)

    return {
        "chromium": subprocess.run(
            [str(CHROMIUM), "--version"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
        "runs": runs,
        "start_ms": {
            "cold": {k: median(cold, k) for k in ("pyodide", "ready")},
            "warm": {k: median(warm, k) for k in ("pyodide", "ready")},
        },
        "ops_us": ops,  # from the last context
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="cold starts (each with as many reloads)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    result = run(args.runs)
    start = result["start_ms"]
    print(f"{result['chromium']}, medians of {args.runs} cold and {args.runs**2} warm starts")
    for kind in ("cold", "warm"):
        s = start[kind]
        print(
            f"  {kind} start to ready: {s['ready']:7.0f} ms  (Pyodide loaded at {s['pyodide']:.0f})"
        )
    print("Per operation, from Python through PyodideProvider:")
    for name, us in result["ops_us"].items():
        print(f"  {name:44s} {us:9.1f} µs")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
