"""The storage migration in a real browser (issue 12 §3): a vault in IndexedDB that
holds the records of the layout-1 messenger (one ``conv:`` record with the whole
history and one ``group:`` record per conversation, rewritten per message) unlocks
in the app, shows the whole history in order, and is left in the current layout:
the old records gone, one encrypted record per line, nothing in plaintext.

The layout-1 records are those of ``tests/client/data/layout1_store.json`` (written
by the layout-1 messenger against a test server), put into a vault the same way as
the CPython migration test does (``tests/client/test_storage.py``), but with the real
Argon2id, and then copied byte for byte into the page's IndexedDB: the CPython vault
and the browser's write the same format. The fixture's account belongs to another
server, so the app runs with its server down (the service worker serves the files):
the migration is the client's alone.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ds_harness import Postgres, ServerProcess

from corecrypto import history as hist
from corecrypto.vault import Vault
from corecrypto.vault.local import CryptographyCipher, MemoryStorage

from .chat import (
    VAULT_PASSWORD,
    all_texts,
    chromium,
    person,
    select_conversation,
    stored_everything,
    system_lines,
    unlock,
    wait,
    wait_state,
)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import build  # noqa: E402

LAYOUT1 = ROOT / "tests" / "client" / "data" / "layout1_store.json"

# The raw IndexedDB records of the vault (web/js/vault.mjs: database intellacc-vault,
# store records, string keys, Uint8Array values), as base64.
READ_RECORDS = """async () => {
  const get = (req) => new Promise((ok, ko) => {
    req.onsuccess = () => ok(req.result); req.onerror = ko; });
  const db = await get(indexedDB.open('intellacc-vault'));
  const tx = db.transaction('records');
  const [keys, values] = await Promise.all([get(tx.objectStore('records').getAllKeys()),
                                            get(tx.objectStore('records').getAll())]);
  db.close();
  const b64 = (u8) => {
    let s = ''; for (const b of u8) s += String.fromCharCode(b); return btoa(s); };
  return Object.fromEntries(keys.map((k, i) => [k, b64(new Uint8Array(values[i]))]));
}"""

WRITE_RECORDS = """async (records) => {
  const db = await new Promise((ok, ko) => {
    const r = indexedDB.open('intellacc-vault', 1);
    r.onupgradeneeded = () => r.result.createObjectStore('records');
    r.onsuccess = () => ok(r.result); r.onerror = ko; });
  const tx = db.transaction('records', 'readwrite');
  for (const [name, data] of Object.entries(records)) {
    tx.objectStore('records').put(Uint8Array.from(atob(data), (c) => c.charCodeAt(0)), name);
  }
  await new Promise((ok, ko) => { tx.oncomplete = ok; tx.onerror = ko; tx.onabort = ko; });
  db.close();
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own: the test stops it."""
    build.build()  # idempotent: only changed files are written
    pg = Postgres.start()
    name = f"web_migration_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"
    url = pg.create_database(name)
    proc = ServerProcess({"DATABASE_URL": url, "STATIC_DIR": str(ROOT / "web" / "dist")},
                         log_dir=tmp_path_factory.mktemp("migration-server-logs")).start()
    yield proc
    proc.stop()
    pg.drop_database(name)


async def layout1_records(fixture: dict[str, Any]) -> dict[str, bytes]:
    """The storage of a vault (real Argon2id) holding the layout-1 records."""
    storage = MemoryStorage()
    vault = await Vault.open(storage, CryptographyCipher(), idle_lock_seconds=None)
    await vault.create(VAULT_PASSWORD)
    for name, data in fixture["records"].items():
        await vault.put(name, base64.b64decode(data))
    vault.close()
    return dict(storage.data)


async def decrypted(records: dict[str, bytes]) -> dict[str, bytes]:
    """Every record of a vault's storage, decrypted (and so authenticated) by name."""
    storage = MemoryStorage()
    storage.data.update(records)
    vault = await Vault.open(storage, CryptographyCipher(), idle_lock_seconds=None)
    await vault.unlock(VAULT_PASSWORD)
    out = {}
    for name in await vault.names():
        data = await vault.get(name)
        assert data is not None, name
        out[name] = data
    vault.close()
    return out


def test_layout_1_vault_migrates_in_the_browser(server: ServerProcess) -> None:
    fixture = json.loads(LAYOUT1.read_text())
    expect = fixture["expect"]
    g = str(expect["group_id"])
    old = asyncio.run(layout1_records(fixture))
    assert f"record:conv:{g}" in old and f"record:group:{g}" in old
    lines = [tuple(x) for x in expect["lines"]]
    want_texts = [x[1] for x in lines if x[0] == "text"]
    with chromium() as browser:
        alice = person(browser, server.base_url, "alice")
        page = alice.page
        page.goto(server.base_url + "/")
        wait_state(page, "locked/welcome")
        wait(page, lambda: bool(page.evaluate(
            """async () => navigator.serviceWorker.controller !== null
            && (await caches.keys()).some(k => k.startsWith('intellacc-shell-'))""")),
             "the service worker controls the page")
        page.evaluate(WRITE_RECORDS, {k: base64.b64encode(v).decode() for k, v in old.items()})

        # The fixture's account is not on this server: the app runs without one.
        server.stop()
        page.reload()
        unlock(page)
        unread = "#conv-list button.conv:has-text('Plans') .unread"
        wait(page, lambda: page.locator(unread).count() == 1
             and page.inner_text(unread) == str(expect["unread"]), "the unread count")
        select_conversation(page, "Plans")
        wait(page, lambda: bool(all_texts(page)), "the history shown")
        assert all_texts(page) == want_texts
        want_system = [x[1] for x in lines if x[0] == "system"]
        assert [s for s in system_lines(page) if s in want_system] == want_system
        # Layout 1 kept no ciphertext of a line still being sent: it is offered for a retry.
        assert page.locator("#messages li.msg.own:has-text('interrupted line') "
                            ".state[data-state='failed']").count() == 1
        assert page.locator("#messages li.msg.own .state[data-state='sent']").count() == 3
        # The MLS group state came across: its members are listed.
        assert page.inner_text("#members-btn") == f"Members ({len(expect['members'])})"

        new = {k: base64.b64decode(v) for k, v in page.evaluate(READ_RECORDS).items()}
        everything = json.dumps(stored_everything(page))
        assert not alice.guard.offsite

    # The current layout: the old records gone, a record per line, all encrypted.
    assert f"record:conv:{g}" not in new and f"record:group:{g}" not in new
    assert f"record:chat:{g}" in new
    assert {f"record:msg:{g}:{i}" for i in range(len(lines))} <= set(new)
    for marker in ["Plans", *want_texts, str(expect["identity"])]:
        for encoded in (marker.encode(), marker.encode("utf-16-le")):
            assert encoded.hex() not in everything, marker
            assert not any(encoded in v for v in new.values()), marker
    plain = asyncio.run(decrypted(new))
    assert json.loads(plain[hist.ACCOUNT])["layout"] == hist.LAYOUT
    shown = [hist.decode_line(plain[f"msg:{g}:{i}"])[0] for i in range(len(lines))]
    assert [(m.kind, m.text) for m in shown] == [(x[0], x[1]) for x in lines]
    assert hist.ChatRecord.decode(plain[f"chat:{g}"]).cursor == expect["cursor"]
