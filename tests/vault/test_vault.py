"""The encrypted vault on CPython, over the in-memory storage and the
``cryptography`` cipher (the browser's IndexedDB and WebCrypto are exercised by
``test_vault_chromium.py``).

Most tests inject a cheap stand-in for Argon2id (``fast_kdf``): the vault checks
the parameters itself whatever the function, and the real derivation is tested on
its own (known answer against argon2-cffi) and end to end once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import struct
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest

from corecrypto.errors import KdfParameterError
from corecrypto.kdf import Argon2Params, derive_key_argon2id
from corecrypto.vault import (
    HEADER_NAME,
    RECORD_PREFIX,
    InvalidPasswordError,
    InvalidRecordNameError,
    KeyHandle,
    LockReason,
    TamperedRecordError,
    Vault,
    VaultCorruptError,
    VaultExistsError,
    VaultHeader,
    VaultLockedError,
    VaultNotFoundError,
    VaultStorageError,
    WrongPasswordError,
)
from corecrypto.vault.local import (
    CryptographyCipher,
    FileStorage,
    LocalLockBus,
    MemoryStorage,
)

PASSWORD = "correct horse battery staple"
MESSAGE = b"meet at the north gate at six"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class KdfSpy:
    """A fast stand-in for Argon2id that records the parameters it was asked for."""

    def __init__(self) -> None:
        self.calls: list[Argon2Params] = []

    def __call__(self, password: str, salt: bytes, params: Argon2Params) -> bytes:
        self.calls.append(params)
        info = f"{params.memory_kib}/{params.iterations}/{params.parallelism}".encode()
        return hashlib.blake2b(password.encode() + b"\x00" + info, key=salt,
                               digest_size=32).digest()


fast_kdf = KdfSpy()


async def new_vault(storage: MemoryStorage | None = None, *, clock: Callable[[], float]
                    | None = None, idle: float | None = None, kdf: KdfSpy = fast_kdf,
                    **kwargs: object) -> Vault:
    return await Vault.open(storage if storage is not None else MemoryStorage(),
                            CryptographyCipher(), idle_lock_seconds=idle,
                            clock=clock or FakeClock(), kdf=kdf, **kwargs)  # type: ignore[arg-type]


async def created(storage: MemoryStorage | None = None, **kwargs: object
                  ) -> tuple[Vault, MemoryStorage]:
    storage = storage if storage is not None else MemoryStorage()
    vault = await new_vault(storage, **kwargs)  # type: ignore[arg-type]
    await vault.create(PASSWORD)
    return vault, storage


def flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


# --- create, unlock, lock ---------------------------------------------------------


async def test_create_put_get_lock_unlock() -> None:
    vault, storage = await created()
    assert not vault.locked and await vault.exists()
    await vault.put("groups/alpha", MESSAGE)
    await vault.put("identity", b"\x00" * 64)
    assert await vault.get("groups/alpha") == MESSAGE
    assert await vault.get("missing") is None
    assert await vault.names() == ["groups/alpha", "identity"]
    await vault.delete("identity")
    await vault.delete("identity")  # absent: no error
    assert await vault.names() == ["groups/alpha"]

    vault.lock()
    assert vault.locked and vault.vault_id is None
    for call in (vault.get("groups/alpha"), vault.put("x", b"y"), vault.names(),
                 vault.delete("groups/alpha")):
        with pytest.raises(VaultLockedError):
            await call
    await vault.unlock(PASSWORD)
    assert await vault.get("groups/alpha") == MESSAGE

    # Another instance over the same storage (a reload) opens it too.
    again = await new_vault(storage)
    assert again.locked and await again.exists()
    await again.unlock(PASSWORD)
    assert await again.get("groups/alpha") == MESSAGE


async def test_each_write_has_a_fresh_nonce() -> None:
    vault, storage = await created()
    await vault.put("a", MESSAGE)
    first = storage.data[RECORD_PREFIX + "a"]
    await vault.put("a", MESSAGE)
    second = storage.data[RECORD_PREFIX + "a"]
    assert first[1:13] != second[1:13] and first != second
    assert first[0] == 1 and len(first) == 1 + 12 + len(MESSAGE) + 16


async def test_nothing_secret_in_storage() -> None:
    kdf = KdfSpy()
    storage = MemoryStorage()
    vault = await new_vault(storage, kdf=kdf)
    await vault.create(PASSWORD)
    key_bytes = bytes(range(32))
    await vault.put("signature-key", key_bytes)
    await vault.put("message", MESSAGE)
    header = VaultHeader.decode(storage.data[HEADER_NAME])
    kek = kdf(PASSWORD, header.salt, header.params)
    data_key = vault._key.material("encrypt")  # type: ignore[union-attr]  # test double only
    blob = b"".join(k.encode() + v for k, v in storage.data.items())
    for secret in (PASSWORD.encode(), MESSAGE, key_bytes, kek, data_key):
        assert secret not in blob
        assert secret.hex().encode() not in blob


async def test_create_refuses_an_existing_vault_and_unlock_needs_one() -> None:
    vault, storage = await created()
    before = dict(storage.data)
    with pytest.raises(VaultExistsError):
        await vault.create("another password")
    assert storage.data == before
    with pytest.raises(VaultNotFoundError):
        await (await new_vault()).unlock(PASSWORD)


async def test_create_removes_records_of_a_shredded_vault() -> None:
    vault, storage = await created()
    await vault.put("old", MESSAGE)
    del storage.data[HEADER_NAME]  # as after a panic interrupted before the wipe
    fresh = await new_vault(storage)
    await fresh.create("new password")
    assert await fresh.names() == []
    assert set(storage.data) == {HEADER_NAME}


async def test_password_is_nfc_normalized() -> None:
    storage = MemoryStorage()
    vault = await new_vault(storage)
    composed = "caf\u00e9 au lait"
    await vault.create(composed)
    vault.lock()
    await vault.unlock(unicodedata.normalize("NFD", composed))
    assert not vault.locked


# --- wrong password, bad input ----------------------------------------------------


async def test_wrong_password_changes_nothing() -> None:
    vault, storage = await created()
    await vault.put("a", MESSAGE)
    vault.lock()
    before = dict(storage.data)
    with pytest.raises(WrongPasswordError, match="wrong vault password"):
        await vault.unlock("Correct horse battery staple")
    assert storage.data == before and vault.locked
    # Unlocked, a wrong password leaves it unlocked.
    await vault.unlock(PASSWORD)
    with pytest.raises(WrongPasswordError):
        await vault.unlock("nope")
    assert storage.data == before
    assert await vault.get("a") == MESSAGE


@pytest.mark.parametrize("password", ["", 42, None, "x" * 5000])
async def test_invalid_passwords_are_refused(password: object) -> None:
    storage = MemoryStorage()
    vault = await new_vault(storage)
    with pytest.raises(InvalidPasswordError):
        await vault.create(password)  # type: ignore[arg-type]
    assert storage.data == {}


@pytest.mark.parametrize("name", ["", "\ud800", "n" * 1025, b"bytes", None])
async def test_invalid_record_names_are_refused(name: object) -> None:
    vault, storage = await created()
    before = dict(storage.data)
    with pytest.raises(InvalidRecordNameError):
        await vault.put(name, b"x")  # type: ignore[arg-type]
    with pytest.raises(InvalidRecordNameError):
        await vault.get(name)  # type: ignore[arg-type]
    vault.lock()
    with pytest.raises(InvalidRecordNameError):  # the name is checked first, even locked
        await vault.get(name)  # type: ignore[arg-type]
    assert storage.data == before


async def test_record_data_must_be_bytes() -> None:
    vault, _ = await created()
    with pytest.raises(TypeError, match="bytes"):
        await vault.put("a", "text")  # type: ignore[arg-type]
    await vault.put("b", bytearray(b"ok"))
    await vault.put("c", memoryview(b"ok"))
    assert await vault.get("b") == await vault.get("c") == b"ok"


# --- tampering ------------------------------------------------------------------------


async def test_tampered_record_is_detected_and_named() -> None:
    vault, storage = await created()
    await vault.put("groups/alpha", MESSAGE)
    original = storage.data[RECORD_PREFIX + "groups/alpha"]
    # The version byte, the nonce, the ciphertext, the tag.
    for index in (0, 1, 12, 13, len(original) - 1):
        storage.data[RECORD_PREFIX + "groups/alpha"] = flip(original, index)
        with pytest.raises(TamperedRecordError) as info:
            await vault.get("groups/alpha")
        assert info.value.name == "groups/alpha"
        assert "groups/alpha" in str(info.value)
    for truncated in (original[:20], original[:-1], b""):
        storage.data[RECORD_PREFIX + "groups/alpha"] = truncated
        with pytest.raises(TamperedRecordError):
            await vault.get("groups/alpha")
    storage.data[RECORD_PREFIX + "groups/alpha"] = original
    assert await vault.get("groups/alpha") == MESSAGE


async def test_records_cannot_move_between_names_or_vaults() -> None:
    vault, storage = await created()
    await vault.put("alice", b"alice's key")
    await vault.put("bob", b"bob's key")
    storage.data[RECORD_PREFIX + "bob"] = storage.data[RECORD_PREFIX + "alice"]
    with pytest.raises(TamperedRecordError) as info:
        await vault.get("bob")
    assert info.value.name == "bob"
    assert await vault.get("alice") == b"alice's key"

    # Same name, another vault.
    other, other_storage = await created()
    await other.put("alice", b"other")
    storage.data[RECORD_PREFIX + "alice"] = other_storage.data[RECORD_PREFIX + "alice"]
    with pytest.raises(TamperedRecordError):
        await vault.get("alice")


async def test_tampered_header_is_refused() -> None:
    vault, storage = await created()
    vault.lock()
    header = storage.data[HEADER_NAME]
    parsed = VaultHeader.decode(header)
    # Authenticated fields (vault id, costs, salt, wrap nonce, wrapped key): the
    # unwrap fails, which cannot be told apart from a wrong password.
    for index in (5, 27, 40, 55, len(header) - 1):
        storage.data[HEADER_NAME] = flip(header, index)
        with pytest.raises(WrongPasswordError):
            await vault.unlock(PASSWORD)
    # Malformed, unsupported or refused: a specific error.
    cases = {
        b"XXXX" + header[4:]: "magic",
        header[:4] + b"\x02" + header[5:]: "header version 2",
        header[:-1]: "wrong length",
        header[:10]: "truncated",
        header + b"\x00": "wrong length",
    }
    weak = VaultHeader(vault_id=parsed.vault_id, params=Argon2Params(memory_kib=32 * 1024),
                       salt=parsed.salt, wrap_nonce=parsed.wrap_nonce,
                       wrapped_key=parsed.wrapped_key)
    cases[weak.encode()] = "refused"
    for bad, message in cases.items():
        storage.data[HEADER_NAME] = bad
        with pytest.raises(VaultCorruptError, match=message):
            await vault.unlock(PASSWORD)
        assert vault.locked
    storage.data[HEADER_NAME] = header
    await vault.unlock(PASSWORD)


# --- parameters --------------------------------------------------------------------


@pytest.mark.parametrize("params", [
    Argon2Params(memory_kib=64 * 1024 - 1),
    Argon2Params(iterations=2),
    Argon2Params(parallelism=2),
    Argon2Params(length=16),
    Argon2Params(memory_kib=2 * 1024 * 1024),
    Argon2Params(iterations=65),
])
async def test_params_outside_the_limits_are_refused(params: Argon2Params) -> None:
    storage = MemoryStorage()
    vault = await new_vault(storage)
    with pytest.raises(KdfParameterError):
        await vault.create(PASSWORD, params)
    assert storage.data == {} and vault.locked


async def test_stored_params_are_used_so_they_can_be_raised() -> None:
    kdf = KdfSpy()
    storage = MemoryStorage()
    higher = Argon2Params(memory_kib=128 * 1024, iterations=4)
    vault = await new_vault(storage, kdf=kdf)
    await vault.create(PASSWORD, higher)
    await vault.put("a", MESSAGE)
    header = VaultHeader.decode(storage.data[HEADER_NAME])
    assert header.params == higher and header.schema_version == 1
    assert storage.data[HEADER_NAME][:5] == b"IVLT\x01"

    reopened = await new_vault(storage, kdf=kdf)
    kdf.calls.clear()
    await reopened.unlock(PASSWORD)
    assert kdf.calls == [higher]
    assert await reopened.get("a") == MESSAGE


# --- password change -----------------------------------------------------------------


async def test_change_password_rewraps_only() -> None:
    vault, storage = await created()
    await vault.put("a", MESSAGE)
    await vault.put("b", b"\x01" * 100)
    records = {k: v for k, v in storage.data.items() if k != HEADER_NAME}
    old_header = VaultHeader.decode(storage.data[HEADER_NAME])

    await vault.change_password(PASSWORD, "a new password")
    new_header = VaultHeader.decode(storage.data[HEADER_NAME])
    assert {k: v for k, v in storage.data.items() if k != HEADER_NAME} == records
    assert new_header.vault_id == old_header.vault_id
    assert new_header.params == old_header.params
    assert new_header.salt != old_header.salt
    assert new_header.wrapped_key != old_header.wrapped_key
    assert not vault.locked and await vault.get("a") == MESSAGE  # state kept

    vault.lock()
    with pytest.raises(WrongPasswordError):
        await vault.unlock(PASSWORD)
    await vault.unlock("a new password")
    assert await vault.get("b") == b"\x01" * 100


async def test_change_password_with_a_wrong_old_password_changes_nothing() -> None:
    vault, storage = await created()
    await vault.put("a", MESSAGE)
    vault.lock()
    before = dict(storage.data)
    with pytest.raises(WrongPasswordError):
        await vault.change_password("wrong", "new")
    assert storage.data == before and vault.locked
    # Works while locked, and leaves it locked.
    await vault.change_password(PASSWORD, "new")
    assert vault.locked
    await vault.unlock("new")
    assert await vault.get("a") == MESSAGE


async def test_change_password_can_raise_the_params() -> None:
    kdf = KdfSpy()
    vault, storage = await created(kdf=kdf)
    higher = Argon2Params(memory_kib=96 * 1024, iterations=5)
    await vault.change_password(PASSWORD, "new", higher)
    assert VaultHeader.decode(storage.data[HEADER_NAME]).params == higher
    with pytest.raises(KdfParameterError):
        await vault.change_password("new", "newer", Argon2Params(iterations=1))
    assert VaultHeader.decode(storage.data[HEADER_NAME]).params == higher
    vault.lock()
    kdf.calls.clear()
    await vault.unlock("new")
    assert kdf.calls == [higher]


# --- idle lock, listeners, other tabs ----------------------------------------------


async def test_idle_lock_with_an_injected_clock() -> None:
    clock = FakeClock()
    vault, _ = await created(clock=clock, idle=60.0)
    reasons: list[LockReason] = []
    vault.on_lock(reasons.append)
    await vault.put("a", MESSAGE)
    clock.now += 59
    assert await vault.get("a") == MESSAGE  # vault calls are not user activity...
    vault.touch()  # ...but touch() is
    clock.now += 59
    assert not vault.locked
    clock.now += 1
    with pytest.raises(VaultLockedError):
        await vault.get("a")
    assert vault.locked and reasons == [LockReason.IDLE]
    vault.touch()  # too late: does not revive it
    assert vault.locked
    await vault.unlock(PASSWORD)  # restarts the idle period
    clock.now += 30
    assert await vault.get("a") == MESSAGE
    clock.now += 30
    assert vault.check_idle() and reasons == [LockReason.IDLE, LockReason.IDLE]


async def test_idle_lock_fires_without_any_call() -> None:
    # The injected clock decides when the deadline passes; the watchdog (which wakes at
    # least every idle period of real time) only has to notice. No timing assumption.
    clock = FakeClock()
    vault = await Vault.open(MemoryStorage(), CryptographyCipher(), idle_lock_seconds=0.05,
                             kdf=fast_kdf, clock=clock)
    reasons: list[LockReason] = []
    locked = asyncio.Event()
    vault.on_lock(lambda r: (reasons.append(r), locked.set()))
    await vault.create(PASSWORD)
    clock.now += 0.04
    vault.touch()  # the deadline moves to now + 0.05
    clock.now += 0.04  # past the first deadline, not the second
    for _ in range(5):  # several watchdog rounds see a clock that has not passed it
        await asyncio.sleep(0.05)
    assert reasons == [] and not vault.locked
    clock.now += 0.02
    await asyncio.wait_for(locked.wait(), timeout=60)  # nobody calls the vault
    assert reasons == [LockReason.IDLE] and vault._key is None


async def test_idle_lock_none_never_locks() -> None:
    clock = FakeClock()
    vault, _ = await created(clock=clock, idle=None)
    clock.now += 10**9
    assert not vault.locked


async def test_lock_listeners(caplog: pytest.LogCaptureFixture) -> None:
    vault, _ = await created()
    heard: list[str] = []

    def broken(reason: LockReason) -> None:
        raise RuntimeError("listener bug")

    vault.on_lock(broken)
    remove = vault.on_lock(lambda r: heard.append(f"a:{r.value}"))
    vault.on_lock(lambda r: heard.append(f"b:{r.value}"))
    with caplog.at_level(logging.ERROR):
        vault.lock()
    assert heard == ["a:user", "b:user"]
    assert "lock listener failed" in caplog.text
    vault.lock()  # already locked: no second notification
    assert heard == ["a:user", "b:user"]
    remove()
    await vault.unlock(PASSWORD)
    vault.lock()
    assert heard == ["a:user", "b:user", "b:user"]


async def test_locking_one_tab_locks_the_others() -> None:
    bus = LocalLockBus()
    storage = MemoryStorage()
    tab1 = await new_vault(storage, channel=bus.channel())
    tab2 = await new_vault(storage, channel=bus.channel())
    await tab1.create(PASSWORD)
    await tab2.unlock(PASSWORD)
    heard: list[LockReason] = []
    tab2.on_lock(heard.append)
    tab1.lock()
    assert tab1.locked and tab2.locked and heard == [LockReason.REMOTE]
    with pytest.raises(VaultLockedError):
        await tab2.get("a")
    # Unlocking never propagates.
    await tab1.unlock(PASSWORD)
    assert tab2.locked
    # An idle lock is announced too.
    clock = FakeClock()
    tab3 = await new_vault(storage, channel=bus.channel(), clock=clock, idle=5.0)
    await tab3.unlock(PASSWORD)
    clock.now += 5
    assert tab3.locked and tab1.locked
    await tab2.unlock(PASSWORD)
    tab1.close()  # a closed tab neither sends nor hears
    await tab1.unlock(PASSWORD)
    tab1.lock()
    assert not tab2.locked


async def test_lock_during_an_operation_returns_no_plaintext() -> None:
    gate = asyncio.Event()

    class SlowCipher(CryptographyCipher):
        async def decrypt(self, key: KeyHandle, nonce: bytes, aad: bytes, ciphertext: bytes
                          ) -> bytes:
            out = await super().decrypt(key, nonce, aad, ciphertext)
            await gate.wait()
            return out

        async def unwrap(self, kek: KeyHandle, nonce: bytes, aad: bytes, wrapped: bytes
                         ) -> KeyHandle:
            key = await super().unwrap(kek, nonce, aad, wrapped)
            await gate.wait()
            return key

    storage = MemoryStorage()
    vault = await Vault.open(storage, SlowCipher(), idle_lock_seconds=None, kdf=fast_kdf)
    await vault.create(PASSWORD)
    await vault.put("a", MESSAGE)
    pending = asyncio.ensure_future(vault.get("a"))
    await asyncio.sleep(0)
    vault.lock()
    gate.set()
    with pytest.raises(VaultLockedError):
        await pending
    # A lock while unlocking (e.g. from another tab) wins.
    gate.clear()
    pending_unlock = asyncio.ensure_future(vault.unlock(PASSWORD))
    await asyncio.sleep(0)
    vault.lock()
    gate.set()
    with pytest.raises(VaultLockedError):
        await pending_unlock
    assert vault.locked


# --- panic -----------------------------------------------------------------------------


class RecordingStorage(MemoryStorage):
    """Logs every operation; can be told to fail some."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, str]] = []
        self.fail: set[str] = set()

    def _log(self, op: str, name: str = "") -> None:
        self.ops.append((op, name))
        if op in self.fail:
            raise VaultStorageError(f"{op} failed (simulated)")

    async def get(self, name: str) -> bytes | None:
        self._log("get", name)
        return await super().get(name)

    async def put(self, name: str, data: bytes) -> None:
        self._log("put", name)
        await super().put(name, data)

    async def delete(self, name: str) -> None:
        self._log("delete", name)
        await super().delete(name)

    async def names(self) -> list[str]:
        self._log("names")
        return await super().names()

    async def wipe_all(self) -> list[str]:
        self._log("wipe_all")
        return await super().wipe_all()


async def test_panic_shreds_first_then_wipes_and_does_not_wait_for_the_server() -> None:
    storage = RecordingStorage()
    bus = LocalLockBus()
    vault = await new_vault(storage, channel=bus.channel())
    other_tab = await new_vault(storage, channel=bus.channel())
    await vault.create(PASSWORD)
    await vault.put("a", MESSAGE)
    await other_tab.unlock(PASSWORD)
    heard: list[LockReason] = []
    other_tab.on_lock(heard.append)
    vault.on_lock(heard.append)

    started = asyncio.Event()
    never = asyncio.Event()
    cleanup_calls = 0

    async def server_cleanup() -> None:
        nonlocal cleanup_calls
        cleanup_calls += 1
        started.set()
        await never.wait()  # the server never answers

    storage.ops.clear()
    report = await asyncio.wait_for(vault.panic(server_cleanup), timeout=2)
    assert storage.ops[0] == ("delete", HEADER_NAME)  # crypto-shred before anything else
    assert ("wipe_all", "") in storage.ops
    assert storage.data == {}
    assert report.complete and report.shredded and report.wiped and report.cleanup_started
    assert vault.locked and vault._key is None and other_tab.locked
    assert sorted(r.value for r in heard) == ["panic", "panic"]
    assert not await vault.exists()
    assert cleanup_calls == 1
    await asyncio.wait_for(started.wait(), timeout=1)  # it did start, in the background
    never.set()
    await asyncio.sleep(0)

    # A fresh vault can be created afterwards.
    await vault.create("new")
    assert await vault.names() == []


async def test_panic_goes_on_after_failures(caplog: pytest.LogCaptureFixture) -> None:
    storage = RecordingStorage()
    vault = await new_vault(storage)
    await vault.create(PASSWORD)
    storage.fail = {"delete"}

    async def failing_cleanup() -> None:
        raise ConnectionError("offline")

    with caplog.at_level(logging.WARNING):
        report = await vault.panic(failing_cleanup)
        await asyncio.sleep(0.01)  # let the background clean-up fail
    assert not report.shredded and report.wiped and not report.complete
    assert "deleting the vault header failed" in report.errors[0]
    assert storage.data == {} and vault.locked  # wiped anyway
    assert "server clean-up failed (ConnectionError)" in caplog.text

    def cleanup_that_raises_at_once() -> asyncio.Future[None]:
        raise RuntimeError("bug")

    storage.fail = {"wipe_all"}
    report = await vault.panic(cleanup_that_raises_at_once)
    assert report.shredded and not report.wiped and not report.cleanup_started
    assert "wiping the storage failed" in report.errors[0]


async def test_panic_on_a_corrupt_or_absent_vault() -> None:
    storage = MemoryStorage()
    storage.data[HEADER_NAME] = b"garbage"
    storage.data[RECORD_PREFIX + "x"] = b"garbage"
    vault = await new_vault(storage)
    with pytest.raises(VaultCorruptError):
        await vault.unlock(PASSWORD)
    report = await vault.panic()
    assert report.complete and storage.data == {}
    assert (await vault.panic()).complete  # nothing left: still fine


# --- file storage ------------------------------------------------------------------


async def test_file_storage(tmp_path: Path) -> None:
    directory = tmp_path / "vault"
    vault = await Vault.open(FileStorage(directory), CryptographyCipher(),
                             idle_lock_seconds=None, kdf=fast_kdf)
    await vault.create(PASSWORD)
    await vault.put("groups/a b/ü", MESSAGE)
    assert all(MESSAGE not in p.read_bytes() for p in directory.iterdir())
    reopened = await Vault.open(FileStorage(directory), CryptographyCipher(),
                                idle_lock_seconds=None, kdf=fast_kdf)
    await reopened.unlock(PASSWORD)
    assert await reopened.names() == ["groups/a b/ü"]
    assert await reopened.get("groups/a b/ü") == MESSAGE
    assert (await reopened.panic()).complete
    assert not directory.exists()


# --- Argon2id ----------------------------------------------------------------------

# Argon2id v1.3, m=65536 KiB, t=3, p=1, 32 bytes, password "pw", 16 zero bytes of salt:
# computed with argon2-cffi and, independently, with libsodium's crypto_pwhash.
KNOWN_ANSWER = "eb70621ddcc18e8006d5605c72d8712b03493b3ed8f7259b53402ecabbadd9e3"


def test_argon2id_known_answer_and_argon2_cffi() -> None:
    from argon2.low_level import Type, hash_secret_raw

    assert derive_key_argon2id("pw", bytes(16)).hex() == KNOWN_ANSWER
    params = Argon2Params(memory_kib=65 * 1024, iterations=4)
    salt = bytes(range(16))
    password = "pässwörd ✓"
    expected = hash_secret_raw(password.encode(), salt, time_cost=4, memory_cost=65 * 1024,
                               parallelism=1, hash_len=32, type=Type.ID, version=19)
    assert derive_key_argon2id(password, salt, params) == expected
    # RFC 9106's Argon2id vector (section 5.3) uses p=4, m=32 KiB, a secret and
    # associated data: outside what the vault's Argon2id accepts, so not run here.


async def test_real_argon2id_end_to_end() -> None:
    storage = MemoryStorage()
    vault = await Vault.open(storage, CryptographyCipher(), idle_lock_seconds=None)
    await vault.create(PASSWORD)
    await vault.put("a", MESSAGE)
    header = VaultHeader.decode(storage.data[HEADER_NAME])
    assert header.params == Argon2Params()
    vault.lock()
    with pytest.raises(WrongPasswordError):
        await vault.unlock("wrong")
    await vault.unlock(PASSWORD)
    assert await vault.get("a") == MESSAGE


def test_header_round_trip() -> None:
    header = VaultHeader(vault_id=bytes(range(16)), params=Argon2Params(),
                         salt=bytes(range(16, 32)), wrap_nonce=bytes(12),
                         wrapped_key=bytes(48))
    encoded = header.encode()
    assert VaultHeader.decode(encoded) == header
    magic, version, vault_id, schema = struct.unpack_from(">4sB16sH", encoded)
    assert (magic, version, vault_id, schema) == (b"IVLT", 1, bytes(range(16)), 1)
    assert len(encoded) == 112
