"""The ASGI application: routes, limits, error mapping, static files, lifecycle."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from delivery import accounts, auth, groups, joins, keypackages, ws
from delivery.config import Settings
from delivery.db import Database, translate_db_error
from delivery.errors import APIError, NotFound, PayloadTooLarge, ServiceUnavailable
from delivery.hub import Hub
from delivery.posting import Sequencer
from delivery.ratelimit import DatabaseRateLimiter, MemoryRateLimiter
from delivery.security import PasswordHasher
from delivery.services import Services, services_of
from delivery.throttle import LoginThrottle

log = logging.getLogger("delivery")

# The web app may run Pyodide in a worker: cross-origin isolation (for
# SharedArrayBuffer) and a CSP that allows compiling WebAssembly but nothing from
# elsewhere and no inline script.
_SCRIPT_SRC = "script-src 'self' 'wasm-unsafe-eval'"
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        _SCRIPT_SRC,
        "worker-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "style-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)
# Powerful browser features the chat never uses, switched off for the page and
# anything it might embed (a script injected despite the CSP cannot ask for them).
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer", "ambient-light-sensor", "autoplay", "battery", "bluetooth",
        "camera", "display-capture", "geolocation", "gyroscope", "hid", "idle-detection",
        "magnetometer", "microphone", "midi", "payment", "publickey-credentials-get",
        "screen-wake-lock", "serial", "usb", "xr-spatial-tracking",
    )
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-embedder-policy", b"require-corp"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", PERMISSIONS_POLICY.encode()),
]
# Sent on responses the client received over HTTPS (directly, or from a proxy named in
# DS_FORWARDED_ALLOW_IPS that says so): browsers then refuse plain HTTP to this host
# for a year. Never over plain HTTP, where it would mean nothing (RFC 6797 §7.2).
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
_CSP = b"content-security-policy"
_INLINE_SCRIPT_RE = re.compile(rb"<script\b([^>]*)>(.*?)</script\s*>", re.DOTALL | re.IGNORECASE)


def csp_for_html(html: bytes) -> str:
    """The CSP for one HTML page: the strict policy, plus the SHA-256 of each of the
    page's own inline scripts (an import map can only be inline), and nothing else."""
    hashes = []
    for attrs, body in _INLINE_SCRIPT_RE.findall(html):
        if b"src=" in attrs.lower() or not body.strip():
            continue
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        hashes.append(f"'sha256-{digest}'")
    if not hashes:
        return CONTENT_SECURITY_POLICY
    return CONTENT_SECURITY_POLICY.replace(_SCRIPT_SRC, " ".join([_SCRIPT_SRC, *hashes]), 1)


#: Under this prefix the bundle's files carry the hash of their content in their names
#: (build.py): cached for a year and never revalidated. Everything else (the pages, the
#: service worker, build.json) is revalidated on every use (ETag, 304).
HASHED_PREFIX = "assets/"
CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
CACHE_REVALIDATE = "no-cache"
# Browsers refuse module scripts and streaming WebAssembly compilation with the wrong
# type; do not depend on the host's mime.types.
_MEDIA_TYPES = {
    ".mjs": "text/javascript; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".whl": "application/zip",
    ".zip": "application/zip",
}


class WebAppFiles(StaticFiles):
    """The built web app; HTML pages get a CSP that admits exactly their inline scripts,
    hashed files are immutable, the rest is revalidated."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory=directory, html=True, check_dir=False)
        self._root = directory
        self._csp_cache: dict[tuple[str, float], str] = {}

    async def check_config(self) -> None:
        # The directory may be built (or removed) while the server runs: a missing one
        # is a 404 for the request, not an error of the server.
        if not self._root.is_dir():
            raise NotFound(f"the web app is not built (no directory {self._root})")
        await super().check_config()

    def file_response(
        self, full_path: Any, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        path = str(full_path)
        media_type = _MEDIA_TYPES.get(os.path.splitext(path)[1])
        if media_type is not None:
            response.headers["content-type"] = media_type
        rel = os.path.relpath(path, os.path.realpath(self._root)).replace(os.sep, "/")
        hashed = rel.startswith(HASHED_PREFIX)
        response.headers["cache-control"] = CACHE_IMMUTABLE if hashed else CACHE_REVALIDATE
        if path.endswith((".html", ".htm")):
            key = (path, stat_result.st_mtime)
            csp = self._csp_cache.get(key)
            if csp is None:
                csp = csp_for_html(Path(path).read_bytes())
                self._csp_cache[key] = csp
            response.headers["content-security-policy"] = csp
        return response

DESCRIPTION = """
Delivery Service and Authentication Service of an MLS (RFC 9420) messenger.

Authenticate with `Authorization: Bearer <token>` from `POST /api/auth/login`.
MLS objects are standard base64 in JSON; group ids are base64url without padding.
Errors are `{"error": <code>, "detail": <what was wrong>, ...}`.

Push: WebSocket `/ws` (not in this schema). Send
`{"type": "auth", "token": ..., "cursors": {<group_id>: <last seq>}, "welcome_after": <n>}`
as the first frame; receive `ready`, then `mls-welcome` and `mls-message` events in
order (same shapes as `GET /api/mls/welcomes` and `GET /api/mls/messages/{group_id}`).
"""


class SecurityHeaders:
    """Adds the isolation, CSP and Permissions-Policy headers to every HTTP response,
    HSTS over HTTPS, and ``no-store`` on the API."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_api = str(scope.get("path", "")).startswith("/api/")
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    h for h in message.get("headers", []) if h[0] not in dict(SECURITY_HEADERS)
                ]
                headers.extend(SECURITY_HEADERS)
                if https:
                    headers = [h for h in headers if h[0] != HSTS[0]]
                    headers.append(HSTS)
                if not any(h[0] == _CSP for h in headers):
                    headers.append((_CSP, CONTENT_SECURITY_POLICY.encode()))
                if is_api:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Reads the whole request body (at most ``limit`` bytes, within ``timeout``
    seconds) before the app sees it.

    Buffering first means an oversized body is refused with 413 before any handler
    runs, instead of failing half-way through one; a body dribbled in too slowly (a
    slow-POST attack holding the connection) gets 408.
    """

    def __init__(self, app: ASGIApp, limit: int, timeout: float = 30.0) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(PayloadTooLarge(f"request body exceeds {self.limit} bytes"),
                               scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.limit:
                        await self._refuse(
                            PayloadTooLarge(f"request body exceeds {self.limit} bytes"),
                            scope, receive, send)
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await self._refuse(
                APIError(f"request body not received within {self.timeout:g} seconds",
                         code="request_timeout", status=408), scope, receive, send)
            return
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(exc: APIError, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(exc.body(), status_code=exc.status, headers={"connection": "close"})
        await response(scope, receive, send)


def _error_response(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, APIError)
        return _error_response(exc)

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()))
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        return _error_response(
            APIError("; ".join(problems) or "invalid request", code="invalid_request", status=400)
        )

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error_response(
            APIError(
                str(exc.detail), code=code, status=exc.status_code, headers=dict(exc.headers or {})
            )
        )

    async def db_error(_request: Request, exc: Exception) -> JSONResponse:
        translated: Exception = exc
        if isinstance(exc, DBAPIError):
            translated = translate_db_error(exc)
        elif isinstance(exc, (PoolTimeoutError, OSError)):
            translated = ServiceUnavailable("the database is unavailable; retry shortly")
        if isinstance(translated, APIError):
            return _error_response(translated)
        log.error("unexpected database error", exc_info=exc)
        return _error_response(APIError("internal error", code="internal", status=500))

    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # A bug, not bad input: log it, tell the client nothing about internals.
        log.error("unhandled exception", exc_info=exc)
        return _error_response(APIError("internal error", code="internal", status=500))

    app.add_exception_handler(APIError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(DBAPIError, db_error)
    app.add_exception_handler(PoolTimeoutError, db_error)
    app.add_exception_handler(OSError, db_error)
    app.add_exception_handler(Exception, unexpected)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; the database opens (and migrates) at start-up."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = await Database.open(settings)
        hub = Hub(db, buffer_bytes=settings.ws_process_buffer_bytes)
        try:
            await hub.start()
            app.state.services = Services(
                settings=settings,
                db=db,
                passwords=PasswordHasher(
                    time_cost=settings.argon2_time_cost,
                    memory_kib=settings.argon2_memory_kib,
                    parallelism=settings.argon2_parallelism,
                ),
                local_limits=MemoryRateLimiter(),
                shared_limits=DatabaseRateLimiter(db),
                hub=hub,
                sequencer=Sequencer(db, hub, settings.app_message_epoch_window),
                login_throttle=LoginThrottle(db),
            )
            yield
        finally:
            await hub.stop()
            await db.close()

    app = FastAPI(
        title="Delivery Service",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        # No Swagger/ReDoc pages: they load scripts from a CDN, and this origin holds
        # the web app's key vault. Point any OpenAPI viewer at /api/openapi.json.
        docs_url=None,
        redoc_url=None,
    )
    _install_error_handlers(app)
    app.include_router(auth.router)
    app.include_router(accounts.router)
    app.include_router(keypackages.router)
    # Before groups: /groups/joinable must not be taken for a group id.
    app.include_router(joins.router)
    app.include_router(groups.router)
    app.include_router(ws.router)

    @app.get("/api/health", tags=["meta"])
    async def health(request: Request) -> dict[str, Any]:
        """Liveness and readiness: the database answers."""
        services = services_of(request)

        async def ping(conn: Any) -> None:
            await conn.execute(text("SELECT 1"))

        await services.db.read(ping)
        return {"status": "ok"}

    @app.api_route(
        "/api/{path:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    async def api_not_found(path: str) -> None:
        """Unknown API paths are JSON 404s, never the web app's files."""
        raise NotFound(f"no API endpoint /api/{path}")

    _mount_static(app, settings.static_dir)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes,
                       timeout=settings.body_timeout_seconds)
    app.add_middleware(SecurityHeaders)
    return app


def _mount_static(app: FastAPI, directory: Path | None) -> None:
    """Serve the built web app at ``/``, after (so never shadowing) the API routes."""
    if directory is None:

        @app.get("/", include_in_schema=False)
        async def no_web_app() -> None:
            raise NotFound("the web app is not built (no web/dist and no STATIC_DIR)")

        return
    app.mount("/", WebAppFiles(directory), name="static")
