"""The service bound to the worker: called by ``web/js/core_worker.mjs``.

``start(post)`` makes the service; ``post(json_text)`` is how events leave the
worker. ``handle(method, params_json)`` answers one request with a JSON text:
``{"ok": result}`` or ``{"error": {...}}``.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from typing import Any

from corecrypto.transport.browser import BrowserTransport
from corecrypto.vault import Vault
from corecrypto.vault.browser import open_browser_vault

from .service import ChatService, RpcError

IDLE_LOCK_SECONDS = 15 * 60
log = logging.getLogger("corecrypto.worker")


class _Log(logging.Handler):
    """Client diagnostics to the page (never secrets: the library logs none)."""

    def __init__(self, post: Callable[[str], None]) -> None:
        super().__init__()
        self._post = post

    def emit(self, record: logging.LogRecord) -> None:
        self._post(json.dumps({"event": "log", "data": {"line": self.format(record)}}))


class Bridge:
    def __init__(self, post: Callable[[str], None]) -> None:
        self._post = post

        async def open_vault() -> Vault:
            return await open_browser_vault(idle_lock_seconds=IDLE_LOCK_SECONDS)

        self.service = ChatService(BrowserTransport(), open_vault, self._event)
        handler = _Log(post)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger("corecrypto")
        root.addHandler(handler)
        root.setLevel(logging.INFO)

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        self._post(json.dumps({"event": kind, "data": data}))

    async def handle(self, method: str, params_json: str) -> str:
        try:
            params = json.loads(params_json) if params_json else {}
            if not isinstance(params, dict):
                raise RpcError("bad-request", "params must be an object")
            result = await self.service.call(str(method), params)
        except RpcError as e:
            return json.dumps({"error": e.to_json()})
        except Exception as e:  # a bug: report it, keep serving
            log.exception("%s failed", method)
            return json.dumps({"error": {"kind": "internal", "message": type(e).__name__}})
        return json.dumps({"ok": result})

    async def shutdown(self) -> None:
        await self.service.shutdown()


def start(post: Callable[[str], None]) -> Bridge:
    # The worker may run from a memory snapshot made at build time: every copy would
    # share the state of `random` (used for reconnection jitter only; keys come from
    # the browser's CSPRNG). Reseed it from the OS.
    random.seed()
    return Bridge(post)
