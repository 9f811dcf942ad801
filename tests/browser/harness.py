"""Browser harness for the tests and benchmarks: a tiny static server, Chromium, and
a guard that records every request a page makes and stops those leaving the origin.

The server serves the bundle (``web/dist``) the way the real server will (JS modules
and WebAssembly with their MIME types, conditional requests for a warm start), plus
optional read-only directories under fixed URL prefixes (the test vectors). It is
independent of ``src/delivery`` on purpose.
"""

from __future__ import annotations

import functools
import http.server
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, Playwright, Request, Route, WebSocket

ROOT = Path(__file__).resolve().parents[2]
# This checkout's mls, whatever the virtualenv has installed: the Pyodide side always
# runs this checkout's (see mls.vectors.pyodide_runtime), and both must be the same.
sys.path.insert(0, str(ROOT / "src"))
DIST = ROOT / "web" / "dist"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
#: Headless, and none of Chromium's own background traffic (updates, sync, ...).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class _Handler(http.server.SimpleHTTPRequestHandler):
    # Browsers refuse module scripts and streaming WebAssembly compilation without
    # the right types; don't depend on the host's mime.types.
    extensions_map = {  # noqa: RUF012 - the stdlib's attribute, overridden per class
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".wasm": "application/wasm",
        ".json": "application/json",
        ".whl": "application/zip",
        ".zip": "application/zip",
    }

    def __init__(self, *args: Any, mounts: Mapping[str, Path], **kwargs: Any) -> None:
        self._mounts = mounts
        super().__init__(*args, **kwargs)

    def translate_path(self, path: str) -> str:
        for prefix, root in self._mounts.items():
            if path.startswith(prefix):
                # The parent's sanitising (no "..", no absolute paths), then re-rooted.
                rel = Path(super().translate_path("/" + path[len(prefix) :]))
                return str(root / rel.relative_to(str(self.directory)))
        return super().translate_path(path)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


@contextmanager
def serve(root: Path, mounts: Mapping[str, Path] | None = None) -> Iterator[str]:
    """Serve ``root`` (and ``mounts``: URL prefix ending in "/" -> directory) on an
    ephemeral localhost port; yields the origin, e.g. ``http://127.0.0.1:PORT``."""
    handler = functools.partial(_Handler, directory=str(root), mounts=dict(mounts or {}))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium (Playwright cannot download its own browsers here)."""
    if not CHROMIUM.is_file():
        raise FileNotFoundError(f"{CHROMIUM} is missing: run ./scripts/bootstrap.sh")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


class OriginGuard:
    """Records every request of a browser context; any that would leave ``origin`` is
    recorded in :attr:`offsite` and aborted, so nothing reaches the network even when
    the page misbehaves. ``data:`` and ``blob:`` URLs never leave the browser."""

    def __init__(self, context: BrowserContext, origin: str, *, block: bool = True) -> None:
        self.origin = origin
        self.requests: list[str] = []
        self.offsite: list[str] = []
        self.http_errors: list[str] = []
        if block:
            # Every request then waits for this process to let it through: right for
            # tests, but it adds the driver's round trip to each (benchmarks only record).
            context.route("**/*", self._route)
        context.on("request", self._request)
        context.on("response", self._response)
        context.on("page", lambda page: page.on("websocket", self._websocket))

    def _same_origin(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob"):
            return True
        return f"{parts.scheme}://{parts.netloc}" == self.origin

    def _offsite(self, url: str) -> None:
        if url not in self.offsite:  # seen by both the router and the request event
            self.offsite.append(url)

    def _route(self, route: Route) -> None:
        if self._same_origin(route.request.url):
            route.continue_()
        else:
            self._offsite(route.request.url)
            route.abort("blockedbyclient")

    def _request(self, request: Request) -> None:
        # Also catches requests that routing does not see (e.g. from service workers).
        self.requests.append(request.url)
        if not self._same_origin(request.url):
            self._offsite(request.url)

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.http_errors.append(f"{response.status} {response.url}")

    def _websocket(self, ws: WebSocket) -> None:
        # ws:// to our own host would still be "same origin" for our purposes.
        parts = urlsplit(ws.url)
        own = urlsplit(self.origin)
        if parts.netloc != own.netloc:
            self._offsite(ws.url)
