"""Several processes, crashes and contention: fan-out across servers, SIGKILL durability,
50 racing clients, concurrent start-up, the embedded database default."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
from ds_client import Device, next_event, register_device
from ds_harness import ServerProcess, wait_until
from ds_mls import is_commit, plaintext_of

MakeDevice = Callable[..., Awaitable[Device]]


async def _group_of(creator: Device, members: list[Device]) -> bytes:
    """A group of ``creator`` and ``members``, everyone joined and at the same cursor."""
    for m in members:
        await m.upload_key_packages(1)
    gid = await creator.create_group()
    if members:
        await creator.add(gid, members)
        for m in members:
            assert await m.join_from_inbox() == [gid]
            m.cursors[gid] = creator.cursors[gid]
    return gid


def _via(device: Device, server: ServerProcess) -> httpx.AsyncClient:
    """Point ``device``'s HTTP calls at another server process; returns the old client."""
    old = device.http
    device.base_url = server.base_url
    device.http = httpx.AsyncClient(base_url=server.base_url, timeout=60)
    return old


async def test_message_posted_on_one_process_reaches_a_socket_on_another(
    server: ServerProcess, server_factory: Callable[..., ServerProcess], database_url: str
) -> None:
    other = server_factory(database_url)  # a second process on the same database
    alice, bob, carol = [await register_device(server.base_url) for _ in range(3)]
    sockets = []
    try:
        gid = await _group_of(alice, [bob])
        await carol.upload_key_packages(1)
        bob_ws = await bob.ws(cursors={gid: 1}, welcome_after=1, url=other.ws_url)
        carol_ws = await carol.ws(url=other.ws_url)
        alice_ws = await alice.ws(cursors={gid: 1}, url=server.ws_url)
        sockets += [bob_ws, carol_ws, alice_ws]

        # Posted through process 1, pushed by process 2.
        r = await alice.send(alice.mls.encrypt_message(gid, b"across processes"))
        assert r.status_code == 201
        event = await next_event(bob_ws)
        assert event["seq"] == r.json()["seq"] == 2
        result = bob.mls.process_message(gid, base64.b64decode(event["data"]))
        assert plaintext_of(result) == b"across processes"
        assert (await next_event(alice_ws))["seq"] == 2  # the sender's own socket too

        # Welcomes fan out as well.
        await alice.add(gid, [carol])
        assert (await next_event(carol_ws))["type"] == "mls-welcome"
        commit = await next_event(bob_ws)
        assert commit["content_type"] == "commit" and commit["seq"] == 3
        assert is_commit(bob.mls.process_message(gid, base64.b64decode(commit["data"])))

        # The other direction: posted through process 2, pushed by process 1.
        old = _via(bob, other)
        await old.aclose()
        r = await bob.send(bob.mls.encrypt_message(gid, b"back"))
        assert r.status_code == 201
        assert (await next_event(alice_ws))["seq"] == 3
        assert (await next_event(alice_ws))["seq"] == r.json()["seq"] == 4
    finally:
        for conn in sockets:
            await conn.close()
        for d in (alice, bob, carol):
            await d.close()


async def test_acknowledged_messages_survive_sigkill(
    server_factory: Callable[..., ServerProcess], database_factory: Callable[[], str]
) -> None:
    url = database_factory()
    srv = server_factory(url)
    members = [await register_device(srv.base_url) for _ in range(6)]
    acked: dict[int, bytes] = {}  # seq -> sha256 of what was acknowledged at that seq
    try:
        gid = await _group_of(members[0], members[1:])
        first_seq = members[0].cursors[gid]
        # Everything to send is encrypted up front, so the burst is pure posting.
        queues = [[m.mls.encrypt_message(gid, b"%d/%d" % (i, n)) for n in range(400)]
                  for i, m in enumerate(members)]
        killed = asyncio.Event()

        async def poster(device: Device, queue: list[bytes]) -> None:
            for data in queue:
                try:
                    r = await device.send(data)
                except httpx.TransportError:
                    return  # the server is gone: this one was never acknowledged
                if r.status_code != 201:
                    raise AssertionError(r.text)
                acked[r.json()["seq"]] = hashlib.sha256(data).digest()

        async def killer() -> None:
            while len(acked) < 150:
                await asyncio.sleep(0.01)
            srv.kill(signal.SIGKILL)
            killed.set()

        posters = [poster(m, q) for m, q in zip(members, queues, strict=True)]
        await asyncio.gather(killer(), *posters)
        assert killed.is_set() and len(acked) >= 150
        assert sum(len(q) for q in queues) > len(acked)  # the kill interrupted the burst

        srv.start()  # same database, same port
        stored = await members[1].all_messages(gid, first_seq)
        seqs = [m["seq"] for m in stored]
        assert seqs == list(range(first_seq + 1, first_seq + 1 + len(seqs)))  # no gaps
        by_seq = {m["seq"]: hashlib.sha256(base64.b64decode(m["data"])).digest() for m in stored}
        missing = [s for s in acked if by_seq.get(s) != acked[s]]
        assert missing == []  # every acknowledged message, at the seq it was given
        # The stream goes on from there.
        r = await members[2].send(members[2].mls.encrypt_message(gid, b"after restart"))
        assert r.status_code == 201 and r.json()["seq"] == seqs[-1] + 1
    finally:
        for m in members:
            await m.close()


async def test_fifty_racing_clients_converge(
    server: ServerProcess, database_url: str
) -> None:
    clients = await asyncio.gather(*(register_device(server.base_url) for _ in range(50)))
    try:
        gid = await _group_of(clients[0], list(clients[1:]))
        sent_plaintexts: set[bytes] = set()
        received: list[set[bytes]] = [set() for _ in clients]
        rng = random.Random(4)

        async def sync(i: int) -> None:
            for result in await clients[i].sync(gid):
                text = plaintext_of(result)
                if text is not None:
                    received[i].add(text)

        async def run(i: int, device: Device) -> None:
            for round_ in range(3):
                await sync(i)
                # Everyone commits for (about) the same epoch: one wins, the rest get 409.
                # A winner does not merge at once: it meets its commit again in the
                # ordered stream, after the application messages that precede it.
                r = await device.send(device.mls.self_update(gid))
                if r.status_code != 201:
                    assert r.status_code == 409 and r.json()["error"] == "stale_epoch", r.text
                    device.mls.clear_pending_commit(gid)
                text = b"%d.%d" % (i, round_)
                r = await device.send(device.mls.encrypt_message(gid, text))
                if r.status_code == 201:
                    sent_plaintexts.add(text)
                else:  # the group moved on by more than the epoch window
                    assert r.status_code == 409, r.text
                await asyncio.sleep(rng.random() * 0.01)

        await asyncio.gather(*(run(i, d) for i, d in enumerate(clients)))

        # The stored order: total, gap-free, exactly one commit per epoch.
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                "SELECT m.seq, m.epoch, m.content_type FROM mls_messages m "
                "JOIN mls_groups g ON g.id = m.group_id WHERE g.group_id = $1 "
                "AND m.seq IS NOT NULL ORDER BY seq", gid)
            group_epoch = await conn.fetchval(
                "SELECT epoch FROM mls_groups WHERE group_id = $1", gid)
        finally:
            await conn.close()
        assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
        commit_epochs = [r["epoch"] for r in rows if r["content_type"] == "commit"]
        assert commit_epochs == list(range(len(commit_epochs)))
        assert group_epoch == len(commit_epochs)
        assert len(commit_epochs) >= 1 + 3  # the Add plus at least one winner per round

        # Every client's view converges: same epoch, same epoch authenticator, and each
        # decrypted every accepted application message but its own.
        for i in range(len(clients)):
            await sync(i)
        assert {d.mls.epoch(gid) for d in clients} == {group_epoch}
        assert len({d.mls.epoch_authenticator(gid) for d in clients}) == 1
        assert sum(1 for r in rows if r["content_type"] == "application") == len(sent_plaintexts)
        for i, device in enumerate(clients):
            assert device.cursors[gid] == rows[-1]["seq"]
            mine = {p for p in sent_plaintexts if p.startswith(b"%d." % i)}
            assert received[i] | mine == sent_plaintexts, i
            assert not received[i] & mine
    finally:
        for d in clients:
            await d.close()


async def test_processes_starting_together_migrate_once(
    server_factory: Callable[..., ServerProcess], database_factory: Callable[[], str]
) -> None:
    url = database_factory()
    started: list[ServerProcess] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            started.append(server_factory(url))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(started) == 2
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetch("SELECT version_num FROM alembic_version") == [(_head(),)]
    finally:
        await conn.close()


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", "delivery:migrations")
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


async def test_migrations_downgrade_and_upgrade_again(database_factory: Callable[[], str]
                                                      ) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy.ext.asyncio import create_async_engine

    from delivery.db import normalize_url

    engine = create_async_engine(normalize_url(database_factory()).sqlalchemy)

    def migrate(connection: object, target: str, down: bool = False) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", "delivery:migrations")
        cfg.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(cfg, target)

    try:
        for target, down in [("head", False), ("base", True), ("head", False)]:
            async with engine.begin() as conn:
                await conn.run_sync(migrate, target, down)
        async with engine.connect() as conn:
            tables = set((await conn.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
        assert {"users", "devices", "sessions", "mls_key_packages", "mls_groups",
                "mls_group_members", "mls_messages", "mls_welcome_inbox"} <= tables
    finally:
        await engine.dispose()


async def test_embedded_postgres_default(tmp_path: Path, log_dir: Path) -> None:
    """Without DATABASE_URL the server runs on the PostgreSQL bundled in a wheel."""
    srv = ServerProcess({"DATABASE_URL": "", "DATA_DIR": str(tmp_path / "data")},
                        log_dir=log_dir)
    srv.start(timeout=120)
    try:
        alice = await register_device(srv.base_url)
        try:
            gid = await alice.create_group()
            r = await alice.send(alice.mls.encrypt_message(gid, b"embedded"))
            assert r.status_code == 201 and r.json()["seq"] == 1
        finally:
            await alice.close()
        assert (tmp_path / "data" / "pgdata" / "PG_VERSION").exists()
    finally:
        srv.stop()
    # Data survives a restart of server and database.
    srv.start(timeout=120)
    try:
        async with httpx.AsyncClient(base_url=srv.base_url) as http:
            r = await http.post("/api/auth/login", json={
                "username": alice.user_id, "password": "correct horse battery staple"})
            assert r.status_code == 200
    finally:
        srv.stop()


def test_embedded_postgres_stops_cleanly_and_repairs_stale_handles(
    tmp_path: Path, log_dir: Path
) -> None:
    """SIGTERM and SIGINT shut the server down cleanly, the bundled PostgreSQL with it;
    the handle a SIGKILLed server left behind is dropped at the next start."""
    pgdata = tmp_path / "data" / "pgdata"
    handles = pgdata / ".handle_pids.json"
    postmaster = pgdata / "postmaster.pid"

    def handle_pids() -> list[int]:
        text = handles.read_text() if handles.exists() else ""
        return list(json.loads(text or "[]"))

    srv = ServerProcess({"DATABASE_URL": "", "DATA_DIR": str(tmp_path / "data")},
                        log_dir=log_dir)
    for sig in (signal.SIGTERM, signal.SIGINT):
        srv.start(timeout=120)
        assert srv.proc is not None
        assert handle_pids() == [srv.proc.pid] and postmaster.exists()
        srv.kill(sig)
        assert srv.proc.returncode == 0, srv.log_tail()
        wait_until(lambda: not postmaster.exists(), "PostgreSQL to stop")
        assert handle_pids() == []
    # A SIGKILLed server leaves its PID (and PostgreSQL running) behind ...
    srv.start(timeout=120)
    assert srv.proc is not None
    killed = srv.proc.pid
    srv.kill(signal.SIGKILL)
    assert handle_pids() == [killed] and postmaster.exists()
    # ... which the next start repairs, so that its clean exit stops PostgreSQL again.
    srv.start(timeout=120)
    assert srv.proc is not None
    assert handle_pids() == [srv.proc.pid]
    assert "dead processes" in srv.log_tail(400)
    srv.stop()
    wait_until(lambda: not postmaster.exists(), "PostgreSQL to stop")
    # A lock file left by a dead standalone backend (initdb's single-user PostgreSQL:
    # negative PID, no status line), which the bundled library cannot parse.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    postmaster.write_text(f"-{gone.pid}\n{pgdata}\n1796204112\n5432\n\n\n  9986149 10\n")
    srv.start(timeout=120)
    assert "stale lock file of a standalone backend" in srv.log_tail(400)
    srv.stop()
    wait_until(lambda: not postmaster.exists(), "PostgreSQL to stop")


async def test_fan_out_survives_lost_database_connections(
    server_factory: Callable[..., ServerProcess], database_factory: Callable[[], str]
) -> None:
    """Kill every process's LISTEN and NOTIFY connections mid-stream: a socket on the
    other process still receives every message, in order."""
    database_url = database_factory()  # only these two processes use it
    server = server_factory(database_url)
    other = server_factory(database_url)
    alice = await register_device(server.base_url)
    bob = await register_device(server.base_url)
    try:
        gid = await _group_of(alice, [bob])
        bob_ws = await bob.ws(cursors={gid: 1}, welcome_after=1, url=other.ws_url)
        admin = await asyncpg.connect(database_url)
        sent = []
        try:
            for round_ in range(3):
                # Both processes have (re)connected their LISTEN and NOTIFY connections.
                for _ in range(100):
                    alive = await admin.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name IN "
                        "('delivery-listen', 'delivery-notify') AND datname = current_database()")
                    if alive == 4:
                        break
                    await asyncio.sleep(0.1)
                assert alive == 4
                killed = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name IN ('delivery-listen', 'delivery-notify') "
                    "AND datname = current_database()")
                assert killed == 4
                for i in range(5):
                    r = await alice.send(alice.mls.encrypt_message(gid, b"%d.%d" % (round_, i)))
                    assert r.status_code == 201
                    sent.append(r.json()["seq"])
                got = [(await next_event(bob_ws, timeout=15))["seq"] for _ in range(5)]
                assert got == sent[-5:]
        finally:
            await admin.close()
            await bob_ws.close()
    finally:
        await alice.close()
        await bob.close()


async def test_posting_is_rate_limited_per_user(
    server_factory: Callable[..., ServerProcess], database_factory: Callable[[], str]
) -> None:
    srv = server_factory(database_factory(), DS_RATE_MESSAGE_POST="5/60")
    alice = await register_device(srv.base_url)
    try:
        gid = await alice.create_group()
        codes = []
        for i in range(6):
            r = await alice.send(alice.mls.encrypt_message(gid, b"%d" % i))
            codes.append(r.status_code)
        assert codes == [201] * 5 + [429]
        assert r.json()["error"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
        # Nothing was stored for the refused one.
        assert [m["seq"] for m in await alice.all_messages(gid)] == [1, 2, 3, 4, 5]
    finally:
        await alice.close()
