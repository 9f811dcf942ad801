"""This library against OpenMLS 0.9.2, side by side (issue 13 §4-5), suite 1.

    .venv/bin/python bench/bench_vs_openmls.py [--sizes 2 10 100 1000] [--large]
        [--reps 9] [--runs 3]

OpenMLS is timed inside Rust by ``bench/openmls`` (the ``openmls`` crate with
its RustCrypto provider, release build, cached under ``~/.cache`` by
``bench/openmls/build.sh``; only the first run pays for the build); this
library is timed inside Python, both on the same clock (process CPU time, or
wall time with ``--wall``). Both build the same tree shapes:

* the creator adds N-1 members in one commit (the bulk add), the last of them
  joins by Welcome and commits a self-update, the creator processes it;
* per repetition: the creator adds one member (commit, processing by the other
  member, the joiner's Welcome), then the other member commits a self-update
  the creator processes;
* 1 KiB application messages: creator encrypts, other member decrypts.

Handshakes are PublicMessages and the Welcome's GroupInfo carries the tree on
both sides. A commit's time includes serializing it and merging it; a
processing time includes parsing and merging. Each N runs in its own process
on each side, so the peak RSS reported is that group's. ``--large`` adds
N = 10,000 (the §5 scale run: the bulk add, the first full-path commit, its
processing and the join are reported with their peak memory).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from mls.crypto import CipherSuite, default_provider
from mls.group import Group, Signer, create_key_package, join_from_welcome
from mls.proposals import Add

T = TypeVar("T")
HERE = Path(__file__).resolve().parent
OPS = [
    ("add_commit_ms", "add: commit", "ms"),
    ("add_process_ms", "add: process", "ms"),
    ("welcome_join_ms", "add: join (Welcome)", "ms"),
    ("update_commit_ms", "self-update: commit", "ms"),
    ("update_process_ms", "self-update: process", "ms"),
    ("encrypt_1KiB_us", "1 KiB encrypt", "µs"),
    ("decrypt_1KiB_us", "1 KiB decrypt", "µs"),
    ("ed25519_sign_us", "the primitive: Ed25519 sign", "µs"),
    ("ed25519_verify_us", "the primitive: Ed25519 verify", "µs"),
]
SCALE = [
    ("bulk_add_ms", "bulk add of N-1 (commit)"),
    ("bulk_join_ms", "join by Welcome after bulk add"),
    ("first_update_ms", "first full-path commit"),
    ("first_process_ms", "processing it"),
]


#: Both sides read the same clock: the process's CPU time (the default; robust
#: when other jobs share the cores, and both programs are single-threaded) or,
#: with ``--wall``, wall-clock time.
CLOCK: list[Callable[[], float]] = [time.process_time]


def timed(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    """``fn(*args)`` and how long it took, in ms."""
    clock = CLOCK[0]
    t = clock()
    out = fn(*args)
    return out, (clock() - t) * 1e3


def peak_rss_kib() -> int:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def python_bench(n: int, reps: int, trace: bool) -> dict[str, float]:
    """Time this library on a group of ``n`` (one process per n)."""
    provider = default_provider()
    cs = CipherSuite(1, provider)
    res: dict[str, float] = {"n": n, "reps": reps}
    creator = Group.create(provider, 1, f"bench-{n}".encode(), Signer.generate(cs, b"m/0"))
    bundles = [create_key_package(cs, Signer.generate(cs, f"m/{i}".encode()))
               for i in range(1, n)]
    if trace:  # Python heap of the group operations below (slows them: timed apart)
        tracemalloc.start()

    def bulk(adds: list[Add]) -> bytes:
        out = creator.commit(adds)
        creator.merge_pending_commit()
        return out.welcome or b""

    welcome, res["bulk_add_ms"] = timed(bulk, [Add(b.key_package) for b in bundles])
    other, res["bulk_join_ms"] = timed(join_from_welcome, provider, welcome, bundles[-1])

    def update(g: Group) -> bytes:
        out = g.commit()
        g.merge_pending_commit()
        return out.commit

    commit, res["first_update_ms"] = timed(update, other)
    _, res["first_process_ms"] = timed(creator.process, commit)
    if trace:
        res["py_heap_peak_MiB"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()

    def add(bundle: Any) -> tuple[bytes, bytes]:
        out = creator.commit([Add(bundle.key_package)])
        creator.merge_pending_commit()
        return out.commit, out.welcome or b""

    r: dict[str, list[float]] = {k: [] for k, _, _ in OPS}
    for i in range(reps):
        bundle = create_key_package(cs, Signer.generate(cs, f"joiner/{n}-{i}".encode()))
        (commit, welcome), ms = timed(add, bundle)
        r["add_commit_ms"].append(ms)
        r["add_process_ms"].append(timed(other.process, commit)[1])
        r["welcome_join_ms"].append(timed(join_from_welcome, provider, welcome, bundle)[1])
        commit, ms = timed(update, other)
        r["update_commit_ms"].append(ms)
        r["update_process_ms"].append(timed(creator.process, commit)[1])
    payload = bytes(1024)
    for _ in range(max(200, reps)):
        ct, ms = timed(creator.encrypt, payload)
        r["encrypt_1KiB_us"].append(ms * 1e3)
        _, ms = timed(other.process, ct)
        r["decrypt_1KiB_us"].append(ms * 1e3)
    # The signature primitive alone (each message is signed and verified once,
    # RFC 9420 §6.1): what the provider's library costs, whatever wraps it.
    scheme = cs.signature_scheme
    sk, pk = cs.generate_signature_key_pair()
    sign = provider.signing_key(scheme, sk)
    data = bytes(1200)
    for _ in range(max(200, reps)):
        sig, ms = timed(sign, data)
        r["ed25519_sign_us"].append(ms * 1e3)
        ok, ms = timed(provider.verify, scheme, pk, data, sig)
        assert ok
        r["ed25519_verify_us"].append(ms * 1e3)
    res.update({k: statistics.median(v) for k, v in r.items() if v})
    res["state_KiB"] = len(creator.export_state()) / 1024
    res["peak_rss_kib"] = peak_rss_kib()
    return res


def run_python(n: int, reps: int, trace: bool, wall: bool) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--python-only", str(n), "--reps", str(reps)]
    if wall:
        cmd.append("--wall")
    if trace:
        cmd.append("--trace")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def openmls_binary() -> str:
    out = subprocess.run([str(HERE / "openmls" / "build.sh")], check=True,
                         capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def run_openmls(binary: str, n: int, reps: int, wall: bool) -> dict[str, float]:
    cmd = [binary, "--reps", str(reps), str(n)] + (["--wall"] if wall else [])
    out = subprocess.run(cmd, check=True,
                         capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def fmt(v: float) -> str:
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


Row = tuple[int, dict[str, float], dict[str, float], dict[str, float]]


def combine(runs: list[tuple[dict[str, float], dict[str, float]]]
            ) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Several side-by-side runs of one N: each side's median per key, and the
    median of the per-run ratios (each run's two sides saw the same load)."""
    keys = [k for k in runs[0][0] if isinstance(runs[0][0][k], int | float)]
    o = {k: statistics.median(r[0][k] for r in runs) for k in keys}
    p = {k: statistics.median(r[1][k] for r in runs) for k in runs[0][1]
         if isinstance(runs[0][1][k], int | float)}
    ratio = {k: statistics.median(r[1][k] / r[0][k] for r in runs)
             for k in keys if k in p and all(r[0][k] for r in runs)}
    return o, p, ratio


def table(rows: list[Row]) -> str:
    """Markdown: per operation and N, OpenMLS / Python and the ratio Python/OpenMLS."""
    head = "| operation | " + " | ".join(f"N={n}" for n, _, _, _ in rows) + " |"
    lines = [head, "|---" * (len(rows) + 1) + "|"]
    for key, label, unit in OPS:
        cells = [f"{fmt(o[key])} / {fmt(p[key])} ({q[key]:.2f}x)" for _, o, p, q in rows]
        lines.append(f"| {label} ({unit}) | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Cells: OpenMLS / Python (Python/OpenMLS). Group building, once per N:")
    lines.append("")
    lines.append(head)
    lines.append("|---" * (len(rows) + 1) + "|")
    for key, label in SCALE:
        cells = [f"{fmt(o[key])} / {fmt(p[key])} ({q[key]:.2f}x)" for _, o, p, q in rows]
        lines.append(f"| {label} (ms) | " + " | ".join(cells) + " |")
    cells = [f"{o['peak_rss_kib'] / 1024:.0f} / {p['peak_rss_kib'] / 1024:.0f}"
             for _, o, p, _ in rows]
    lines.append("| peak RSS (MiB) | " + " | ".join(cells) + " |")
    if any("py_heap_peak_MiB" in p for _, _, p, _ in rows):
        cells = [f"{p['py_heap_peak_MiB']:.0f}" if "py_heap_peak_MiB" in p else "-"
                 for _, _, p, _ in rows]
        lines.append("| Python heap peak while building (MiB, tracemalloc) | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[2, 10, 100, 1000])
    ap.add_argument("--large", action="store_true", help="also N = 10,000 (minutes)")
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--large-reps", type=int, default=2)
    ap.add_argument("--runs", type=int, default=1,
                    help="side-by-side runs per N, alternating; cells are medians over runs "
                         "and ratios the median of the per-run ratios")
    ap.add_argument("--trace", action="store_true",
                    help="also a separate Python run per N under tracemalloc (heap peak)")
    ap.add_argument("--wall", action="store_true",
                    help="wall-clock time instead of process CPU time (on an idle machine)")
    ap.add_argument("--openmls-bin", help="a prebuilt bench/openmls binary")
    ap.add_argument("--json", type=Path, help="write the raw numbers here")
    ap.add_argument("--python-only", type=int, metavar="N", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.wall:
        CLOCK[0] = time.perf_counter
    if args.python_only is not None:
        res = python_bench(args.python_only, args.reps, False)
        if args.trace:
            res["py_heap_peak_MiB"] = python_bench(args.python_only, 0, True)["py_heap_peak_MiB"]
        print(json.dumps(res))
        return
    binary = args.openmls_bin or openmls_binary()
    sizes = list(args.sizes) + ([10_000] if args.large else [])
    rows: list[Row] = []
    raw = []
    for n in sizes:
        reps = args.large_reps if n >= 10_000 else args.reps
        runs = [(run_openmls(binary, n, reps, args.wall),
                 run_python(n, reps, args.trace, args.wall))
                for _ in range(1 if n >= 10_000 else args.runs)]
        rows.append((n, *combine(runs)))
        raw.append({"n": n, "runs": [{"openmls": o, "python": p} for o, p in runs]})
        print(f"N={n}: done", file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
