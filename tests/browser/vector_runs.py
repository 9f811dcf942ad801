"""Running ``python -m mls.vectors`` on the shared test vectors, and reading its output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import vectors_dir

from .harness import ROOT

try:
    VECTORS: Path | None = vectors_dir()
except FileNotFoundError:  # test_vector_files_present fails, saying so
    VECTORS = None
VECTOR_FILES = sorted(VECTORS.glob("*.json")) if VECTORS else []
_SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$")
_FAIL = re.compile(r"^FAIL .* case (\d+)[ :]")


@dataclass(frozen=True)
class RunnerOutput:
    """What one ``python -m mls.vectors`` run printed, parsed."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> tuple[int, int] | None:
        """(passed, failed) from the closing line, or None if the run did not finish."""
        lines = self.stdout.strip().splitlines()
        m = _SUMMARY.match(lines[-1]) if lines else None
        return (int(m[1]), int(m[2])) if m else None

    @property
    def failed_cases(self) -> list[int]:
        return sorted(int(m[1]) for line in self.stdout.splitlines() if (m := _FAIL.match(line)))

    @property
    def last_error_line(self) -> str:
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""

    def describe(self) -> str:
        out, err = self.stdout[-3000:], self.stderr[-3000:]
        return f"exit {self.returncode}\nstdout:\n{out}\nstderr:\n{err}"


def run_vectors(path: Path, runtime: str) -> RunnerOutput:
    """``python -m mls.vectors --runtime RUNTIME PATH`` in a subprocess."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "mls.vectors", "--runtime", runtime, str(path)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=ROOT,
        check=False,
    )
    return RunnerOutput(proc.returncode, proc.stdout, proc.stderr)


def mismatch(cpython: RunnerOutput, other: RunnerOutput) -> str | None:
    """Why ``other`` (a Pyodide run) differs from CPython's run of the same file, or None.

    Where CPython passes every case, ``other`` must too (0 failed, same pass count).
    Where it does not, ``other`` must fail the same cases, or stop with the same error
    when CPython cannot run the file at all (a checker still being written).
    """
    if cpython.summary is None:
        if other.summary is not None:
            return f"ran what CPython could not ({cpython.last_error_line})"
        if other.returncode == 0 or other.last_error_line != cpython.last_error_line:
            return f"stopped otherwise than CPython ({cpython.last_error_line})"
        return None
    if other.summary is None:
        return "did not finish"
    if other.failed_cases != cpython.failed_cases or other.summary != cpython.summary:
        return f"{other.summary} with failing cases {other.failed_cases}, CPython {cpython.summary}"
    if (other.returncode == 0) != (cpython.returncode == 0):
        return f"exit status {other.returncode}, CPython {cpython.returncode}"
    return None


class RunCache:
    """Vector runs by (file, runtime), each computed once per test session (per xdist
    worker), those asked for together concurrently."""

    def __init__(self) -> None:
        self._runs: dict[tuple[Path, str], RunnerOutput] = {}
        self._lock = threading.Lock()

    def get(self, jobs: Iterable[tuple[Path, str]]) -> dict[tuple[Path, str], RunnerOutput]:
        """The runs of ``jobs``; missing ones run in parallel, biggest files first."""
        jobs = list(jobs)
        with self._lock:
            todo = sorted(
                {job for job in jobs if job not in self._runs},
                key=lambda job: (job[0].stat().st_size, job[1]),
                reverse=True,
            )
            with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
                self._runs |= zip(todo, pool.map(lambda job: run_vectors(*job), todo), strict=True)
            return {job: self._runs[job] for job in jobs}
