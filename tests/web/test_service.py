"""The worker's side of the UI (web/app/chatworker) on CPython against the real server:
what crosses the worker boundary is plain data, refusals are said plainly and name
the form field, and a hand-over finishes the work in progress and then refuses more."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from corecrypto.messenger import Messenger
from corecrypto.transport import MemoryStore
from corecrypto.transport.http import HttpTransport
from corecrypto.vault import Vault
from corecrypto.vault.local import CryptographyCipher, MemoryStorage

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "web" / "app"))
from chatworker.service import ChatService, RpcError

VAULT = "Vault passphrase 7 horses"


class Client:
    def __init__(self, base_url: str, name: str) -> None:
        self.name = name
        self.password = "Account pass for a test 2026!"
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.storage = MemoryStorage()
        self.transport = HttpTransport(base_url)

        async def open_vault() -> Vault:
            return await Vault.open(self.storage, CryptographyCipher(), idle_lock_seconds=None)

        self.service = ChatService(self.transport, open_vault,
                                   lambda kind, data: self.events.append((kind, data)))

    async def call(self, method: str, **params: Any) -> Any:
        return await self.service.call(method, params)

    async def sign_up(self) -> dict[str, Any]:
        await self.call("account", mode="register", username=self.name,
                        password=self.password)
        result: dict[str, Any] = await self.call("create_vault", password=VAULT)
        return result

    async def event(self, pred: Callable[[str, dict[str, Any]], bool],
                    timeout: float = 60) -> dict[str, Any]:
        async def poll() -> dict[str, Any]:
            while True:
                for kind, data in self.events:
                    if pred(kind, data):
                        return data
                await asyncio.sleep(0.05)

        return await asyncio.wait_for(poll(), timeout)

    async def close(self) -> None:
        await self.service.shutdown()
        await self.transport.aclose()


@pytest.fixture
async def clients(app_server: Any) -> AsyncIterator[Callable[[str], Client]]:
    made: list[Client] = []
    suffix = str(id(made) % 100000)

    def make(name: str) -> Client:
        c = Client(app_server.base_url, f"{name}{suffix}")
        made.append(c)
        return c

    yield make
    for c in made:
        await c.close()


async def test_account_step_says_what_is_wrong_and_where(clients: Callable[[str], Client]
                                                         ) -> None:
    taken = clients("taken")
    await taken.sign_up()
    c = clients("newbie")
    with pytest.raises(RpcError) as e:
        await c.call("account", mode="register", username=c.name, password="password")
    assert e.value.field == "password" and "common" in e.value.message
    assert "/api/" not in e.value.message
    with pytest.raises(RpcError) as e:
        await c.call("account", mode="register", username=taken.name,
                     password="A fine account password 1")
    assert e.value.field == "username" and e.value.status == 409
    with pytest.raises(RpcError) as e:
        await c.call("account", mode="signin", username=taken.name, password="wrong one!")
    assert e.value.field == "password" and e.value.status == 401
    # Nothing was created on this device by those refusals.
    assert (await c.call("status")) == {"vault": False, "unlocked": False, "signed_in": False}
    with pytest.raises(RpcError, match="Sign in or create an account first"):
        await c.call("create_vault", password=VAULT)


async def test_two_people_chat_across_the_boundary(clients: Callable[[str], Client]) -> None:
    alice, bob = clients("alice"), clients("bob")
    snap = await alice.sign_up()
    assert snap["me"]["user"] == alice.name and snap["conversations"] == []
    await bob.sign_up()
    made = await alice.call("create", name="Plans", members=[bob.name, "nobody-here"])
    conv = made["conversation"]
    summary = made["report"]["summary"]
    assert f"Added {bob.name}" in summary and "nobody-here could not be added" in summary
    await bob.event(lambda k, d: k == "conversation" and d["conversation"] == conv)
    result = await alice.call("send", conversation=conv, text="hello bob")
    assert result["state"] == "sent"
    got = await bob.event(lambda k, d: k == "message" and d["message"]["text"] == "hello bob")
    assert got["message"]["sender"].startswith(alice.name + "/")
    opened = await bob.call("open", conversation=conv)
    assert [m["text"] for m in opened["messages"] if m["kind"] == "text"] == ["hello bob"]
    assert sorted(opened["members"]) == sorted(
        [snap["me"]["identity"], (await bob.call("snapshot"))["me"]["identity"]])
    # Paging: the latest page, then the one before.
    for i in range(60):
        await alice.call("send", conversation=conv, text=f"n{i}")
    await bob.event(lambda k, d: k == "message" and d["message"]["text"] == "n59")
    latest = await bob.call("open", conversation=conv, limit=50)
    assert latest["has_older"] and len(latest["messages"]) == 50
    older = await bob.call("older", conversation=conv, before=latest["messages"][0]["local_id"])
    lines = older["messages"] + latest["messages"]
    assert [m["text"] for m in lines if m["kind"] == "text"] == ["hello bob"] + [
        f"n{i}" for i in range(60)]
    with pytest.raises(RpcError) as e:
        await bob.call("send", conversation="AAAA", text="x")
    assert e.value.kind == "not-found"


async def test_lock_unlock_and_panic(clients: Callable[[str], Client]) -> None:
    carol = clients("carol")
    await carol.sign_up()
    await carol.call("lock")
    await carol.event(lambda k, d: k == "locked")
    with pytest.raises(RpcError) as e:
        await carol.call("snapshot")
    assert e.value.kind == "locked"
    with pytest.raises(RpcError) as e:
        await carol.call("unlock", password="not it")
    assert e.value.kind == "wrong-password" and e.value.field == "password"
    snap = await carol.call("unlock", password=VAULT)
    assert snap["me"]["user"] == carol.name
    report = await carol.call("panic")
    assert report["complete"]
    assert carol.storage.data == {}
    assert (await carol.call("status"))["vault"] is False


async def test_hand_over_finishes_then_refuses(clients: Callable[[str], Client]) -> None:
    dave, erin = clients("dave"), clients("erin")
    await dave.sign_up()
    await erin.sign_up()
    conv = (await dave.call("create", name="Over", members=[erin.name]))["conversation"]
    sending = asyncio.ensure_future(dave.call("send", conversation=conv, text="in flight"))
    await asyncio.sleep(0)  # the send has started
    await dave.service.shutdown()
    assert (await sending)["state"] == "sent"  # finished before the hand-over
    with pytest.raises(RpcError) as e:
        await dave.call("snapshot")
    assert e.value.kind == "released"
    await erin.event(lambda k, d: k == "message" and d["message"]["text"] == "in flight")


async def test_send_checks_changed_keys_in_the_same_request(
        clients: Callable[[str], Client], app_server: Any) -> None:
    """A send with ``check_keys`` sends nothing while a verified contact's keys changed
    unacknowledged; the same send goes once acknowledged (or without the check)."""
    fay, gus = clients("fay"), clients("gus")
    await fay.sign_up()
    await gus.sign_up()
    conv = (await fay.call("create", name="Keys", members=[gus.name]))["conversation"]
    assert (await fay.call("send", conversation=conv, text="before",
                           check_keys=True))["state"] == "sent"
    await fay.call("set_verified", user=gus.name, verified=True)
    # gus signs in on a second device: his key set changes.
    other = Messenger(HttpTransport(app_server.base_url), MemoryStore())
    await other.login_new_device(gus.name, gus.password)
    await fay.call("refresh_trust", conversation=conv)
    assert (await fay.call("key_changes", conversation=conv))["users"] == [gus.name]
    warned = await fay.call("send", conversation=conv, text="not yet", check_keys=True)
    assert warned == {"state": "unsent", "key_changes": [gus.name]}
    await fay.call("acknowledge", users=[gus.name])
    assert (await fay.call("send", conversation=conv, text="after",
                           check_keys=True))["state"] == "sent"
    await gus.event(lambda k, d: k == "message" and d["message"]["text"] == "after")
    # The stream is ordered: had "not yet" left, gus would have had it before "after".
    got = [d["message"]["text"] for k, d in gus.events
           if k == "message" and d["message"]["kind"] == "text"]
    assert got == ["before", "after"]
    opened = await fay.call("open", conversation=conv)
    assert [m["text"] for m in opened["messages"] if m["kind"] == "text"] == ["before", "after"]
    await other.stop()
    await other.transport.aclose()  # type: ignore[attr-defined]
