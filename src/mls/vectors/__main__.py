"""``python -m mls.vectors [--type TYPE] [--runtime cpython|pyodide] FILE...``"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ..crypto import CryptoProvider, default_provider
from ..errors import MLSError
from .registry import TYPES, VectorMismatch, normalize_type, run_case, type_for_path


def run_files(
    paths: Sequence[str], forced_type: str | None, provider: CryptoProvider, out: list[str]
) -> tuple[int, int, bool]:
    """Run every case of every file; returns (passed, failed, all_files_usable)."""
    passed = failed = 0
    usable = True
    for path in paths:
        vtype = forced_type or type_for_path(path)
        if vtype is None:
            out.append(f"{path}: unknown vector type (use --type; known: {', '.join(TYPES)})")
            usable = False
            continue
        try:
            with open(path, encoding="utf-8") as f:
                cases = json.load(f)
        except (OSError, ValueError) as e:
            out.append(f"{path}: cannot read: {e}")
            usable = False
            continue
        if isinstance(cases, dict):
            cases = [cases]
        if not isinstance(cases, list):
            out.append(f"{path}: expected a JSON array of cases")
            usable = False
            continue
        for i, case in enumerate(cases):
            try:
                if not isinstance(case, dict):
                    raise VectorMismatch("case is not a JSON object")
                run_case(vtype, case, provider)
            except (VectorMismatch, MLSError, KeyError, TypeError, ValueError) as e:
                failed += 1
                suite = case.get("cipher_suite") if isinstance(case, dict) else None
                tag = f" (cipher_suite {suite})" if suite is not None else ""
                out.append(f"FAIL {path} case {i}{tag}: {type(e).__name__}: {e}")
            else:
                passed += 1
    return passed, failed, usable


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mls.vectors", description=__doc__)
    ap.add_argument("files", nargs="+", metavar="FILE")
    ap.add_argument("--type", dest="vtype", help="vector type for every FILE")
    ap.add_argument(
        "--runtime",
        choices=("cpython", "pyodide"),
        default="cpython",
        help="run here (cpython) or inside Pyodide under Node.js (pyodide)",
    )
    args = ap.parse_args(argv)
    forced = None
    if args.vtype is not None:
        forced = normalize_type(args.vtype)
        if forced is None:
            print(f"unknown vector type {args.vtype!r}; known: {', '.join(TYPES)}")
            return 2
    if args.runtime == "pyodide":
        from .pyodide_runtime import run_in_pyodide

        return run_in_pyodide(args.files, forced)
    lines: list[str] = []
    passed, failed, usable = run_files(args.files, forced, default_provider(), lines)
    for line in lines:
        print(line)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and usable else 1


if __name__ == "__main__":
    sys.exit(main())
