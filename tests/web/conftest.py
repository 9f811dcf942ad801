"""The web chat against the real server: a delivery-service process serving the
bundle, and headless Chromium with one browser context per user."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent / "delivery"))
sys.path.insert(0, str(HERE.parent / "browser"))
sys.path.insert(0, str(ROOT))

import build  # noqa: E402
from ds_harness import Postgres, ServerProcess  # noqa: E402

ARTIFACTS = ROOT / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    build.build()  # idempotent: only changed files are written
    pg = Postgres.start()
    name = f"web_e2e_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"
    url = pg.create_database(name)
    proc = ServerProcess({"DATABASE_URL": url, "STATIC_DIR": str(ROOT / "web" / "dist")},
                         log_dir=tmp_path_factory.mktemp("web-server-logs")).start()
    yield proc
    proc.stop()
    pg.drop_database(name)
