"""Vault writes and bytes per message at history 10 and 10,000 (issue 12 §3-4).

    .venv/bin/python bench/bench_storage.py [--messages 100] [--histories 10 10000]

Two messengers on a real delivery server (PostgreSQL, server process), each over a
real :class:`~corecrypto.vault.Vault` (AES-256-GCM with ``cryptography``; the
browser's IndexedDB/WebCrypto pair writes the same records) whose storage is
metered: bytes are what reaches the storage (record version, nonce, ciphertext,
tag). For each history length, both conversations are first grown to that many
lines (stored through the messenger's own history layer, as if received), then
alice sends ``--messages`` lines to bob one at a time and each side's writes and
bytes per message are counted, as are the reads a restart needs to open the
conversation. Side by side in one run: the ratio 10,000 / 10 (goal: within 20%).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "delivery"))

from ds_harness import Postgres, ServerProcess  # noqa: E402

from corecrypto.chat import ChatMessage  # noqa: E402
from corecrypto.messenger import Messenger  # noqa: E402
from corecrypto.transport.http import HttpTransport  # noqa: E402
from corecrypto.vault import Vault  # noqa: E402
from corecrypto.vault.local import CryptographyCipher, MemoryStorage  # noqa: E402


class MeteredStorage(MemoryStorage):
    """The vault's storage, counting writes and bytes (what IndexedDB would get)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = self.bytes = self.reads = 0

    def reset(self) -> None:
        self.writes = self.bytes = self.reads = 0

    async def get(self, name: str) -> bytes | None:
        self.reads += 1
        return await super().get(name)

    async def put(self, name: str, data: bytes) -> None:
        self.writes += 1
        self.bytes += len(data)
        await super().put(name, data)


async def vault() -> tuple[Vault, MeteredStorage]:
    storage = MeteredStorage()
    v = await Vault.open(storage, CryptographyCipher(), idle_lock_seconds=None)
    await v.create("bench vault password")  # the KDF runs once; it is not measured
    return v, storage


async def wait(check: Any, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the bench's messages did not arrive")
        await asyncio.sleep(0.01)


def count_texts(m: Messenger, gid: bytes) -> int:
    return sum(1 for x in m.conversations[gid].messages if x.kind == "text")


async def grow(m: Messenger, gid: bytes, lines: int) -> None:
    conv = m.conversations[gid]
    for _ in range(lines - conv.count):
        msg = ChatMessage(secrets.token_hex(8), "someone/device", "an earlier line " * 4,
                          time.time(), index=conv.count, user="someone")
        await m.history.write_line(gid, msg)
        conv.count += 1
    await m.flush()


async def one_history(base_url: str, history: int, messages: int) -> dict[str, Any]:
    suffix = secrets.token_hex(3)
    people = []
    for name in ("alice", "bob"):
        v, storage = await vault()
        m = Messenger(HttpTransport(base_url), v)
        user, password = f"{name}{suffix}", f"bench password {name} {suffix}"
        await m.register(user, password)
        await m.login_new_device(user, password)
        await m.sync()
        m.start()
        people.append((m, storage))
    (alice, a_store), (bob, b_store) = people
    conv = await alice.create_conversation("Bench", [bob.user_id])
    gid = conv.group_id
    await wait(lambda: gid in bob.conversations)
    await grow(alice, gid, history)
    await grow(bob, gid, history)
    await alice.send_text(gid, "warm-up")
    await wait(lambda: count_texts(bob, gid) == 1)
    await bob.flush()
    a_store.reset()
    b_store.reset()
    t0 = time.perf_counter()
    for i in range(messages):
        await alice.send_text(gid, f"measured line {i}")
        await wait(lambda i=i: count_texts(bob, gid) == i + 2)
    elapsed = time.perf_counter() - t0
    await alice.flush()
    await bob.flush()
    out = {"history": history, "messages": messages,
           "send": {"writes_per_msg": a_store.writes / messages,
                    "bytes_per_msg": a_store.bytes / messages},
           "receive": {"writes_per_msg": b_store.writes / messages,
                       "bytes_per_msg": b_store.bytes / messages},
           "ms_per_msg_round_trip": elapsed * 1e3 / messages}
    for m, _ in people:
        await m.stop()
    b_store.reset()
    t0 = time.perf_counter()
    reopened = await Messenger.load(HttpTransport(base_url), bob.store)
    assert reopened is not None
    out["open"] = {"reads": b_store.reads, "ms": (time.perf_counter() - t0) * 1e3,
                   "lines_loaded": len(reopened.conversations[gid].messages)}
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    pg = Postgres.start()
    name = f"bench_storage_{secrets.token_hex(3)}"
    url = pg.create_database(name)
    server = ServerProcess({"DATABASE_URL": url},
                           log_dir=Path(tempfile.mkdtemp(prefix="bench-storage-"))).start()
    try:
        runs = []
        for h in args.histories:
            r = await one_history(server.base_url, h, args.messages)
            print(f"history {r['history']:>6}: send {r['send']['writes_per_msg']:.2f} writes "
                  f"{r['send']['bytes_per_msg']:.0f} B/msg; receive "
                  f"{r['receive']['writes_per_msg']:.2f} writes "
                  f"{r['receive']['bytes_per_msg']:.0f} B/msg; open: {r['open']['reads']} "
                  f"reads, {r['open']['ms']:.0f} ms", file=sys.stderr)
            runs.append(r)
        first, last = runs[0], runs[-1]
        ratios = {f"{side}_{k}": last[side][k] / first[side][k]
                  for side in ("send", "receive") for k in ("writes_per_msg", "bytes_per_msg")}
        print("ratio " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()), file=sys.stderr)
        return {"runs": runs, f"ratio_{last['history']}_to_{first['history']}": ratios}
    finally:
        server.stop()
        pg.drop_database(name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--histories", type=int, nargs="+", default=[10, 10_000])
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
