"""Shared test configuration: where the official MLS test vectors live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def vectors_dir() -> Path:
    """The vectors shipped in the repo, or ../shared beside a clean clone."""
    override = os.environ.get("MLS_VECTORS_DIR")
    candidates = [Path(override)] if override else []
    candidates += [ROOT / "tests" / "vectors", ROOT.parent / "shared" / "mls-test-vectors"]
    for c in candidates:
        if (c / "tree-math.json").exists():
            return c
    raise FileNotFoundError("MLS test vectors not found (tests/vectors or ../shared)")


@pytest.fixture(scope="session")
def vectors() -> Path:
    return vectors_dir()
