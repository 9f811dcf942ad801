"""The vault in headless Chromium: the same Python ``Vault`` running in Pyodide over
IndexedDB, WebCrypto and BroadcastChannel (``corecrypto.vault.browser`` and
``web/js/vault.mjs``).

The bundle is served by ``tests/browser/harness.py``'s static server; every request
is recorded and any leaving the origin fails the test. One browser context and page
per module (Pyodide starts once); each test starts from wiped storage and a fresh
Python namespace, so the tests do not depend on each other's order.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2.low_level import Type, hash_secret_raw
from playwright.sync_api import Browser, BrowserContext, Page
from playwright.sync_api import Error as PlaywrightError

from corecrypto.vault import HEADER_NAME, RECORD_PREFIX, VaultHeader
from tests.browser.harness import OriginGuard, serve

PASSWORD = "correct horse battery staple ✓ 🔐"
MESSAGE = "Meet at the north gate at 06:00 and bring the documents"
SW_PREFIX = "/__vault_sw__/"
PANIC_URL = "/__panic__/revoke-this-device"

# Runs Python in the page, in the namespace of the current test; returns the value of
# the last expression (str, int, bool or None).
_RUN = """async ([code]) => {
  const py = await globalThis.mlsPython;
  globalThis.vaultTestNs ??= py.globals.get("dict")();
  return await py.runPythonAsync(code, { globals: globalThis.vaultTestNs });
}"""

# Closes the previous test's vaults, wipes the origin's storage, new namespace.
_RESET = """async () => {
  const py = await globalThis.mlsPython;
  const ns = globalThis.vaultTestNs;
  if (ns !== undefined) {
    py.runPython(`for _o in list(globals().values()):
    if type(_o).__name__ == "Vault":
        _o.close()`, { globals: ns });
    ns.destroy();
  }
  globalThis.vaultTestNs = py.globals.get("dict")();
  const vault = await globalThis.intellaccModules.vault.init();
  const problems = await vault.wipeAll();
  if (problems.length) throw new Error(problems.join("; "));
}"""

# Every IndexedDB database, object store and record, localStorage and sessionStorage.
# Binary values become {"$bytes": hex}; everything else is kept as JSON.
_SCAN = """async () => {
  const hex = (u8) => Array.from(u8, (b) => b.toString(16).padStart(2, "0")).join("");
  const plain = (v) => {
    if (v instanceof ArrayBuffer) return { $bytes: hex(new Uint8Array(v)) };
    if (ArrayBuffer.isView(v)) {
      return { $bytes: hex(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)) };
    }
    if (Array.isArray(v)) return v.map(plain);
    if (v instanceof Blob) throw new Error("Blob values are not scanned");
    if (v !== null && typeof v === "object") {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
    }
    return v;
  };
  const done = (request) => new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  const idb = [];
  for (const info of await indexedDB.databases()) {
    const db = await done(indexedDB.open(info.name));
    try {
      for (const storeName of db.objectStoreNames) {
        const store = db.transaction(storeName, "readonly").objectStore(storeName);
        const [keys, values] = await Promise.all(
          [done(store.getAllKeys()), done(store.getAll())]);
        keys.forEach((key, i) => idb.push(
          { db: info.name, store: storeName, key: plain(key), value: plain(values[i]) }));
      }
    } finally {
      db.close();
    }
  }
  const entries = (s) => Array.from(
    { length: s.length }, (_, i) => [s.key(i), s.getItem(s.key(i))]);
  return { idb, local: entries(localStorage), session: entries(sessionStorage) };
}"""

# Flips the last byte of a stored record (from JS, as an attacker with storage access).
_TAMPER = """async ([name, copyFrom]) => {
  const done = (request) => new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  const db = await done(indexedDB.open("intellacc-vault"));
  try {
    const read = db.transaction("records", "readonly").objectStore("records");
    const value = new Uint8Array(await done(read.get(copyFrom ?? name)));
    if (!copyFrom) value[value.length - 1] ^= 1;
    const tx = db.transaction("records", "readwrite");
    tx.objectStore("records").put(value, name);
    await new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}"""


def run(page: Page, code: str) -> Any:
    return page.evaluate(_RUN, [code])


def start(page: Page, origin: str) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{origin}/selfcheck.html")
    page.wait_for_function("document.documentElement.dataset.state", timeout=180_000)
    state = page.evaluate("document.documentElement.dataset.state")
    assert state == "ready", f"page failed: {page.inner_text('#status')} {errors}"


class Session:
    def __init__(self, origin: str, context: BrowserContext, guard: OriginGuard,
                 page: Page) -> None:
        self.origin, self.context, self.guard, self.page = origin, context, guard, page

    def new_page(self) -> Page:
        page = self.context.new_page()
        start(page, self.origin)
        return page


@pytest.fixture(scope="module")
def session(bundle: Path, browser: Browser, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Session]:
    sw_dir = tmp_path_factory.mktemp("sw")
    (sw_dir / "sw.js").write_text("self.addEventListener('fetch', () => {});\n")
    with serve(bundle, {SW_PREFIX: sw_dir}) as origin:
        context = browser.new_context()
        guard = OriginGuard(context, origin)
        try:
            page = context.new_page()
            start(page, origin)
            yield Session(origin, context, guard, page)
        finally:
            context.close()
        assert guard.offsite == [], f"requests left the origin: {guard.offsite}"


@pytest.fixture
def page(session: Session) -> Page:
    """The module's page, with wiped storage and a fresh Python namespace."""
    session.page.evaluate(_RESET)
    run(session.page, """
import json
from corecrypto.vault import (LockReason, TamperedRecordError, VaultLockedError,
                              WrongPasswordError)
from corecrypto.vault.browser import open_browser_vault
""")
    return session.page


def scan(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(_SCAN)
    return result


def _leaves(value: Any) -> Iterator[bytes]:
    """Every stored string or byte string, as bytes."""
    if isinstance(value, dict) and set(value) == {"$bytes"}:
        yield bytes.fromhex(value["$bytes"])
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k.encode()
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    elif isinstance(value, str):
        yield value.encode("utf-8")
    elif value is not None:
        yield str(value).encode()


def findings(storage: dict[str, Any], needles: dict[str, bytes]) -> list[str]:
    """Which needle is found where, in raw, hex or base64 form."""
    found = []
    for where, leaf in ((w, leaf) for w in ("idb", "local", "session")
                        for leaf in _leaves(storage[w])):
        for label, needle in needles.items():
            forms = {
                "raw": needle,
                "hex": needle.hex().encode(),
                "HEX": needle.hex().upper().encode(),
                "base64": base64.b64encode(needle).rstrip(b"="),
                "base64url": base64.urlsafe_b64encode(needle).rstrip(b"="),
            }
            found += [f"{label} ({form}) in {where}" for form, f in forms.items() if f in leaf]
    return found


def _idb_record(storage: dict[str, Any], name: str) -> bytes:
    for item in storage["idb"]:
        if item["db"] == "intellacc-vault" and item["key"] == name:
            return bytes.fromhex(item["value"]["$bytes"])
    raise AssertionError(f"no record {name!r} in IndexedDB")


def test_nothing_secret_in_browser_storage(page: Page) -> None:
    key = os.urandom(32)
    run(page, f"""
v = await open_browser_vault(idle_lock_seconds=None)
await v.create({PASSWORD!r})
await v.put("message", {MESSAGE!r}.encode())
await v.put("identity-key", bytes.fromhex({key.hex()!r}))
await v.put("group/alpha", {MESSAGE!r}.encode() * 3 + bytes.fromhex({key.hex()!r}))
v.lock()
await v.unlock({PASSWORD!r})
assert await v.get("identity-key") == bytes.fromhex({key.hex()!r})
""")
    stored = scan(page)
    names = {item["key"] for item in stored["idb"] if item["db"] == "intellacc-vault"}
    assert names == {HEADER_NAME, *(RECORD_PREFIX + n for n in
                                    ("message", "identity-key", "group/alpha"))}
    header = VaultHeader.decode(_idb_record(stored, HEADER_NAME))
    kek = hash_secret_raw(PASSWORD.encode(), header.salt, time_cost=header.params.iterations,
                          memory_cost=header.params.memory_kib, parallelism=1, hash_len=32,
                          type=Type.ID, version=19)
    needles = {"password": PASSWORD.encode(), "message": MESSAGE.encode(), "key": key,
               "KEK": kek}
    assert findings(stored, needles) == []

    # The scanner does find what is there: a probe in each place and form.
    probe = os.urandom(24)
    page.evaluate("""async ([hex, b64]) => {
      localStorage.setItem("probe", hex);
      sessionStorage.setItem("probe", b64);
      const bytes = Uint8Array.from(hex.match(/../g), (h) => parseInt(h, 16));
      const db = await new Promise((resolve, reject) => {
        const r = indexedDB.open("probe-db", 1);
        r.onupgradeneeded = () => r.result.createObjectStore("s");
        r.onsuccess = () => resolve(r.result);
        r.onerror = () => reject(r.error);
      });
      const tx = db.transaction("s", "readwrite");
      tx.objectStore("s").put({ nested: [bytes.buffer] }, "k");
      await new Promise((resolve) => { tx.oncomplete = resolve; });
      db.close();
    }""", [probe.hex(), base64.b64encode(probe).decode()])
    assert {"probe (hex) in local", "probe (base64) in session", "probe (raw) in idb"
            } <= set(findings(scan(page), {"probe": probe}))


def test_wrong_password_tamper_and_swap(page: Page) -> None:
    outcome = run(page, f"""
v = await open_browser_vault(idle_lock_seconds=None)
await v.create({PASSWORD!r})
await v.put("message", {MESSAGE!r}.encode())
await v.put("other", b"other record")
v.lock()
try:
    await v.unlock("correct horse battery staple")
    outcome = "unlocked?!"
except WrongPasswordError as e:
    outcome = str(e)
outcome
""")
    assert outcome.startswith("wrong vault password")
    before = scan(page)
    assert run(page, "v.locked") is True
    run(page, f"await v.unlock({PASSWORD!r})")
    with pytest.raises(PlaywrightError, match="WrongPasswordError"):
        run(page, "await v.unlock('still wrong')")
    assert scan(page) == before  # nothing changed
    assert run(page, f"(await v.get('message')).decode() == {MESSAGE!r}") is True

    check = """
try:
    await v.get({name!r})
    result = "accepted"
except TamperedRecordError as e:
    result = e.name
result
"""
    page.evaluate(_TAMPER, [RECORD_PREFIX + "message", None])
    assert run(page, check.format(name="message")) == "message"
    # A valid record of another name, copied over this one.
    page.evaluate(_TAMPER, [RECORD_PREFIX + "message", RECORD_PREFIX + "other"])
    assert run(page, check.format(name="message")) == "message"
    assert run(page, "(await v.get('other')) == b'other record'") is True


def test_argon2id_in_the_browser_equals_argon2_cffi(page: Page) -> None:
    salt = os.urandom(16)
    cases = [(64 * 1024, 3), (72 * 1024, 4)]
    got = json.loads(run(page, f"""
from corecrypto.kdf import Argon2Params, derive_key_argon2id
json.dumps([derive_key_argon2id({PASSWORD!r}, bytes.fromhex({salt.hex()!r}),
                                Argon2Params(memory_kib=m, iterations=t)).hex()
            for m, t in {cases!r}])
"""))
    expected = [hash_secret_raw(PASSWORD.encode(), salt, time_cost=t, memory_cost=m,
                                parallelism=1, hash_len=32, type=Type.ID, version=19).hex()
                for m, t in cases]
    assert got == expected


def test_locking_one_tab_locks_the_other(page: Page, session: Session) -> None:
    run(page, f"""
v = await open_browser_vault(idle_lock_seconds=None)
await v.create({PASSWORD!r})
await v.put("message", {MESSAGE!r}.encode())
""")
    other = session.new_page()
    try:
        listen = """
import js
def _heard(reason):
    js.globalThis.vaultLockReason = reason.value
v.on_lock(_heard)
js.globalThis.vaultLockReason = None
"""
        run(other, f"""
from corecrypto.vault.browser import open_browser_vault
from corecrypto.vault import VaultLockedError
v = await open_browser_vault(idle_lock_seconds=None)
await v.unlock({PASSWORD!r})
assert (await v.get("message")).decode() == {MESSAGE!r}  # what the first tab stored
{listen}
""")
        run(page, listen)
        run(page, "v.lock()")
        other.wait_for_function("globalThis.vaultLockReason === 'remote'", timeout=5000)
        assert run(other, """
try:
    await v.get("message")
    result = "read while locked"
except VaultLockedError:
    result = v.locked
result
""") is True
        # And the other way round; unlocking never propagates.
        run(page, f"await v.unlock({PASSWORD!r})")
        run(other, f"await v.unlock({PASSWORD!r})")
        run(other, "v.lock()")
        page.wait_for_function("globalThis.vaultLockReason === 'remote'", timeout=5000)
        assert run(page, "v.locked") is True

        # The idle lock fires by itself (a timer on Pyodide's event loop) and is
        # announced like any other.
        run(page, f"await v.unlock({PASSWORD!r})\njs.globalThis.vaultLockReason = None")
        run(other, f"""
v.close()
v = await open_browser_vault(idle_lock_seconds=0.5)
v.on_lock(_heard)
await v.unlock({PASSWORD!r})
""")
        other.wait_for_function("globalThis.vaultLockReason === 'idle'", timeout=5000)
        page.wait_for_function("globalThis.vaultLockReason === 'remote'", timeout=5000)
    finally:
        other.close()


def test_panic_wipes_everything(page: Page, session: Session) -> None:
    run(page, f"""
v = await open_browser_vault(idle_lock_seconds=None)
await v.create({PASSWORD!r})
await v.put("message", {MESSAGE!r}.encode())
""")
    # Another tab with the vault open (its IndexedDB connection must not block the
    # deletion) and its own sessionStorage.
    other = session.new_page()
    try:
        run(other, f"""
import js
from corecrypto.vault.browser import open_browser_vault
v = await open_browser_vault(idle_lock_seconds=None)
await v.unlock({PASSWORD!r})
v.on_lock(lambda reason: setattr(js.globalThis, "vaultLockReason", reason.value))
js.sessionStorage.setItem("draft", "other tab")
""")
        page.evaluate("""async (swPrefix) => {
          localStorage.setItem("theme", "dark");
          sessionStorage.setItem("draft", "hello");
          const db = await new Promise((resolve, reject) => {
            const r = indexedDB.open("app-cache", 1);
            r.onupgradeneeded = () => r.result.createObjectStore("s");
            r.onsuccess = () => resolve(r.result);
            r.onerror = () => reject(r.error);
          });
          db.close();
          await (await caches.open("app")).put("/probe", new Response("cached"));
          await navigator.serviceWorker.register(`${swPrefix}sw.js`, { scope: swPrefix });
        }""", SW_PREFIX)
        assert page.evaluate("""async () => [
          (await indexedDB.databases()).length, (await caches.keys()).length,
          (await navigator.serviceWorker.getRegistrations()).length]""") == [2, 1, 1]

        report = json.loads(run(page, f"""
from js import fetch
async def server_cleanup():
    await fetch({PANIC_URL!r})  # stands for: delete KeyPackages, revoke the session
report = await v.panic(server_cleanup)
json.dumps([report.complete, list(report.errors), await v.exists(), v.locked])
"""))
        assert report == [True, [], False, True]
        for _ in range(100):  # the clean-up runs in the background: give it 5 s
            if any(url.endswith(PANIC_URL) for url in session.guard.requests):
                break
            page.wait_for_timeout(50)
        else:
            raise AssertionError("the server clean-up request was never sent")
        left = page.evaluate("""async () => ({
          databases: (await indexedDB.databases()).map((d) => d.name),
          local: localStorage.length, session: sessionStorage.length,
          caches: await caches.keys(),
          workers: (await navigator.serviceWorker.getRegistrations()).length })""")
        assert left == {"databases": [], "local": 0, "session": 0, "caches": [],
                        "workers": 0}
        other.wait_for_function("globalThis.vaultLockReason === 'panic'", timeout=5000)
        assert other.evaluate("sessionStorage.length") == 0
        assert run(other, "v.locked") is True
    finally:
        other.close()
