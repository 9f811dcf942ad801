"""Group operations at scale (issue 3), cipher suite 1.

    .venv/bin/python bench/bench_groups.py [--sizes 2 10 100 1000]

For a group of N members: adding one member (the committer's time, one other
member processing the commit, the joiner processing the Welcome), a
self-update commit and its processing, encrypt/decrypt of a 1 KiB message,
and the size of one member's exported state.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any, TypeVar

from mls.crypto import CipherSuite, default_provider
from mls.group import Group, Signer, create_key_package, join_from_welcome
from mls.proposals import Add

T = TypeVar("T")
PROVIDER = default_provider()
CS = CipherSuite(1, PROVIDER)


def timed(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    """``fn(*args)`` and how long it took, in ms."""
    t = time.perf_counter()
    out = fn(*args)
    return out, (time.perf_counter() - t) * 1e3


def build(n: int) -> tuple[Group, Group]:
    """A group of n members; returns (creator, one other member)."""
    creator = Group.create(PROVIDER, 1, f"bench-{n}".encode(), Signer.generate(CS, b"m/0"))
    bundles = [create_key_package(CS, Signer.generate(CS, f"m/{i}".encode()))
               for i in range(1, n)]
    out = creator.commit([Add(b.key_package) for b in bundles])
    creator.merge_pending_commit()
    other = join_from_welcome(PROVIDER, out.welcome or b"", bundles[-1])
    # Give every leaf a path so the tree is full, as in a long-lived group.
    out = other.commit()
    other.merge_pending_commit()
    creator.process(out.commit)
    return creator, other


def bench(n: int, reps: int) -> dict[str, float]:
    creator, other = build(n)
    r: dict[str, list[float]] = {k: [] for k in (
        "add_commit_ms", "add_process_ms", "welcome_join_ms", "update_commit_ms",
        "update_process_ms", "encrypt_1KiB_us", "decrypt_1KiB_us")}
    for i in range(reps):
        bundle = create_key_package(CS, Signer.generate(CS, f"joiner/{n}-{i}".encode()))
        out, ms = timed(creator.commit, [Add(bundle.key_package)])
        r["add_commit_ms"].append(ms)
        creator.merge_pending_commit()
        _, ms = timed(other.process, out.commit)
        r["add_process_ms"].append(ms)
        _, ms = timed(join_from_welcome, PROVIDER, out.welcome or b"", bundle)
        r["welcome_join_ms"].append(ms)
        out, ms = timed(other.commit)
        r["update_commit_ms"].append(ms)
        other.merge_pending_commit()
        _, ms = timed(creator.process, out.commit)
        r["update_process_ms"].append(ms)
    payload = bytes(1024)
    for _ in range(max(20, reps)):
        ct, ms = timed(creator.encrypt, payload)
        r["encrypt_1KiB_us"].append(ms * 1e3)
        _, ms = timed(other.process, ct)
        r["decrypt_1KiB_us"].append(ms * 1e3)
    out_stats = {k: statistics.median(v) for k, v in r.items()}
    out_stats["state_KiB"] = len(creator.export_state()) / 1024
    return out_stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2, 10, 100, 1000])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    rows = {n: bench(n, args.reps) for n in args.sizes}
    keys = list(next(iter(rows.values())))
    print(f"{'median':22}" + "".join(f"{'N=' + str(n):>11}" for n in rows))
    for k in keys:
        print(f"{k:22}" + "".join(f"{rows[n][k]:11.1f}" for n in rows))


if __name__ == "__main__":
    main()
