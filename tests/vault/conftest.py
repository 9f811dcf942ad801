"""The browser tests of the vault reuse the bundle and Chromium fixtures of
``tests/browser`` (the bundle engineer's harness), rather than a second set-up."""

from __future__ import annotations

from tests.browser.conftest import browser, bundle

__all__ = ["browser", "bundle"]
