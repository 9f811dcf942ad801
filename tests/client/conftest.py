"""A real delivery server (PostgreSQL + server process) for client tests,
reusing the delivery tests' harness."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "delivery"))

from ds_harness import Postgres, ServerProcess


@pytest.fixture(scope="session")
def client_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    pg = Postgres.start()
    name = f"client_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"
    url = pg.create_database(name)
    proc = ServerProcess({"DATABASE_URL": url},
                         log_dir=tmp_path_factory.mktemp("client-server-logs")).start()
    yield proc
    proc.stop()
    pg.drop_database(name)
