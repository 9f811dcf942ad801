"""Fixtures of the browser tests: the vector-run cache, the bundle, Chromium.

Nothing is installed here: ``scripts/bootstrap.sh`` installs Node, the npm packages
and Chromium. When one is missing the tests fail and say so (a skip would hide it).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from .harness import DIST, ROOT, launch_chromium
from .vector_runs import RunCache


@pytest.fixture(scope="session")
def run_cache() -> RunCache:
    return RunCache()


@pytest.fixture(scope="session")
def bundle() -> Path:
    """``web/dist``, (re)built by build.py (a no-op when it is up to date)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "build.py"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"build.py failed:\n{proc.stdout}{proc.stderr}"
    return DIST


# Module, not session: while a sync Playwright is running, its thread looks as if it
# ran an asyncio loop, so every async test run after it in the same process fails.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            yield browser
        finally:
            browser.close()
