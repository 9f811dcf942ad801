"""pytest plugin for ``scripts/mutate_checks.py``: which lines of ``src/mls`` each test runs.

Loaded with ``-p mutation_trace`` (``scripts/`` on ``PYTHONPATH``). For every test it
records the lines executed in the files under ``$MUTATION_TRACE_SRC`` (setup, call
and teardown) and the test's duration, and writes them as JSON to
``$MUTATION_TRACE_OUT`` at the end of the session. The mutation run uses this map to
give each mutant only the tests that execute the mutated check, the ones that
reach its ``raise`` first, the quickest first.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Generator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

_SRC = str(Path(os.environ.get("MUTATION_TRACE_SRC", "src/mls")).resolve()) + os.sep
_lines: dict[str, dict[str, set[int]]] = {}
_durations: dict[str, float] = {}
_current: dict[str, set[int]] = {}


def _local(frame: FrameType, event: str, _arg: Any) -> Any:
    if event == "line":
        _current.setdefault(frame.f_code.co_filename, set()).add(frame.f_lineno)
    return _local


def _global(frame: FrameType, _event: str, _arg: Any) -> Any:
    # Only frames of the traced package get a (costly) line tracer.
    return _local if frame.f_code.co_filename.startswith(_SRC) else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None
                            ) -> Generator[None, None, None]:
    global _current  # noqa: PLW0603 - one test at a time, the tracer writes here
    _current = _lines.setdefault(item.nodeid, {})
    start = time.perf_counter()
    sys.settrace(_global)
    threading.settrace(_global)
    try:
        yield
    finally:
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type,unused-ignore]
        _durations[item.nodeid] = time.perf_counter() - start


def pytest_sessionfinish(session: pytest.Session) -> None:
    out = os.environ.get("MUTATION_TRACE_OUT")
    if not out:
        return
    tests = {
        nodeid: {
            "duration": _durations.get(nodeid, 0.0),
            "lines": {f[len(_SRC):]: sorted(ls) for f, ls in files.items()},
        }
        for nodeid, files in _lines.items()
    }
    Path(out).write_text(json.dumps({"tests": tests}))
