"""``python -m mls.interop serve|run``: see :mod:`mls.interop`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_CONFIGS = Path(__file__).resolve().parents[3] / "interop" / "configs"


def _suites(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mls.interop")
    sub = ap.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="serve this library as an MLSClient gRPC endpoint")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=50051, help="0 picks a free port")
    s.add_argument("--suites", type=_suites, default=None,
                   help="comma-separated cipher suites to offer (default: 1-7)")

    r = sub.add_parser("run", help="run scenario configs against MLSClient endpoints")
    r.add_argument("configs", nargs="*", type=Path,
                   help=f"scenario files (default: every file in {DEFAULT_CONFIGS})")
    r.add_argument("--client", action="append", required=True, metavar="[LABEL=]HOST:PORT",
                   help="an MLSClient endpoint; repeat for each")
    r.add_argument("--suites", type=_suites, default=None,
                   help="comma-separated cipher suites (default: all the endpoints have)")
    r.add_argument("--handshake", choices=("all", "public", "private"), default="all")
    r.add_argument("--mode", choices=("rotate", "all", "random"), default="rotate")
    r.add_argument("--only", action="append", default=[], metavar="FILE[/SCRIPT]",
                   help="run only these scripts, e.g. commit or commit/add")
    r.add_argument("--max-steps", type=int, default=None,
                   help="cut every script to its first N steps")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--json", type=Path, default=None, help="write every result here")
    a = ap.parse_args(argv)

    if a.command == "serve":
        from .service import serve

        serve(a.host, a.port, a.suites)
        return 0

    from .runner import Matrix, endpoint, load_scripts, summary, to_json

    configs = a.configs or sorted(DEFAULT_CONFIGS.glob("*.json"))
    scripts = load_scripts(configs, a.only, a.max_steps)
    endpoints = [endpoint(spec) for spec in a.client]
    handshakes = {"all": (False, True), "public": (False,), "private": (True,)}[a.handshake]
    matrix = Matrix(endpoints, a.suites, handshakes, a.mode, a.seed)
    try:
        for script in scripts:
            for res in matrix.run_script(script):
                if not res.ok:
                    print(f"FAIL {res.script} suite {res.suite} {res.pairing}: {res.error}",
                          file=sys.stderr)
    finally:
        for ep in endpoints:
            ep.close()
    if a.json:
        a.json.write_text(to_json(matrix.results))
    print(summary(matrix.results))
    return 0 if all(r.ok for r in matrix.results) else 1


if __name__ == "__main__":
    sys.exit(main())
