"""Shared test configuration: where the official MLS test vectors live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

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


# Hypothesis runs derandomized by default, so every run of the suite draws the same
# examples (a failure reproduces; nothing depends on luck). The random long run is a
# separate command: HYPOTHESIS_PROFILE=soak .venv/bin/python -m pytest tests -k "random
# or mutated or fuzz" (see README), where SOAK scales the example counts.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("soak", derandomize=False, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
SOAK = 20 if os.environ.get("HYPOTHESIS_PROFILE") == "soak" else 1


def examples(n: int) -> int:
    """``n`` examples in the default run, ``SOAK`` times as many in the soak run."""
    return n * SOAK
