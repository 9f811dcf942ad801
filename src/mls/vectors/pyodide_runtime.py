"""``python -m mls.vectors --runtime pyodide``: the same runner, inside Pyodide.

The vectors are checked by the very code of :mod:`mls.vectors.__main__`, run by
Pyodide under Node.js with :class:`mls.crypto.pyodide.PyodideProvider` (the JS
libraries the browser uses) instead of ``cryptography``. The Node harness
``scripts/pyodide_run.mjs`` copies this checkout's ``mls`` package and the vector
files into Pyodide's file system, at the same absolute paths and working directory
as here, so the output (``FAIL ...`` lines, then ``N passed, M failed``) and the exit
status are those a CPython run would give.

This needs a source checkout with ``node_modules`` installed (``scripts/bootstrap.sh``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

_MLS_DIR = Path(__file__).resolve().parents[1]
_REPO = _MLS_DIR.parents[1]
HARNESS = _REPO / "scripts" / "pyodide_run.mjs"


class PyodideUnavailable(RuntimeError):
    """Node.js or the harness is missing, so nothing can run in Pyodide."""


def _command() -> list[str]:
    node = shutil.which("node")
    if node is None:
        raise PyodideUnavailable("node (Node.js) is not on PATH: run ./scripts/bootstrap.sh")
    if not HARNESS.is_file():
        raise PyodideUnavailable(
            f"{HARNESS} is missing: the Pyodide runtime needs the project's source checkout"
        )
    return [node, str(HARNESS)]


def run_python(
    code: str,
    files: Sequence[str] = (),
    *,
    capture: bool = False,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in Pyodide under Node with ``mls`` importable and the crypto glue
    registered; ``files`` are made readable at their host paths.

    The exit status is that of ``python -c code``. Output goes to this process's
    stdout/stderr unless ``capture``. Raises :class:`PyodideUnavailable`.
    """
    job = {
        "packages": [str(_MLS_DIR)],
        # Resolved here: Pyodide's file system holds only the copied files, so a path
        # through a directory it lacks ("src/../x.json") would not resolve there.
        "files": [os.path.realpath(f) for f in files],
        "cwd": os.getcwd(),
        "code": code,
    }
    return subprocess.run(  # noqa: S603 - fixed executable and script, input is data
        _command(),
        input=json.dumps(job),
        text=True,
        capture_output=capture,
        timeout=timeout,
        check=False,
    )


def run_in_pyodide(files: Sequence[str], forced_type: str | None) -> int:
    """Run the vector files in Pyodide; prints what ``python -m mls.vectors`` prints
    and returns its exit status (2 if Pyodide cannot be started)."""
    resolved = [os.path.realpath(f) for f in files]
    argv = resolved if forced_type is None else ["--type", forced_type, *resolved]
    # Inside Pyodide the default runtime is the local one, whose provider is Pyodide's.
    code = f"from mls.vectors.__main__ import main\nraise SystemExit(main({argv!r}))\n"
    sys.stdout.flush()
    try:
        return run_python(code, files).returncode
    except PyodideUnavailable as e:
        print(f"python -m mls.vectors: {e}", file=sys.stderr)
        return 2
