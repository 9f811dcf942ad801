"""Group operations timed and sized in one cipher suite, runtime-neutral.

``bench/bench_pq.py`` runs :func:`measure` on CPython in-process and sends this
file's source to Pyodide in Chromium. Each operation starts from the same group
state (restored from an export, outside the timing), so operations do not change
the group size they are measured at.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from mls.crypto import CipherSuite, CryptoProvider
from mls.group import Group, Signer, create_key_package, join_external, join_from_welcome
from mls.message import MLSMessage
from mls.proposals import Add, Remove


def _timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median milliseconds over ``repeats`` calls, and the last result."""
    samples, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples), result


def measure(provider: CryptoProvider, suite: int, n: int, repeats: int = 3) -> dict[str, Any]:
    """Sizes (bytes) and times (ms) of each group operation in a group of ``n``."""
    cs = CipherSuite(suite, provider)
    ms: dict[str, float] = {}
    size: dict[str, int] = {}
    signers = [Signer.generate(cs, f"member {i}".encode()) for i in range(n + 11)]

    ms["key_package"], bundle = _timed(lambda: create_key_package(cs, signers[-1]), repeats)
    size["key_package"] = len(MLSMessage.wrap(bundle.key_package).serialize())

    alice = Group.create(provider, suite, b"bench group", signers[0])
    bundles = [create_key_package(cs, s) for s in signers[1:n]]
    if bundles:
        out = alice.commit([Add(b.key_package) for b in bundles])
        alice.merge_pending_commit()
        assert out.welcome is not None
        bob = join_from_welcome(provider, out.welcome, bundles[0])
    a_state, b_state = alice.export_state(), bob.export_state()
    extra = [create_key_package(cs, s) for s in signers[n : n + 10]]

    def from_a() -> Group:
        return Group.from_state(provider, a_state)

    def from_b() -> Group:
        return Group.from_state(provider, b_state)

    # Add one member: the commit, the Welcome (with and without the ratchet tree).
    def add(k: int, tree: bool = True) -> Any:
        g = from_a()
        return g.commit([Add(b.key_package) for b in extra[:k]], with_ratchet_tree=tree)

    ms["commit_add_1"], out = _timed(lambda: add(1), repeats)
    size["commit_add_1"] = len(out.commit)
    size["welcome_add_1"] = len(out.welcome)
    welcome_1 = out.welcome
    size["welcome_add_1_no_tree"] = len(add(1, tree=False).welcome)
    welcome_10 = len(add(10, tree=False).welcome)
    size["welcome_per_member"] = (welcome_10 - size["welcome_add_1_no_tree"]) // 9
    ms["join_welcome"], _ = _timed(
        lambda: join_from_welcome(provider, welcome_1, extra[0]), repeats
    )

    # Update (full UpdatePath) and its processing by another member.
    ms["commit_update"], out = _timed(lambda: from_a().commit(), repeats)
    size["commit_update"] = len(out.commit)
    update = out.commit
    bobs = [from_b() for _ in range(repeats)]
    ms["process_update"], _ = _timed(lambda: bobs.pop().process(update), repeats)

    # Remove the last member.
    ms["commit_remove"], out = _timed(lambda: from_a().commit([Remove(n - 1)]), repeats)
    size["commit_remove"] = len(out.commit)
    remove = out.commit
    bobs = [from_b() for _ in range(repeats)]
    ms["process_remove"], _ = _timed(lambda: bobs.pop().process(remove), repeats)

    # External commit from a GroupInfo, and its processing.
    gi = from_a().group_info()
    size["group_info"] = len(gi)
    ms["external_join"], ej = _timed(
        lambda: join_external(provider, gi, signers[n + 10]), repeats
    )
    size["external_commit"] = len(ej.commit)
    alices = [from_a() for _ in range(repeats)]
    ms["process_external"], _ = _timed(lambda: alices.pop().process(ej.commit), repeats)

    # An application message of 100 bytes.
    g_a = from_a()
    ms["encrypt"], ct = _timed(lambda: g_a.encrypt(bytes(100)), repeats)
    size["app_message_100"] = len(ct)
    cts = [g_a.encrypt(bytes(100)) for _ in range(repeats)]
    g_b = from_b()
    ms["decrypt"], _ = _timed(lambda: g_b.process(cts.pop(0)), repeats)
    return {"suite": suite, "n": n, "ms": ms, "bytes": size}
