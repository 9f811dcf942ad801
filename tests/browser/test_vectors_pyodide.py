"""The MLS test vectors in Pyodide (under Node) give exactly CPython's results.

For each vector file both ``python -m mls.vectors FILE`` and ``python -m mls.vectors
--runtime pyodide FILE`` run, concurrently. Where CPython passes every case, Pyodide
must too: ``0 failed`` and the same pass count. Where CPython does not (a checker
still being written), Pyodide must fail the same cases, or stop with the same error:
the browser build neither hides nor adds a difference.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mls.vectors.pyodide_runtime import HARNESS

from .vector_runs import VECTOR_FILES, VECTORS, RunCache, mismatch


def test_vector_files_present() -> None:
    assert VECTOR_FILES, f"no *.json test vectors in {VECTORS} (set MLS_VECTORS_DIR)"


@pytest.mark.parametrize("path", VECTOR_FILES, ids=lambda p: p.name)
def test_pyodide_matches_cpython(path: Path, run_cache: RunCache) -> None:
    runs = run_cache.get([(path, "cpython"), (path, "pyodide")])
    cpython, pyodide = runs[(path, "cpython")], runs[(path, "pyodide")]
    problem = mismatch(cpython, pyodide)
    assert problem is None, f"Pyodide {problem}:\n{pyodide.describe()}"
    if cpython.summary is not None and cpython.summary[1] == 0:
        assert pyodide.summary == cpython.summary  # "N passed, 0 failed", N as on CPython
        assert pyodide.returncode == 0


def test_harness_without_node_modules_says_to_bootstrap(tmp_path: Path) -> None:
    """A checkout without node_modules gets told what to run, not a Node stack trace."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    shutil.copy(HARNESS, scripts / HARNESS.name)
    proc = subprocess.run(
        ["node", str(scripts / HARNESS.name)],
        input="{}",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "node_modules" in proc.stderr and "scripts/bootstrap.sh" in proc.stderr, proc.stderr
