"""This library in the browser against itself on CPython, side by side (issue 13).

    .venv/bin/python bench/bench_browser.py [--sizes 2 10 100 1000] [--reps 9] [--json FILE]

The operations and tree shapes of ``bench_vs_openmls.py`` (suite 1; add: commit,
process, join; self-update: commit, process; 1 KiB encrypt and decrypt), run from
``bench/group_ops.py`` in one run on CPython (the ``cryptography`` provider) and in
headless Chromium (the bundle's Pyodide with the JS provider of
``web/js/mls_crypto.mjs``), each step alternating between the two so that both see
the same machine load; printed with the ratio Pyodide/CPython.

Clocks: on CPython, the process's CPU time; in Chromium, the renderer main thread's
CPU time (``ThreadTime`` of the DevTools ``Performance`` domain, read around each
step, minus the median of an empty step), since Pyodide runs on that thread. CPU
time keeps the ratio meaningful when other jobs share the cores; ``--wall`` prints
the wall-clock medians measured inside each runtime instead. Medians over
``--reps`` repetitions; encrypt/decrypt are timed over batches of 50 messages,
three batches per repetition.
Numbers are reported, never asserted.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the browser tests' server and Chromium set-up
sys.path.insert(0, str(ROOT / "src"))

from bench.bench_pyodide import selfcheck_page  # noqa: E402
from bench.group_ops import STEPS, GroupSteps, per_op, sequence  # noqa: E402

from mls.crypto.cpython import CPythonProvider  # noqa: E402

OPS = Path(__file__).with_name("group_ops.py")
Result = dict[str, dict[str, float]]  # clock ("cpu", "wall") -> step -> median


def _local_step(steps: GroupSteps, name: str) -> float:
    return float(getattr(steps, name)())


class Samples:
    """Per-step samples of one runtime: CPU (the caller's clock) and wall (the step's)."""

    def __init__(self, call: Callable[[str], float], clock: Callable[[], float]) -> None:
        self.call, self.clock = call, clock
        self.cpu: dict[str, list[float]] = {}
        self.wall: dict[str, list[float]] = {}

    def step(self, name: str) -> None:
        t = self.clock()
        ms = self.call(name)
        self.cpu.setdefault(name, []).append((self.clock() - t) * 1e3)
        self.wall.setdefault(name, []).append(ms)

    def result(self) -> Result:
        """Medians in the table's units, the empty step's median subtracted from CPU."""
        base = statistics.median(self.cpu["noop"])
        med = statistics.median
        return {
            "cpu": {s: per_op(s, max(med(self.cpu[s]) - base, 0.0)) for s, _, _ in STEPS},
            "wall": {s: per_op(s, med(self.wall[s])) for s, _, _ in STEPS},
            "overhead_ms": {"noop": base},
        }


def run(sizes: list[int], reps: int) -> list[tuple[int, Result, Result]]:
    """Both runtimes, each step alternating between them so that both see the same
    machine load."""
    rows = []
    with selfcheck_page() as (context, page):
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")

        def thread_time() -> float:
            metrics = cdp.send("Performance.getMetrics")["metrics"]
            return float(next(m["value"] for m in metrics if m["name"] == "ThreadTime"))

        def call(step: str) -> float:
            return float(page.evaluate("(s) => globalThis.__steps[s]()", step))

        page.evaluate(
            "async (code) => { const py = await globalThis.mlsPython;"
            " py.runPython(code); globalThis.__benchPy = py; }",
            OPS.read_text(encoding="utf-8"),
        )
        for n in sizes:
            page.evaluate(
                "(n) => { const py = globalThis.__benchPy;"
                " py.runPython('from mls.crypto import default_provider\\n'"
                " + 'assert default_provider().name == \"pyodide-js\"\\n'"
                " + `_b = GroupSteps(default_provider(), ${n})`);"
                " globalThis.__steps = py.globals.get('_b'); }",
                n,
            )
            local = GroupSteps(CPythonProvider(), n)
            cpython = Samples(functools.partial(_local_step, local), time.process_time)
            chromium = Samples(call, thread_time)
            for step in sequence(reps):
                cpython.step(step)
                chromium.step(step)
            rows.append((n, cpython.result(), chromium.result()))
            print(f"  n={n} done", file=sys.stderr, flush=True)
    return rows


def fmt(v: float) -> str:
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def table(rows: list[tuple[int, Result, Result]], clock: str) -> str:
    """Markdown: per operation and N, CPython / Pyodide and the ratio Pyodide/CPython."""
    head = "| operation | " + " | ".join(f"N={n}" for n, _, _ in rows) + " |"
    lines = [head, "|---" * (len(rows) + 1) + "|"]
    for key, label, unit in STEPS:
        cells = []
        for _, c, p in rows:
            a, b = c[clock][key], p[clock][key]
            cells.append(f"{fmt(a)} / {fmt(b)} ({b / a:.2f}x)" if a else f"{fmt(a)} / {fmt(b)}")
        lines.append(f"| {label} ({unit}) | " + " | ".join(cells) + " |")
    lines += ["", f"Cells: CPython / Pyodide in Chromium (Pyodide/CPython), median {clock} time."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[2, 10, 100, 1000])
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--wall", action="store_true", help="wall-clock medians instead of CPU")
    ap.add_argument("--json", type=Path, help="write the raw numbers here")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    rows = run(args.sizes, args.reps)
    load = (load_before, os.getloadavg()[0])
    if args.json:
        args.json.write_text(json.dumps(
            {"load_1min": load, "rows": [{"n": n, "cpython": c, "pyodide": p} for n, c, p in rows]},
            indent=1))
    print(table(rows, "wall" if args.wall else "cpu"))
    # Both runtimes share the cores with whatever else runs: say how busy they were.
    print(f"Load average (1 min) before/after: {load[0]:.2f} / {load[1]:.2f} "
          f"on {os.cpu_count()} cores.")


if __name__ == "__main__":
    main()
