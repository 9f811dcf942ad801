"""The bundle in headless Chromium: it boots from its own origin only, the page's
self-check passes in every cipher suite, and the MLS test vectors give CPython's
results (see :func:`vector_runs.mismatch`).

The bundle is served by the small static server of ``harness.py`` with the vectors
under ``/__vectors__/``; every request of the browser context is recorded, and any
that would leave the origin is aborted and fails the test.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from playwright.sync_api import Browser

from mls.crypto import SUITES

from .harness import OriginGuard, serve
from .vector_runs import VECTOR_FILES, VECTORS, RunCache, RunnerOutput, mismatch

# Runs one vector file as `python -m mls.vectors FILE` would, capturing its output.
_RUN_VECTORS_PY = """
import contextlib, io, traceback
from mls.vectors.__main__ import main

def run_vector_file(path):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main([path])
        except Exception:  # what an uncaught exception would print, then exit 1
            traceback.print_exc()
            status = 1
    return [status, out.getvalue(), err.getvalue()]

run_vector_file
"""

_RUN_VECTORS_JS = """async ([names, code]) => {
  const pyodide = await globalThis.mlsPython;
  pyodide.FS.mkdirTree("/vectors");
  const run = pyodide.runPython(code);
  const results = {};
  try {
    for (const name of names) {
      const response = await fetch(`/__vectors__/${name}`);
      if (!response.ok) throw new Error(`${name}: HTTP ${response.status}`);
      pyodide.FS.writeFile(`/vectors/${name}`, new Uint8Array(await response.arrayBuffer()));
      const result = run(`/vectors/${name}`);
      results[name] = result.toJs();
      result.destroy();
    }
  } finally {
    run.destroy();
  }
  return results;
}"""


def test_bundle_in_chromium(bundle: Path, browser: Browser, run_cache: RunCache) -> None:
    assert VECTORS is not None and VECTOR_FILES, "no MLS test vectors (set MLS_VECTORS_DIR)"
    # CPython's results, computed while the browser works.
    pool = ThreadPoolExecutor(max_workers=1)
    cpython_runs = pool.submit(run_cache.get, [(p, "cpython") for p in VECTOR_FILES])
    pool.shutdown(wait=False)

    with serve(bundle, {"/__vectors__/": VECTORS}) as origin:
        context = browser.new_context()
        guard = OriginGuard(context, origin)
        page = context.new_page()
        page_errors: list[str] = []
        page.on("pageerror", lambda e: page_errors.append(str(e)))
        page.on(
            "console",
            lambda m: page_errors.append(m.text) if m.type == "error" else None,
        )
        try:
            page.goto(f"{origin}/selfcheck.html")
            page.wait_for_function("document.documentElement.dataset.state", timeout=180_000)
            state = page.evaluate("document.documentElement.dataset.state")
            status = page.inner_text("#status")
            assert state == "ready", f"self-check failed: {status}\n{page_errors}"
            assert status.count(": ok") == len(SUITES), status

            names = [p.name for p in VECTOR_FILES]
            results = page.evaluate(_RUN_VECTORS_JS, [names, _RUN_VECTORS_PY])
        finally:
            context.close()

    assert not guard.offsite, f"requests left the origin {origin}: {guard.offsite}"
    assert not guard.http_errors, guard.http_errors
    assert not page_errors, page_errors
    # The recording works: the runtime, the wheel and the crypto libraries came from here.
    for part in ("/pyodide.asm.wasm", ".whl", "/libsodium-sumo.", "/noble-"):
        assert any(part in url for url in guard.requests), (part, guard.requests)

    expected = cpython_runs.result()
    problems = []
    for path in VECTOR_FILES:
        status_code, stdout, stderr = results[path.name]
        browser_run = RunnerOutput(status_code, stdout, stderr)
        problem = mismatch(expected[(path, "cpython")], browser_run)
        if problem is not None:
            problems.append(f"{path.name}: Chromium {problem}\n{browser_run.describe()}")
    assert not problems, "\n".join(problems)


def test_origin_guard_catches_offsite_requests(bundle: Path, browser: Browser) -> None:
    """The guard above can fail: a request to another origin is recorded and aborted."""
    with serve(bundle) as origin:
        context = browser.new_context()
        guard = OriginGuard(context, origin)
        try:
            page = context.new_page()
            page.goto(f"{origin}/build.json")
            outcome = page.evaluate(
                "fetch('http://192.0.2.1/probe.js').then(() => 'fetched', (e) => 'blocked')"
            )
            page.evaluate("fetch('/build.json').then((r) => r.status)")
        finally:
            context.close()
    assert outcome == "blocked"
    assert guard.offsite == ["http://192.0.2.1/probe.js"]
    assert f"{origin}/build.json" in guard.requests
