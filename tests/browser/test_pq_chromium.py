"""A whole conversation in the hybrid post-quantum suites inside headless Chromium:
the bundle's Python (Pyodide, JS provider: ML-KEM from @noble/post-quantum, X25519
from libsodium) runs ``tests/mls/pq_group.py``: Welcome, updates, removal, external
commit, application messages and a restart, with no request leaving the origin."""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import Browser

from ..mls import pq_group
from .harness import OriginGuard, serve

_RUN_JS = """async ([source, suites]) => {
  const pyodide = await globalThis.mlsPython;
  pyodide.runPython(source);
  return pyodide.runPython(
    `import json\\nfrom mls.crypto import default_provider\\n` +
    `p = default_provider()\\nassert p.name == "pyodide-js", p.name\\n` +
    `json.dumps([run_scenario(p, s) for s in ${JSON.stringify(suites)}])`);
}"""

_NOBLE_PQ = re.compile(r"/assets/noble-post-quantum\.[0-9a-f]{16}/")

HYBRID_SUITES = [0x004D, 0x004E, 0x004F, 0xF0D1, 0xF0D2]


def test_pq_conversation_in_chromium(bundle: Path, browser: Browser) -> None:
    source = Path(pq_group.__file__).read_text(encoding="utf-8")
    with serve(bundle) as origin:
        context = browser.new_context()
        guard = OriginGuard(context, origin)
        page = context.new_page()
        page_errors: list[str] = []
        page.on("pageerror", lambda e: page_errors.append(str(e)))
        try:
            page.goto(f"{origin}/selfcheck.html")
            page.wait_for_function("document.documentElement.dataset.state", timeout=180_000)
            assert page.evaluate("document.documentElement.dataset.state") == "ready"
            results = json.loads(page.evaluate(_RUN_JS, [source, HYBRID_SUITES]))
        finally:
            context.close()
    assert not guard.offsite, guard.offsite
    assert not page_errors, page_errors
    # ML-KEM came from the bundle's own copy of @noble/post-quantum (build.py ships it
    # as the content-hashed directory assets/noble-post-quantum.HASH/).
    assert any(_NOBLE_PQ.search(url) for url in guard.requests), guard.requests
    assert [r["suite"] for r in results] == HYBRID_SUITES
    assert all(r["members"] == 4 for r in results)
