"""Delivery Service benchmark: throughput, push latency, and the PostgreSQL ceiling.

Runs against the machine's PostgreSQL 15 (fsync on, as installed), on a fresh
database, with real server processes (``python -m delivery serve``) and real MLS
messages (encrypted before the timed phases, so the load generator only posts):

(a) accepted messages/s for one busy group with 50 concurrently posting clients;
(b) accepted messages/s spread over 1,000 groups (50 clients, 20 groups each);
(c) end-to-end latency from POST to WebSocket delivery at 100 connected members
    (a paced sender; the 100 sockets are read by a separate process), p50/p99;

and, in the same run, pgbench with a script that issues the same statements the
server issues per accepted message (session lookup, group row lock, duplicate and
membership check, sequence bump and insert), on the same schema, with the same
client counts and group spread: the raw PostgreSQL ceiling. (a') repeats it with
the server's batched form for one busy group (25 messages per transaction, 50
outstanding). The server's NOTIFYs (after COMMIT, batched, asynchronous commit)
are not in the script.

    .venv/bin/python bench/bench_delivery.py [--servers 2] [--duration 10]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "delivery"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil  # noqa: E402
from delivery_load import RawHTTP  # noqa: E402
from ds_client import Device, b64, register_device  # noqa: E402
from ds_harness import Postgres, ServerProcess  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

POST_PATH = "/api/mls/messages/group"
BENCH_ENV = {
    # The hot path is what is measured: no client is throttled.
    "DS_RATE_MESSAGE_POST": "1000000/1",
    "DS_DB_POOL_SIZE": "20",
    "DS_DB_MAX_OVERFLOW": "0",
}


class CpuMeter:
    """CPU used during a phase: the system's, and ours (this process, its children,
    PostgreSQL), so that a run on a shared machine says how much was someone else's."""

    def __init__(self) -> None:
        self._start_sys = psutil.cpu_times()
        self._start_ours = self._ours()
        self._t0 = time.monotonic()

    @staticmethod
    def _ours() -> dict[int, float]:
        me = psutil.Process()
        procs = [me, *me.children(recursive=True)]
        procs += [p for p in psutil.process_iter(["username"]) if p.info["username"] == "postgres"]
        out = {}
        for p in procs:
            try:
                t = p.cpu_times()
                out[p.pid] = t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                pass
        return out

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self._t0
        end_sys = psutil.cpu_times()
        busy = sum(getattr(end_sys, f) - getattr(self._start_sys, f)
                   for f in ("user", "system", "nice", "irq", "softirq", "steal"))
        end = self._ours()
        ours = sum(v - self._start_ours.get(pid, 0.0) for pid, v in end.items())
        return {
            "cores_busy": busy / wall,
            "cores_ours": ours / wall,
            "cores_foreign": max(0.0, (busy - ours) / wall),
            "loadavg_1m": os.getloadavg()[0],
        }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


async def _devices(servers: list[ServerProcess], n: int) -> list[Device]:
    out: list[Device] = []
    for start in range(0, n, 25):  # Argon2id is the cost here; keep the batches modest
        batch = range(start, min(n, start + 25))
        out += await asyncio.gather(
            *(register_device(servers[i % len(servers)].base_url) for i in batch)
        )
    return out


async def _one_group(creator: Device, members: list[Device]) -> tuple[bytes, int]:
    """A group of ``creator`` and ``members`` (one commit adds them all)."""
    for m in members:
        await m.upload_key_packages(1)
    gid = await creator.create_group()
    if not members:
        return gid, 0
    kps = []
    for m in members:
        r = await creator.claim(m.user_id)
        kps.append(base64.b64decode(r.json()["key_packages"][0]["key_package"]))
    commit, welcome = creator.mls.add_members(gid, kps)
    r = await creator.send(commit, welcome)
    assert r.status_code == 201, r.text
    creator.mls.merge_pending_commit(gid)
    for m in members:
        await m.join_from_inbox()
    seq: int = r.json()["seq"]
    return gid, seq


async def _closed_loop(
    work: list[tuple[Device, list[bytes]]], duration: float
) -> tuple[int, float]:
    """Every client posts its messages back to back for ``duration`` seconds."""
    accepted = 0
    stop_at = time.monotonic() + duration + 1000  # set properly once all are connected

    async def client(device: Device, messages: list[bytes], ready: asyncio.Event) -> None:
        nonlocal accepted
        url = urlsplit(device.base_url)
        http = RawHTTP(url.hostname or "127.0.0.1", url.port or 80, device.token)
        await http.connect()
        bodies = [json.dumps({"message": b64(m)}).encode() for m in messages]
        await ready.wait()
        try:
            for body in bodies:
                if time.monotonic() >= stop_at:
                    return
                status, payload = await http.post(POST_PATH, body)
                if status != 201:
                    raise RuntimeError(f"POST failed: {status} {payload[:200]!r}")
                accepted += 1
        finally:
            await http.close()

    ready = asyncio.Event()
    tasks = [asyncio.create_task(client(d, m, ready)) for d, m in work]
    await asyncio.sleep(0.5)
    started = time.monotonic()
    stop_at = started + duration
    ready.set()
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    return accepted, elapsed


async def bench_one_group(servers: list[ServerProcess], clients: int, duration: float,
                          per_client: int) -> dict[str, Any]:
    devices = await _devices(servers, clients)
    gid, _ = await _one_group(devices[0], devices[1:])
    work = [(d, [d.mls.encrypt_message(gid, b"bench message %d" % i) for i in range(per_client)])
            for d in devices]
    size = len(work[0][1][0])
    meter = CpuMeter()
    accepted, elapsed = await _closed_loop(work, duration)
    cpu = meter.stop()
    for d in devices:
        await d.close()
    return {"accepted": accepted, "seconds": elapsed, "per_second": accepted / elapsed,
            "message_bytes": size, "cpu": cpu}


async def bench_many_groups(servers: list[ServerProcess], clients: int, groups: int,
                            duration: float, per_client: int) -> dict[str, Any]:
    devices = await _devices(servers, clients)
    per_device = groups // clients
    work = []
    for d in devices:
        gids = [await d.create_group() for _ in range(per_device)]
        messages = [d.mls.encrypt_message(gids[i % per_device], b"bench message %d" % i)
                    for i in range(per_client)]
        work.append((d, messages))
    meter = CpuMeter()
    accepted, elapsed = await _closed_loop(work, duration)
    cpu = meter.stop()
    for d in devices:
        await d.close()
    return {"accepted": accepted, "seconds": elapsed, "per_second": accepted / elapsed,
            "groups": per_device * clients, "cpu": cpu}


async def bench_latency(servers: list[ServerProcess], members: int, rate: float,
                        count: int) -> dict[str, Any]:
    devices = await _devices(servers, members)
    sender = devices[0]
    gid, add_seq = await _one_group(sender, devices[1:])
    spec = {
        "group_id": base64.urlsafe_b64encode(gid).decode().rstrip("="),
        "after": add_seq,
        "count": count,
        "sockets": [
            {"url": servers[i % len(servers)].ws_url, "token": d.token}
            for i, d in enumerate(devices)
        ],
    }
    messages = [sender.mls.encrypt_message(gid, b"latency probe %d" % i) for i in range(count)]
    receivers = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--receivers",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    assert receivers.stdin is not None and receivers.stdout is not None
    receivers.stdin.write(json.dumps(spec).encode() + b"\n")
    await receivers.stdin.drain()
    receivers.stdin.close()
    line = await asyncio.wait_for(receivers.stdout.readline(), 120)
    assert line.strip() == b"READY", line

    url = urlsplit(sender.base_url)
    http = RawHTTP(url.hostname or "127.0.0.1", url.port or 80, sender.token)
    await http.connect()
    meter = CpuMeter()
    sent_at: dict[int, float] = {}
    interval = 1.0 / rate
    next_at = time.monotonic()
    for m in messages:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        next_at += interval
        t0 = time.monotonic()
        status, body = await http.post_json(POST_PATH, {"message": b64(m)})
        assert status == 201, body
        sent_at[body["seq"]] = t0
    await http.close()
    out, _ = await asyncio.wait_for(receivers.communicate(), 120)
    cpu = meter.stop()
    received = json.loads(out)
    latencies = [(t - sent_at[seq]) * 1000 for per_socket in received for seq, t in per_socket
                 if seq in sent_at]
    expected = count * len(devices)
    for d in devices:
        await d.close()
    return {
        "members": len(devices),
        "messages": count,
        "rate_per_second": rate,
        "deliveries": len(latencies),
        "missing": expected - len(latencies),
        "p50_ms": statistics.median(latencies),
        "p99_ms": _percentile(latencies, 0.99),
        "max_ms": max(latencies),
        "cpu": cpu,
    }


async def _receivers_main() -> None:
    """Subprocess: hold the sockets, timestamp every delivery, print them as JSON."""
    spec = json.loads(sys.stdin.readline())
    conns = []
    for s in spec["sockets"]:
        conn = await connect(s["url"], max_size=2**22)
        await conn.send(json.dumps({"type": "auth", "token": s["token"],
                                    "cursors": {spec["group_id"]: spec["after"]},
                                    "welcome_after": 1}))
        ready = json.loads(await conn.recv())
        assert ready["type"] == "ready", ready
        conns.append(conn)
    print("READY", flush=True)

    async def collect(conn: Any) -> list[tuple[int, float]]:
        got: list[tuple[int, float]] = []
        try:
            while len(got) < spec["count"]:
                frame = await asyncio.wait_for(conn.recv(), 30)
                now = time.monotonic()
                event = json.loads(frame)
                if event.get("type") == "mls-message":
                    got.append((event["seq"], now))
        except TimeoutError:
            pass
        await conn.close()
        return got

    results = await asyncio.gather(*(collect(c) for c in conns))
    print(json.dumps(results))


def pgbench(pg_url: str, script: str, clients: int, duration: float) -> float:
    """Run pgbench with ``script``; return transactions per second."""
    u = urlsplit(pg_url)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as fh:
        fh.write(script)
        path = fh.name
    env = {**os.environ, "PGPASSWORD": u.password or "", "PGSSLMODE": "disable"}
    cmd = ["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", "2",
           "-T", str(int(duration)), "-f", path, "-h", u.hostname or "127.0.0.1",
           "-p", str(u.port or 5432), "-U", u.username or "postgres", u.path.lstrip("/")]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    os.unlink(path)
    match = re.search(r"tps = ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


_PGBENCH_SEED = """
INSERT INTO users (username, password_hash) VALUES ('pgbench', 'x');
INSERT INTO devices (user_id, device_id, cipher_suite, signature_key)
    SELECT 1, 'd' || i, 1, int8send(i) FROM generate_series(1, {groups}) i;
INSERT INTO sessions (token_hash, user_id, device_pk, expires_at)
    VALUES (sha256('token'::bytea), 1, 1, now() + interval '1 day');
INSERT INTO mls_groups (group_id, cipher_suite, created_by)
    SELECT int8send(i), 1, i FROM generate_series(1, {groups}) i;
INSERT INTO mls_group_members (group_id, user_id, device_id, leaf_index, joined_epoch,
                               joined_seq, welcomed)
    SELECT i, 1, i, 0, 0, 0, true FROM generate_series(1, {groups}) i;
"""

# The statements the server runs for one accepted application message.
_PGBENCH_SCRIPT = """
{choose}
SELECT s.id, u.username, d.device_id FROM sessions s JOIN users u ON u.id = s.user_id
    LEFT JOIN devices d ON d.id = s.device_pk
    WHERE s.token_hash = sha256('token'::bytea) AND s.expires_at > now();
BEGIN;
SELECT id, cipher_suite, epoch, last_seq FROM mls_groups WHERE group_id = int8send(:g::bigint)
    FOR UPDATE;
SELECT (SELECT leaf_index FROM mls_group_members WHERE group_id = :g AND device_id = :g
        AND removed_seq IS NULL),
       (SELECT seq FROM mls_messages WHERE group_id = :g
        AND digest = sha256(random()::text::bytea));
UPDATE mls_groups SET last_seq = last_seq + 1, epoch = epoch, updated_at = now() WHERE id = :g;
INSERT INTO mls_messages (group_id, seq, sender_device, content_type, data, digest, epoch)
    SELECT :g, last_seq, :g, 'application', decode(repeat(md5(random()::text), {blocks}), 'hex'),
           sha256(clock_timestamp()::text::bytea || random()::text::bytea), 0
    FROM mls_groups WHERE id = :g;
END;
"""


# The same, for a batch of messages per transaction (what the server does for one busy
# group): one lock, one membership and one digest lookup, one multi-row insert.
_PGBENCH_BATCH_SCRIPT = """
\\set g 1
SELECT s.id, u.username, d.device_id FROM sessions s JOIN users u ON u.id = s.user_id
    LEFT JOIN devices d ON d.id = s.device_pk
    WHERE s.token_hash = sha256('token'::bytea) AND s.expires_at > now();
BEGIN;
SELECT id, cipher_suite, epoch, last_seq FROM mls_groups WHERE group_id = int8send(:g::bigint)
    FOR UPDATE;
SELECT device_id, leaf_index FROM mls_group_members WHERE group_id = :g AND device_id = ANY(
    ARRAY[:g::bigint]) AND removed_seq IS NULL;
SELECT digest FROM mls_messages WHERE group_id = :g AND digest = ANY(
    ARRAY(SELECT sha256(random()::text::bytea) FROM generate_series(1, {batch})));
INSERT INTO mls_messages (group_id, seq, sender_device, content_type, data, digest, epoch)
    SELECT :g, g.last_seq + i, :g, 'application',
           decode(repeat(md5(random()::text), {blocks}), 'hex'),
           sha256(clock_timestamp()::text::bytea || random()::text::bytea || i::text::bytea), 0
    FROM mls_groups g, generate_series(1, {batch}) i WHERE g.id = :g;
UPDATE mls_groups SET last_seq = last_seq + {batch}, updated_at = now() WHERE id = :g;
END;
"""


def pgbench_ceilings(postgres: Postgres, tag: str, clients: int, groups: int,
                     message_bytes: int, duration: float) -> dict[str, float]:
    url = postgres.create_database(f"bench_delivery_{tag}_pgbench")
    subprocess.run([sys.executable, "-m", "delivery", "migrate"], check=True,
                   env={**os.environ, "DATABASE_URL": url}, capture_output=True)
    u = urlsplit(url)
    subprocess.run(
        ["psql", "-q", "-h", u.hostname or "", "-U", u.username or "", "-d", u.path.lstrip("/"),
         "-c", _PGBENCH_SEED.format(groups=groups)],
        env={**os.environ, "PGPASSWORD": u.password or "", "PGSSLMODE": "disable"},
        check=True, capture_output=True)
    blocks = max(1, message_bytes // 16)
    one = pgbench(url, _PGBENCH_SCRIPT.format(choose=r"\set g 1", blocks=blocks),
                  clients, duration)
    many = pgbench(url, _PGBENCH_SCRIPT.format(choose=f"\\set g random(1, {groups})",
                                               blocks=blocks), clients, duration)
    # 50 messages outstanding as 2 transactions of 25, as the server batches them.
    batched = 25 * pgbench(url, _PGBENCH_BATCH_SCRIPT.format(batch=25, blocks=blocks),
                           clients // 25, duration)
    postgres.drop_database(f"bench_delivery_{tag}_pgbench")
    return {"one_group": one, "many_groups": many, "one_group_batched": batched}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    postgres = Postgres.start()
    fsync = subprocess.run(["su", "postgres", "-c", "psql -Atc 'show fsync'"],
                           capture_output=True, text=True, check=False).stdout.strip()
    tag = str(os.getpid())
    url = postgres.create_database(f"bench_delivery_{tag}")
    log_dir = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    servers = [ServerProcess({"DATABASE_URL": url, **BENCH_ENV}, log_dir=log_dir).start()
               for _ in range(args.servers)]
    try:
        print(f"PostgreSQL fsync={fsync or '?'}; {args.servers} server process(es)",
              file=sys.stderr)
        one = await bench_one_group(servers, args.clients, args.duration, args.per_client)
        print(f"(a) one group: {one['per_second']:.0f} msg/s", file=sys.stderr)
        many = await bench_many_groups(servers, args.clients, args.groups, args.duration,
                                       args.per_client)
        print(f"(b) {many['groups']} groups: {many['per_second']:.0f} msg/s", file=sys.stderr)
        latency = await bench_latency(servers, args.members, args.rate, args.latency_messages)
        print(f"(c) latency p50 {latency['p50_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms",
              file=sys.stderr)
    finally:
        for s in servers:
            s.stop()
        postgres.drop_database(f"bench_delivery_{tag}")
    ceiling = pgbench_ceilings(postgres, tag, args.clients, args.groups,
                               one["message_bytes"], args.duration)
    return {
        "fsync": fsync,
        "servers": args.servers,
        "cpus": os.cpu_count(),
        "one_group": {**one, "pgbench_tps": ceiling["one_group"],
                      "ratio": one["per_second"] / ceiling["one_group"],
                      "pgbench_batched_rows_per_second": ceiling["one_group_batched"],
                      "ratio_batched": one["per_second"] / ceiling["one_group_batched"]},
        "many_groups": {**many, "pgbench_tps": ceiling["many_groups"],
                        "ratio": many["per_second"] / ceiling["many_groups"]},
        "latency": latency,
    }


def _report(result: dict[str, Any]) -> str:
    one, many, lat = result["one_group"], result["many_groups"], result["latency"]
    return "\n".join([
        f"PostgreSQL 15, fsync={result['fsync']}, {result['servers']} server process(es), "
        f"{result['cpus']} CPUs",
        "| measure | delivery service | pgbench (same statements) | ratio |",
        "|---|---|---|---|",
        f"| (a) 1 group, 50 clients | {one['per_second']:.0f} msg/s | "
        f"{one['pgbench_tps']:.0f} tx/s | {one['ratio']:.2f} |",
        f"| (a') the same, pgbench also 25 messages per transaction | | "
        f"{one['pgbench_batched_rows_per_second']:.0f} msg/s | {one['ratio_batched']:.2f} |",
        f"| (b) {many['groups']} groups, 50 clients | {many['per_second']:.0f} msg/s | "
        f"{many['pgbench_tps']:.0f} tx/s | {many['ratio']:.2f} |",
        f"| (c) POST -> WebSocket, {lat['members']} members, {lat['rate_per_second']:.0f} msg/s "
        f"| p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms "
        f"(max {lat['max_ms']:.1f}, {lat['deliveries']} deliveries, {lat['missing']} missing) "
        "| | |",
        "",
        "CPU cores busy during (a), (b), (c) — all / this benchmark / other processes: "
        + "; ".join(
            f"{x['cpu']['cores_busy']:.2f} / {x['cpu']['cores_ours']:.2f} / "
            f"{x['cpu']['cores_foreign']:.2f}"
            for x in (one, many, lat)
        ),
    ])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--per-client", type=int, default=800,
                        help="messages encrypted per client before a throughput phase")
    parser.add_argument("--rate", type=float, default=20.0, help="latency probe messages/s")
    parser.add_argument("--latency-messages", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--receivers", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receivers:
        asyncio.run(_receivers_main())
        sys.exit(0)
    result = asyncio.run(main(args))
    print(_report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
