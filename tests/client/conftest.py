"""A real delivery server (PostgreSQL + server process) for client tests,
reusing the delivery tests' harness; and the people who use it."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from corecrypto.messenger import Messenger
from corecrypto.transport import MemoryStore, Store, Transport
from corecrypto.transport.http import HttpTransport

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "delivery"))

from ds_harness import Postgres, ServerProcess

# Generous: the suite runs on busy 2-core machines. Conditions are polled, never slept on.
WAIT_SECONDS = 60.0


@pytest.fixture(scope="session")
def client_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    pg = Postgres.start()
    name = f"client_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"
    url = pg.create_database(name)
    proc = ServerProcess({"DATABASE_URL": url},
                         log_dir=tmp_path_factory.mktemp("client-server-logs")).start()
    yield proc
    proc.stop()
    pg.drop_database(name)


async def eventually(check: Callable[[], bool], timeout: float = WAIT_SECONDS,
                     what: str = "condition") -> None:
    """Wait until ``check()`` holds (polled; the clients work in the background)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met in {timeout:.0f} s")
        await asyncio.sleep(0.02)


def texts(m: Messenger, gid: bytes) -> list[str]:
    return [x.text for x in m.conversations[gid].messages if x.kind == "text"]


def system_lines(m: Messenger, gid: bytes) -> list[str]:
    return [x.text for x in m.conversations[gid].messages if x.kind == "system"]


async def conversation(owner: Messenger, name: str, *others: Messenger) -> bytes:
    """A new conversation of ``owner`` with ``others``, once they all have it."""
    conv = await owner.create_conversation(name, [o.user_id for o in others])
    gid = conv.group_id
    for o in others:
        await eventually(lambda o=o: gid in o.conversations and o.conversations[gid].name == name,
                         what=f"{o.identity} in {name}")
    return gid


class People:
    """Makes signed-in users (``await people("alice")``) and more devices of them
    (``await people.device(alice)``); stops them all at the end."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.suffix = secrets.token_hex(3)
        self.made: list[Messenger] = []
        self.passwords: dict[str, str] = {}

    def transport(self) -> Transport:
        return HttpTransport(self.base_url)

    async def __call__(self, name: str, *, start: bool = True, store: Store | None = None,
                       transport: Transport | None = None) -> Messenger:
        user = f"{name}{self.suffix}"
        password = f"correct horse {name} battery"
        m = Messenger(transport or self.transport(), store or MemoryStore())
        await m.register(user, password)
        self.passwords[user] = password
        await m.login_new_device(user, password)
        return await self._started(m, start)

    async def device(self, of: Messenger, *, start: bool = True,
                     store: Store | None = None, transport: Transport | None = None
                     ) -> Messenger:
        """A new device of ``of``'s user (a new browser, or the same after a wipe)."""
        m = Messenger(transport or self.transport(), store or MemoryStore())
        await m.login_new_device(of.user_id, self.passwords[of.user_id])
        return await self._started(m, start)

    async def _started(self, m: Messenger, start: bool) -> Messenger:
        self.made.append(m)
        if start:
            await m.sync()
            m.start()
            await eventually(lambda: m.status == "online", what=f"{m.identity} online")
        return m

    async def close(self) -> None:
        for m in self.made:
            await m.stop()


@pytest.fixture
async def people(client_server: ServerProcess) -> AsyncIterator[People]:
    p = People(client_server.base_url)
    yield p
    await p.close()
