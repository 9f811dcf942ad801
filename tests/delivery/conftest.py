"""Fixtures of the delivery tests: a real PostgreSQL, real server processes, real MLS.

Each pytest-xdist worker gets its own databases (named after the worker and the
process) and its own server process; tests create their own users and groups,
so they can share that server.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ds_client import Device, register_device
from ds_harness import Postgres, ServerProcess


@pytest.fixture(scope="session")
def postgres() -> Postgres:
    return Postgres.start()


@pytest.fixture(scope="session")
def db_prefix(worker_id: str) -> str:
    return f"ds_test_{worker_id}_{os.getpid()}"


@pytest.fixture(scope="session")
def database_factory(postgres: Postgres, db_prefix: str) -> Iterator[Callable[[], str]]:
    """Creates fresh databases for this worker; drops them at the end of the session."""
    created: list[str] = []

    def make() -> str:
        name = f"{db_prefix}_{len(created)}"
        created.append(name)
        return postgres.create_database(name)

    yield make
    for name in created:
        postgres.drop_database(name)


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("delivery-logs")


@pytest.fixture(scope="session")
def database_url(database_factory: Callable[[], str]) -> str:
    return database_factory()


class _Servers:
    """Starts server processes and stops them all when its scope ends, so that idle
    servers of finished tests hold no PostgreSQL connections."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[ServerProcess] = []

    def __call__(self, database_url: str, **env: str) -> ServerProcess:
        proc = ServerProcess({"DATABASE_URL": database_url, **env}, log_dir=self.log_dir)
        self.started.append(proc)
        return proc.start()

    def stop_all(self) -> None:
        for proc in self.started:
            proc.stop()


@pytest.fixture
def server_factory(
    log_dir: Path, database_factory: Callable[[], str]
) -> Iterator[Callable[..., ServerProcess]]:
    """Starts server processes for one test (stopped after it, before their databases
    are dropped at the end of the session)."""
    del database_factory  # depended on only for the teardown order
    servers = _Servers(log_dir)
    yield servers
    servers.stop_all()


@pytest.fixture(scope="module")
def module_server_factory(
    log_dir: Path, database_factory: Callable[[], str]
) -> Iterator[Callable[..., ServerProcess]]:
    """:func:`server_factory` for servers shared by a module's tests."""
    del database_factory
    servers = _Servers(log_dir)
    yield servers
    servers.stop_all()


@pytest.fixture(scope="session")
def server(log_dir: Path, database_url: str) -> Iterator[ServerProcess]:
    """The worker's shared server process."""
    servers = _Servers(log_dir)
    yield servers(database_url)
    servers.stop_all()


@pytest.fixture
def base_url(server: ServerProcess) -> str:
    return server.base_url


@pytest.fixture
async def make_device(base_url: str) -> AsyncIterator[Callable[..., Awaitable[Device]]]:
    """``await make_device()``: a new user with one registered, logged-in device."""
    devices: list[Device] = []

    async def make(url: str | None = None) -> Device:
        device = await register_device(url or base_url)
        devices.append(device)
        return device

    yield make
    for device in devices:
        await device.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the shared server's database, to check what is stored."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()
