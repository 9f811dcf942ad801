"""Post-quantum suites against suite 1: sizes and the time of each group operation.

    .venv/bin/python bench/bench_pq.py [--sizes 10,100,1000] [--suites 1,0x4f,0xf0d6]
                                       [--no-browser] [--json FILE]

Runs ``bench/pq_ops.py`` (KeyPackage, add with its Welcome, join, update, remove,
external commit, application messages) at each group size on CPython (provider:
``cryptography``) and in headless Chromium (Pyodide with the JS provider: noble's
ML-KEM, libsodium's X25519), and prints each suite next to suite 1 with the ratio.
Numbers are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the browser tests' server and Chromium set-up
sys.path.insert(0, str(ROOT / "src"))

from bench.bench_pyodide import selfcheck_page  # noqa: E402
from bench.pq_ops import measure  # noqa: E402

from mls.crypto import SUITES  # noqa: E402
from mls.crypto.cpython import CPythonProvider  # noqa: E402

OPS = Path(__file__).with_name("pq_ops.py")


def run_cpython(suites: list[int], sizes: list[int]) -> list[dict[str, Any]]:
    provider = CPythonProvider()
    return [measure(provider, s, n, 3 if n < 1000 else 1) for n in sizes for s in suites]


def run_chromium(suites: list[int], sizes: list[int]) -> list[dict[str, Any]]:
    source = OPS.read_text(encoding="utf-8")
    results = []
    with selfcheck_page() as (_context, page):
        page.evaluate(
            "async (code) => (await globalThis.mlsPython).runPython(code)", source
        )
        for n in sizes:
            for s in suites:
                code = (
                    "import json\nfrom mls.crypto import default_provider\n"
                    f"json.dumps(measure(default_provider(), {s}, {n}, "
                    f"{3 if n < 1000 else 1}))"
                )
                results.append(json.loads(page.evaluate(
                    "async (code) => (await globalThis.mlsPython).runPython(code)", code
                )))
                print(f"  chromium: suite {s:#06x} n={n} done", file=sys.stderr)
    return results


def table(title: str, results: list[dict[str, Any]], base: int = 1) -> str:
    lines = [f"## {title}", ""]
    by = {(r["suite"], r["n"]): r for r in results}
    for n in sorted({r["n"] for r in results}):
        suites = [s for s in dict.fromkeys(r["suite"] for r in results) if (s, n) in by]
        header = f"| N = {n} | " + " | ".join(f"{s:#06x}" for s in suites)
        lines += [header + " |", "|---" * (len(suites) + 1) + "|"]
        ref = by.get((base, n))
        for kind, unit in (("bytes", "B"), ("ms", "ms")):
            for key in by[(suites[0], n)][kind]:
                cells = []
                for s in suites:
                    v = by[(s, n)][kind][key]
                    cell = f"{v:,.0f}" if kind == "bytes" else f"{v:,.2f}"
                    if ref is not None and s != base and ref[kind][key]:
                        cell += f" (x{v / ref[kind][key]:.1f})"
                    cells.append(cell)
                lines.append(f"| {key} ({unit}) | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--suites", default="1,0x4f,0xf0d6")
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    suites = [int(x, 0) for x in args.suites.split(",")]
    for s in suites:
        if s not in SUITES:
            sys.exit(f"unknown suite {s:#06x}")
    out: dict[str, Any] = {"cpython": run_cpython(suites, sizes)}
    print(table("CPython (cryptography)", out["cpython"]))
    if not args.no_browser:
        out["chromium"] = run_chromium(suites, sizes)
        print(table("Chromium (Pyodide, JS provider)", out["chromium"]))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
