"""The group operations of ``bench_vs_openmls.py`` as steps, runtime-neutral.

``bench/bench_browser.py`` runs these steps on CPython in-process and, by sending
this file's source to Pyodide in Chromium, in the browser with the JS provider.
Each step is one operation, timed by the caller around the call (so the caller
chooses the clock: process CPU time on CPython, the renderer's main-thread CPU
time in Chromium); each step also returns its own wall time in ms.

Shapes are those of ``bench_vs_openmls.py`` (RFC 9420 §12.4 commits, §12.4.3.1
Welcome): the creator adds N-1 members in one commit, the last joins by Welcome
and commits a self-update the creator processes; per repetition the creator adds
one member (commit; processing by the other member; the joiner's Welcome), then
the other member commits a self-update the creator processes; 1 KiB application
messages (§6.3) go from the creator to the other member, in batches because
browser timers are coarse.
"""

from __future__ import annotations

import time

from mls.crypto import CipherSuite, CryptoProvider
from mls.group import Group, KeyPackageBundle, Signer, create_key_package, join_from_welcome
from mls.proposals import Add

#: (step, label, unit) in table order; the batch steps report per message.
STEPS = [
    ("add_commit", "add: commit", "ms"),
    ("add_process", "add: process", "ms"),
    ("add_join", "add: join (Welcome)", "ms"),
    ("update_commit", "self-update: commit", "ms"),
    ("update_process", "self-update: process", "ms"),
    ("encrypt", "1 KiB encrypt", "µs"),
    ("decrypt", "1 KiB decrypt", "µs"),
]
BATCH = 50  # 1 KiB messages per encrypt/decrypt step


class GroupSteps:
    """A group of ``n`` (suite 1) and the operations measured on it."""

    def __init__(self, provider: CryptoProvider, n: int) -> None:
        self.provider = provider
        self.cs = CipherSuite(1, provider)
        self.n = n
        cs = self.cs
        self.creator = Group.create(provider, 1, f"bench-{n}".encode(),
                                    Signer.generate(cs, b"m/0"))
        bundles = [create_key_package(cs, Signer.generate(cs, f"m/{i}".encode()))
                   for i in range(1, n)]
        out = self.creator.commit([Add(b.key_package) for b in bundles])
        self.creator.merge_pending_commit()
        assert out.welcome is not None
        self.other = join_from_welcome(provider, out.welcome, bundles[-1])
        self.commit = self.other.commit().commit
        self.other.merge_pending_commit()
        self.creator.process(self.commit)
        self.joiner: KeyPackageBundle | None = None
        self.welcome = b""
        self.cts: list[bytes] = []
        self.reps = 0

    def prepare(self) -> float:
        """Untimed: the next joiner's KeyPackage."""
        self.reps += 1
        self.joiner = create_key_package(
            self.cs, Signer.generate(self.cs, f"joiner/{self.n}-{self.reps}".encode()))
        return 0.0

    def noop(self) -> float:
        """The caller's own overhead, to subtract."""
        return 0.0

    def add_commit(self) -> float:
        t = time.perf_counter()
        assert self.joiner is not None
        out = self.creator.commit([Add(self.joiner.key_package)])
        self.creator.merge_pending_commit()
        self.commit, self.welcome = out.commit, out.welcome or b""
        return (time.perf_counter() - t) * 1e3

    def add_process(self) -> float:
        t = time.perf_counter()
        self.other.process(self.commit)
        return (time.perf_counter() - t) * 1e3

    def add_join(self) -> float:
        t = time.perf_counter()
        assert self.joiner is not None
        join_from_welcome(self.provider, self.welcome, self.joiner)
        return (time.perf_counter() - t) * 1e3

    def update_commit(self) -> float:
        t = time.perf_counter()
        self.commit = self.other.commit().commit
        self.other.merge_pending_commit()
        return (time.perf_counter() - t) * 1e3

    def update_process(self) -> float:
        t = time.perf_counter()
        self.creator.process(self.commit)
        return (time.perf_counter() - t) * 1e3

    def encrypt(self) -> float:
        payload = bytes(1024)
        t = time.perf_counter()
        self.cts = [self.creator.encrypt(payload) for _ in range(BATCH)]
        return (time.perf_counter() - t) * 1e3

    def decrypt(self) -> float:
        t = time.perf_counter()
        for ct in self.cts:
            self.other.process(ct)
        return (time.perf_counter() - t) * 1e3


def sequence(reps: int) -> list[str]:
    """The steps of ``reps`` repetitions, in order (``prepare`` and ``noop`` included)."""
    # Messages are cheap and their medians the noisiest: three batches per repetition.
    one = ["prepare", "noop", *(s for s, _, _ in STEPS[:5]), *["encrypt", "decrypt"] * 3]
    return one * reps


def per_op(step: str, ms: float) -> float:
    """A step's time in its table unit (batches: per message, µs)."""
    return ms * 1e3 / BATCH if step in ("encrypt", "decrypt") else ms

