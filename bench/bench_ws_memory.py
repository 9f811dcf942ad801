"""Delivery Service memory with WebSocket clients that never read (issue 10, item 3).

The scenario of the report: one device, 60 stored messages of ~1.4 MB each (as
JSON), 8 WebSockets that authenticate and then never read (a 32 KiB receive
buffer). Prints the server's resident memory before, at the peak while it pushes,
and after it gave up on the stalled sockets, beside the reference a server that
queued everything per socket would need (8 x the stored bytes).

    .venv/bin/python bench/bench_ws_memory.py [--messages 60] [--sockets 8]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "delivery"))

from ds_client import register_device  # noqa: E402
from ds_harness import Postgres, ServerProcess  # noqa: E402
from test_delivery_limits import _gone, non_reading_socket, rss_bytes  # noqa: E402

MB = 1e6


async def run(messages: int, sockets: int, observe: float) -> None:
    pg = Postgres.start()
    name = f"bench_ws_memory_{secrets.token_hex(3)}"
    url = pg.create_database(name)
    srv = ServerProcess({"DATABASE_URL": url, "DS_WS_STALL_SECONDS": "10"},
                        log_dir=Path(tempfile.mkdtemp())).start()
    assert srv.proc is not None
    pid = srv.proc.pid
    try:
        alice = await register_device(srv.base_url)
        gid = await alice.create_group()
        blob = secrets.token_bytes(1_000_000)
        for i in range(messages):
            r = await alice.send(alice.mls.encrypt_message(gid, blob + bytes([i])))
            assert r.status_code == 201, r.text
        frame = len(json.dumps({"data": base64.b64encode(blob).decode()}))
        baseline = rss_bytes(pid)
        socks = [non_reading_socket(srv.port, alice.token) for _ in range(sockets)]
        started = time.monotonic()
        peak = baseline
        dropped = False
        while time.monotonic() - started < observe:
            peak = max(peak, rss_bytes(pid))
            if all(_gone(s) for s in socks):
                dropped = True
                break
            await asyncio.sleep(0.05)
        closed = time.monotonic() - started
        await asyncio.sleep(3)  # the trim runs a second after the last release
        after = rss_bytes(pid)
        print(f"{messages} stored messages of {frame / MB:.2f} MB, {sockets} sockets that "
              "never read")
        print(f"  server RSS baseline {baseline / MB:.0f} MB, peak {peak / MB:.0f} MB "
              f"(+{(peak - baseline) / MB:.0f} MB); "
              + (f"the stalled sockets were dropped after {closed:.0f} s" if dropped else
                 f"the sockets were still open after {closed:.0f} s")
              + f", then {after / MB:.0f} MB ({(after - baseline) / MB:+.0f} MB)")
        print(f"  queuing everything per socket would hold {sockets * messages * frame / MB:.0f}"
              " MB")
        for s in socks:
            s.close()
        await alice.close()
    finally:
        srv.stop()
        pg.drop_database(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=60)
    parser.add_argument("--sockets", type=int, default=8)
    parser.add_argument("--observe", type=float, default=120.0,
                        help="seconds to wait for the server to drop the sockets")
    args = parser.parse_args()
    asyncio.run(run(args.messages, args.sockets, args.observe))


if __name__ == "__main__":
    main()
