"""The encrypted vault: encryption at rest for everything the client stores.

Key hierarchy::

    password --Argon2id(salt, m, t, p)--> KEK --AES-256-GCM wrap--> data key (256 bit)
    data key --AES-256-GCM, random 96-bit nonce per write--> each record

* The **header** (plaintext, no secrets) holds the vault id, the schema version, the
  Argon2id parameters and salt, and the data key wrapped under the KEK with its
  nonce. The wrap's AAD is the whole header up to the salt, so the parameters, salt,
  vault id and versions are authenticated by a successful unlock. The parameters
  are read from the header, so raising the defaults later leaves existing vaults
  readable, and :meth:`Vault.change_password` can move a vault to higher ones.
* Each **record** is ``version (1) || nonce (12) || AES-256-GCM(ciphertext || tag)``
  with AAD ``label || vault id || schema version || record version || len(name) ||
  name``: a record copied to another name or from another vault fails
  authentication (:class:`TamperedRecordError`). Random 96-bit nonces keep the
  collision probability below 2^-32 for 2^32 writes under one data key (NIST SP
  800-38D, 8.3): a write per second for 136 years.
* In the browser the data key is generated inside WebCrypto and only ever exists
  there as a non-extractable ``CryptoKey`` (see :mod:`corecrypto.vault.browser`);
  the KEK's bytes pass through memory once, from Argon2id to WebCrypto's import.

Locking drops every key handle; it happens on :meth:`Vault.lock`, after
``idle_lock_seconds`` without :meth:`Vault.touch`, when another tab locks (through
the :class:`LockChannel`), and on :meth:`Vault.panic`, which crypto-shreds the vault
(deletes the header: without the wrapped data key and salt the records are noise)
before wiping the client's storage.

What this does not protect against (by design; see the README): code running in
the page while the vault is unlocked; rollback of a record to an earlier value
under the *same* name, or deletion of records, by someone able to write the
browser's storage (there is nothing outside that storage to anchor a version
counter to); record names, which are stored in plaintext and must not be secret.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import struct
import time
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..errors import KdfParameterError
from ..kdf import Argon2Params, derive_key_argon2id
from .interfaces import (
    AuthenticationError,
    InvalidPasswordError,
    InvalidRecordNameError,
    KeyHandle,
    LockChannel,
    TamperedRecordError,
    VaultCipher,
    VaultCorruptError,
    VaultError,
    VaultExistsError,
    VaultLockedError,
    VaultNotFoundError,
    VaultStorage,
    VaultStorageError,
    WrongPasswordError,
)

__all__ = [
    "DEFAULT_IDLE_LOCK_SECONDS",
    "AuthenticationError",
    "InvalidPasswordError",
    "InvalidRecordNameError",
    "KeyHandle",
    "LockChannel",
    "LockReason",
    "PanicReport",
    "TamperedRecordError",
    "Vault",
    "VaultCipher",
    "VaultCorruptError",
    "VaultError",
    "VaultExistsError",
    "VaultHeader",
    "VaultLockedError",
    "VaultNotFoundError",
    "VaultStorage",
    "VaultStorageError",
    "WrongPasswordError",
    "record_aad",
]

log = logging.getLogger(__name__)

# --- format constants -------------------------------------------------------------------

MAGIC = b"IVLT"
HEADER_VERSION = 1  # layout of the header
SCHEMA_VERSION = 1  # layout of records (and of what the client stores in them)
RECORD_VERSION = 1  # first byte of every record
KDF_ARGON2ID13 = 1  # Argon2id, version 0x13 (RFC 9106)

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # AES-GCM's 96-bit nonce
TAG_BYTES = 16
VAULT_ID_BYTES = 16
SALT_BYTES = 16  # libsodium's crypto_pwhash takes exactly 16
WRAPPED_KEY_BYTES = KEY_BYTES + TAG_BYTES

# Upper bounds on the stored costs: a header asking for more is refused rather than
# making the tab allocate gigabytes or spin for minutes. 1 GiB and 64 passes are far
# above what a browser tab should ever be configured with.
MAX_MEMORY_KIB = 1024 * 1024
MAX_ITERATIONS = 64
MAX_PASSWORD_CHARS = 4096
MAX_NAME_BYTES = 1024

# Storage names. The header has its own name so that deleting it shreds the vault.
HEADER_NAME = "vault-header"
RECORD_PREFIX = "record:"

_WRAP_LABEL = b"intellacc vault v1 data key\x00"
_RECORD_LABEL = b"intellacc vault v1 record\x00"

# magic, header version, vault id, schema version, KDF id, m (KiB), t, p, salt length
_FIXED = struct.Struct(">4sB16sHBIIBB")

DEFAULT_IDLE_LOCK_SECONDS = 15 * 60.0

CHANNEL_LOCK = "lock"
CHANNEL_PANIC = "panic"


class LockReason(enum.Enum):
    """Why the vault locked (passed to the :meth:`Vault.on_lock` listeners)."""

    USER = "user"  # lock() was called
    IDLE = "idle"  # no activity for idle_lock_seconds
    REMOTE = "remote"  # another tab locked
    PANIC = "panic"  # panic() here or in another tab


LockListener = Callable[[LockReason], None]
Kdf = Callable[[str, bytes, Argon2Params], bytes]


# --- header -----------------------------------------------------------------------------


def _check_params(params: Argon2Params) -> None:
    """The KDF floor (Argon2Params.check) plus the vault's own limits."""
    params.check()
    if params.length != KEY_BYTES:
        raise KdfParameterError(f"the vault's KEK is {KEY_BYTES} bytes: length must be "
                                f"{KEY_BYTES}")
    if params.memory_kib > MAX_MEMORY_KIB or params.iterations > MAX_ITERATIONS:
        raise KdfParameterError(f"Argon2id costs above m={MAX_MEMORY_KIB} KiB, "
                                f"t={MAX_ITERATIONS} are not allowed")


@dataclass(frozen=True)
class VaultHeader:
    """The vault's plaintext header. Nothing in it is secret."""

    vault_id: bytes
    params: Argon2Params
    salt: bytes
    wrap_nonce: bytes
    wrapped_key: bytes
    schema_version: int = SCHEMA_VERSION

    def authenticated_prefix(self) -> bytes:
        """The header up to the salt: authenticated as the AAD of the key wrap."""
        fixed = _FIXED.pack(MAGIC, HEADER_VERSION, self.vault_id, self.schema_version,
                            KDF_ARGON2ID13, self.params.memory_kib, self.params.iterations,
                            self.params.parallelism, len(self.salt))
        return fixed + self.salt

    def wrap_aad(self) -> bytes:
        return _WRAP_LABEL + self.authenticated_prefix()

    def encode(self) -> bytes:
        return (self.authenticated_prefix() + self.wrap_nonce
                + struct.pack(">H", len(self.wrapped_key)) + self.wrapped_key)

    @classmethod
    def decode(cls, data: bytes) -> VaultHeader:
        """Parse and validate; :class:`VaultCorruptError` says what is wrong."""
        if len(data) < _FIXED.size:
            raise VaultCorruptError("the vault header is truncated")
        (magic, version, vault_id, schema, kdf, m_kib, t, p,
         salt_len) = _FIXED.unpack_from(data)
        if magic != MAGIC:
            raise VaultCorruptError("this is not a vault header (bad magic)")
        if version != HEADER_VERSION:
            raise VaultCorruptError(f"unsupported vault header version {version} "
                                    f"(this client reads {HEADER_VERSION})")
        if schema != SCHEMA_VERSION:
            raise VaultCorruptError(f"unsupported vault schema version {schema} "
                                    f"(this client reads {SCHEMA_VERSION})")
        if kdf != KDF_ARGON2ID13:
            raise VaultCorruptError(f"unsupported key derivation function {kdf}")
        if salt_len != SALT_BYTES:
            raise VaultCorruptError(f"the vault salt must be {SALT_BYTES} bytes")
        params = Argon2Params(memory_kib=m_kib, iterations=t, parallelism=p)
        try:
            _check_params(params)
        except KdfParameterError as e:
            raise VaultCorruptError(f"the vault header's Argon2id parameters are refused: "
                                    f"{e}") from None
        pos = _FIXED.size
        salt = data[pos:pos + SALT_BYTES]
        pos += SALT_BYTES
        nonce = data[pos:pos + NONCE_BYTES]
        pos += NONCE_BYTES
        if len(data) < pos + 2:
            raise VaultCorruptError("the vault header is truncated")
        (wrapped_len,) = struct.unpack_from(">H", data, pos)
        pos += 2
        if wrapped_len != WRAPPED_KEY_BYTES or len(data) != pos + wrapped_len:
            raise VaultCorruptError("the vault header's wrapped key has the wrong length")
        return cls(vault_id=vault_id, params=params, salt=bytes(salt),
                   wrap_nonce=bytes(nonce), wrapped_key=bytes(data[pos:]),
                   schema_version=schema)


def record_aad(vault_id: bytes, name: str, schema_version: int = SCHEMA_VERSION) -> bytes:
    """The AAD of a record: binds it to this vault, schema and name."""
    encoded = _encode_name(name)
    return (_RECORD_LABEL + vault_id + struct.pack(">HBH", schema_version, RECORD_VERSION,
                                                   len(encoded)) + encoded)


def _encode_name(name: str) -> bytes:
    if not isinstance(name, str) or not name:
        raise InvalidRecordNameError("a record name must be a non-empty string")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRecordNameError("a record name must be valid Unicode") from None
    if len(encoded) > MAX_NAME_BYTES:
        raise InvalidRecordNameError(f"a record name must be at most {MAX_NAME_BYTES} bytes")
    return encoded


def _normalize_password(password: str) -> str:
    """NFC, so the same password typed on different keyboards derives the same key."""
    if not isinstance(password, str) or not password:
        raise InvalidPasswordError("the vault password must be a non-empty string")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidPasswordError(f"the vault password must be at most "
                                   f"{MAX_PASSWORD_CHARS} characters")
    return unicodedata.normalize("NFC", password)


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"vault records are bytes, not {type(data).__name__}")
    return bytes(data)


@dataclass(frozen=True)
class PanicReport:
    """What :meth:`Vault.panic` did. ``errors`` describes each step that failed."""

    shredded: bool  # the header (wrapped data key and salt) was deleted
    wiped: bool  # wipe_all() reported no failure
    cleanup_started: bool  # server_cleanup was called and scheduled
    errors: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return self.shredded and self.wiped and not self.errors


# Cleanup tasks scheduled by panic(), kept referenced until they finish (the event loop
# only holds weak references to tasks).
_background: set[asyncio.Future[None]] = set()


# --- the vault --------------------------------------------------------------------------


class Vault:
    """An encrypted key-value store of records (name -> bytes).

    Open with :meth:`open`, then :meth:`create` the first time or :meth:`unlock`.
    Every method that reads or writes records requires the vault unlocked and raises
    :class:`VaultLockedError` otherwise. Errors leave the storage unchanged.
    """

    def __init__(self, storage: VaultStorage, cipher: VaultCipher, *,
                 idle_lock_seconds: float | None, clock: Callable[[], float], kdf: Kdf,
                 channel: LockChannel | None) -> None:
        """Use :meth:`open`."""
        if idle_lock_seconds is not None and not idle_lock_seconds > 0:
            raise ValueError("idle_lock_seconds must be positive (or None: no idle lock)")
        self._storage = storage
        self._cipher = cipher
        self._idle = idle_lock_seconds
        self._clock = clock
        self._kdf = kdf
        self._channel = channel
        self._key: KeyHandle | None = None
        self._header: VaultHeader | None = None
        # Incremented whenever the keys are dropped: an operation that awaited across
        # a lock sees it changed and stops instead of using a stale key.
        self._generation = 0
        self._last_activity = 0.0
        self._listeners: list[LockListener] = []
        self._watchdog: asyncio.Task[None] | None = None
        if channel is not None:
            channel.subscribe(self._on_channel_message)

    @classmethod
    async def open(cls, storage: VaultStorage, cipher: VaultCipher, *,
                   idle_lock_seconds: float | None = DEFAULT_IDLE_LOCK_SECONDS,
                   clock: Callable[[], float] = time.monotonic,
                   kdf: Kdf = derive_key_argon2id,
                   channel: LockChannel | None = None) -> Vault:
        """A locked vault over ``storage`` and ``cipher``.

        ``idle_lock_seconds``: lock after this long without :meth:`touch` (None:
        never). ``clock``: monotonic seconds (injectable for tests). ``kdf``: Argon2id
        (injectable so tests need not pay 64 MiB per unlock; the parameters are
        checked here whatever the function). ``channel``: to lock and be locked by
        the vaults of other tabs.
        """
        return cls(storage, cipher, idle_lock_seconds=idle_lock_seconds, clock=clock,
                   kdf=kdf, channel=channel)

    # --- state ---------------------------------------------------------------------------

    async def exists(self) -> bool:
        """Whether a vault header is stored (asked of the storage each time, since
        another tab may have created or destroyed the vault)."""
        return await self._storage.get(HEADER_NAME) is not None

    @property
    def locked(self) -> bool:
        """True unless the vault is unlocked and not past its idle time."""
        return self.check_idle()

    @property
    def vault_id(self) -> bytes | None:
        """The unlocked vault's id (not secret), None while locked."""
        return None if self._header is None else self._header.vault_id

    def on_lock(self, listener: LockListener) -> Callable[[], None]:
        """Call ``listener(reason)`` whenever the vault goes from unlocked to locked.
        Returns a function that removes the listener."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def touch(self) -> None:
        """Record user activity: postpones the idle lock. Vault operations do not
        count as activity on purpose, so background work (syncing messages) never
        keeps an unattended vault open."""
        if not self.check_idle():
            self._last_activity = self._clock()

    def check_idle(self) -> bool:
        """Lock if the idle time has passed; returns whether the vault is locked."""
        if self._key is None:
            return True
        if self._idle is not None and self._clock() - self._last_activity >= self._idle:
            self._lock(LockReason.IDLE, publish=True)
            return True
        return False

    def lock(self) -> None:
        """Drop every key from memory, and tell the other tabs to do the same."""
        self._lock(LockReason.USER, publish=True)

    def close(self) -> None:
        """Lock and stop listening to the other tabs."""
        self._lock(LockReason.USER, publish=False)
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    # --- create, unlock, change password ----------------------------------------------

    async def create(self, password: str, params: Argon2Params | None = None) -> None:
        """Create the vault and leave it unlocked. :class:`VaultExistsError` if a
        header is already stored (unlock it, or panic to start over)."""
        password = _normalize_password(password)
        params = Argon2Params() if params is None else params
        _check_params(params)
        if await self.exists():
            raise VaultExistsError("a vault already exists here")
        # Records left by a vault that was shredded (a panic interrupted before the
        # wipe) can never be read again: remove them so they do not linger.
        for name in await self._storage.names():
            if name.startswith(RECORD_PREFIX):
                await self._storage.delete(name)
        rnd = self._cipher.random
        draft = VaultHeader(vault_id=rnd(VAULT_ID_BYTES), params=params,
                            salt=rnd(SALT_BYTES), wrap_nonce=rnd(NONCE_BYTES),
                            wrapped_key=b"")
        kek = await self._derive_kek(password, draft)
        try:
            key, wrapped = await self._cipher.new_data_key(kek, draft.wrap_nonce,
                                                           draft.wrap_aad())
        finally:
            kek.destroy()
        header = VaultHeader(vault_id=draft.vault_id, params=params, salt=draft.salt,
                             wrap_nonce=draft.wrap_nonce, wrapped_key=wrapped)
        try:
            await self._storage.put(HEADER_NAME, header.encode())
        except BaseException:
            key.destroy()
            raise
        self._set_unlocked(key, header)

    async def unlock(self, password: str) -> None:
        """Unlock with ``password``. :class:`WrongPasswordError` if it is wrong; then
        nothing changes (an unlocked vault stays unlocked, a locked one locked)."""
        password = _normalize_password(password)
        header = await self._read_header()
        generation = self._generation
        kek = await self._derive_kek(password, header)
        try:
            key = await self._cipher.unwrap(kek, header.wrap_nonce, header.wrap_aad(),
                                            header.wrapped_key)
        except AuthenticationError:
            raise WrongPasswordError(
                "wrong vault password (or the vault header was altered)") from None
        finally:
            kek.destroy()
        if generation != self._generation:
            # lock() (here, idle or from another tab) while we were deriving: honour it.
            key.destroy()
            raise VaultLockedError("the vault was locked while it was being unlocked")
        if self._key is not None:
            self._key.destroy()
        self._set_unlocked(key, header)

    async def change_password(self, old_password: str, new_password: str,
                              params: Argon2Params | None = None) -> None:
        """Re-wrap the data key under a key derived from ``new_password`` with a new
        salt (and ``params``, default: the current ones; use this to raise them).
        Records are not touched. :class:`WrongPasswordError` if ``old_password`` is
        wrong; nothing changes then. The lock state is kept."""
        old_password = _normalize_password(old_password)
        new_password = _normalize_password(new_password)
        header = await self._read_header()
        params = header.params if params is None else params
        _check_params(params)
        old_kek = await self._derive_kek(password=old_password, header=header)
        try:
            # Check the old password before paying for the second derivation.
            probe = await self._cipher.unwrap(old_kek, header.wrap_nonce,
                                              header.wrap_aad(), header.wrapped_key)
            probe.destroy()
            rnd = self._cipher.random
            new = VaultHeader(vault_id=header.vault_id, params=params, salt=rnd(SALT_BYTES),
                              wrap_nonce=rnd(NONCE_BYTES), wrapped_key=b"")
            new_kek = await self._derive_kek(new_password, new)
            try:
                wrapped = await self._cipher.rewrap(
                    old_kek, header.wrap_nonce, header.wrap_aad(),
                    new_kek, new.wrap_nonce, new.wrap_aad(), header.wrapped_key)
            finally:
                new_kek.destroy()
        except AuthenticationError:
            raise WrongPasswordError(
                "wrong vault password (or the vault header was altered)") from None
        finally:
            old_kek.destroy()
        new = VaultHeader(vault_id=new.vault_id, params=params, salt=new.salt,
                          wrap_nonce=new.wrap_nonce, wrapped_key=wrapped)
        # One put: the header is replaced atomically, never half old, half new.
        await self._storage.put(HEADER_NAME, new.encode())
        if self._key is not None:
            self._header = new

    async def _derive_kek(self, password: str, header: VaultHeader) -> KeyHandle:
        _check_params(header.params)  # whatever the injected kdf does
        # Synchronous on purpose: libsodium's Argon2id is (the tab is busy for
        # ~0.2 s per derivation; moving it to a Worker would be the fix).
        kek = self._kdf(password, header.salt, header.params)
        if len(kek) != KEY_BYTES:
            raise KdfParameterError("the key derivation returned a key of the wrong size")
        # Python cannot wipe an immutable bytes object; dropping the only reference is
        # the most it can do. In the browser the JS copy is zeroed after the import.
        return await self._cipher.import_kek(kek)

    async def _read_header(self) -> VaultHeader:
        data = await self._storage.get(HEADER_NAME)
        if data is None:
            raise VaultNotFoundError("there is no vault here: create one first")
        return VaultHeader.decode(data)

    def _set_unlocked(self, key: KeyHandle, header: VaultHeader) -> None:
        self._key = key
        self._header = header
        self._last_activity = self._clock()
        self._start_watchdog()

    # --- records -------------------------------------------------------------------------

    async def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        """Encrypt ``data`` and store it under ``name`` (replacing any record)."""
        encoded_aad = self._aad(name)
        plaintext = _as_bytes(data)
        key, generation = self._unlocked()
        nonce = self._cipher.random(NONCE_BYTES)
        ciphertext = await self._cipher.encrypt(key, nonce, encoded_aad, plaintext)
        # A lock (or a panic: it wipes the storage) while encrypting: write nothing.
        self._check_generation(generation)
        await self._storage.put(RECORD_PREFIX + name,
                                bytes([RECORD_VERSION]) + nonce + ciphertext)

    async def get(self, name: str) -> bytes | None:
        """The record's plaintext, or None if there is no record ``name``.
        :class:`TamperedRecordError` if it fails authentication."""
        encoded_aad = self._aad(name)
        key, generation = self._unlocked()
        stored = await self._storage.get(RECORD_PREFIX + name)
        self._check_generation(generation)
        if stored is None:
            return None
        if len(stored) < 1 + NONCE_BYTES + TAG_BYTES:
            raise TamperedRecordError(name, "is truncated")
        if stored[0] != RECORD_VERSION:
            raise TamperedRecordError(name, f"has an unknown format version {stored[0]}")
        nonce, ciphertext = stored[1:1 + NONCE_BYTES], stored[1 + NONCE_BYTES:]
        try:
            plaintext = await self._cipher.decrypt(key, nonce, encoded_aad, ciphertext)
        except AuthenticationError:
            raise TamperedRecordError(name) from None
        # Locked while decrypting: the caller asked a locked vault, so no plaintext.
        self._check_generation(generation)
        return plaintext

    async def delete(self, name: str) -> None:
        """Delete the record ``name`` (no error if absent)."""
        _encode_name(name)
        self._unlocked()
        await self._storage.delete(RECORD_PREFIX + name)

    async def names(self) -> list[str]:
        """The names of the stored records, sorted."""
        _, generation = self._unlocked()
        stored = await self._storage.names()
        self._check_generation(generation)
        return sorted(n[len(RECORD_PREFIX):] for n in stored if n.startswith(RECORD_PREFIX))

    def _aad(self, name: str) -> bytes:
        header = self._header
        if header is None:
            _encode_name(name)  # a bad name is reported as such, even when locked
            raise VaultLockedError("the vault is locked")
        return record_aad(header.vault_id, name, header.schema_version)

    def _unlocked(self) -> tuple[KeyHandle, int]:
        if self.check_idle() or self._key is None:
            raise VaultLockedError("the vault is locked")
        return self._key, self._generation

    def _check_generation(self, generation: int) -> None:
        if generation != self._generation:
            raise VaultLockedError("the vault was locked during the operation")

    # --- locking -------------------------------------------------------------------------

    def _drop_keys(self) -> bool:
        """Forget every key; returns whether the vault was unlocked."""
        was_unlocked = self._key is not None
        self._generation += 1
        if self._key is not None:
            self._key.destroy()
        self._key = None
        self._header = None
        if self._watchdog is not None:
            if self._watchdog is not _current_task():
                self._watchdog.cancel()
            self._watchdog = None
        return was_unlocked

    def _lock(self, reason: LockReason, *, publish: bool) -> None:
        was_unlocked = self._drop_keys()
        self._announce(reason, publish=publish, notify=was_unlocked)

    def _announce(self, reason: LockReason, *, publish: bool, notify: bool) -> None:
        """Tell the other tabs (``publish``) and the listeners (``notify``)."""
        if publish and self._channel is not None:
            message = CHANNEL_PANIC if reason is LockReason.PANIC else CHANNEL_LOCK
            try:
                self._channel.publish(message)
            except Exception:  # the local lock has happened; the others are best effort
                log.warning("vault: could not tell the other tabs to lock", exc_info=True)
        if notify:
            log.info("vault locked (%s)", reason.value)
            for listener in list(self._listeners):
                try:
                    listener(reason)
                except Exception:  # a UI bug must not stop the others from hearing
                    log.exception("vault: a lock listener failed")

    def _on_channel_message(self, message: str) -> None:
        reason = LockReason.PANIC if message == CHANNEL_PANIC else LockReason.REMOTE
        # Any message locks: there is no message that could do anything else.
        self._lock(reason, publish=False)

    def _start_watchdog(self) -> None:
        if self._idle is None:
            return
        if self._watchdog is not None:
            self._watchdog.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (sync caller): the checks on each call remain
            self._watchdog = None
            return
        self._watchdog = loop.create_task(self._watch(self._generation))

    async def _watch(self, generation: int) -> None:
        """Lock at the idle deadline even if nothing calls the vault. Browsers delay
        timers of background tabs; the check on every call covers that gap."""
        assert self._idle is not None
        while generation == self._generation and self._key is not None:
            remaining = self._last_activity + self._idle - self._clock()
            if remaining <= 0:
                self.check_idle()
                return
            await asyncio.sleep(remaining)

    # --- panic ---------------------------------------------------------------------------

    async def panic(self, server_cleanup: Callable[[], Awaitable[None]] | None = None
                    ) -> PanicReport:
        """Destroy the vault and everything the client stores, as fast as possible.

        1. drop every key from memory (synchronously, before anything can fail);
        2. crypto-shred: delete the header (the wrapped data key and the salt), so the
           records can never be decrypted, even if the rest of the wipe fails;
        3. tell the other tabs (they drop their keys and close their connections);
        4. start ``server_cleanup()`` (delete this device's KeyPackages, revoke its
           session) without waiting for it: it runs in the background, and its
           failure is logged. It starts before the wipe so that a slow wipe (a
           database held open by another tab) does not delay the request;
        5. ``wipe_all()``: every IndexedDB database, localStorage, sessionStorage,
           Cache Storage, service workers.

        Goes on after a failure; the report says what failed. Never raises for a
        storage failure (a panic button must not stop half-way).
        """
        errors: list[str] = []
        self._drop_keys()
        shredded = False
        try:
            await self._storage.delete(HEADER_NAME)
            shredded = True
        except Exception as e:  # noqa: BLE001 - reported; the panic must go on
            errors.append(f"deleting the vault header failed: {e}")
        # Listeners hear of a panic even if the vault was locked: the UI must reset.
        self._announce(LockReason.PANIC, publish=True, notify=True)
        cleanup_started = False
        if server_cleanup is not None:
            cleanup_started = _start_background(server_cleanup)
        wiped = False
        try:
            problems = await self._storage.wipe_all()
            errors.extend(problems)
            wiped = not problems
        except Exception as e:  # noqa: BLE001 - reported; the panic must go on
            errors.append(f"wiping the storage failed: {e}")
        if errors:
            log.warning("vault panic incomplete: %s", "; ".join(errors))
        return PanicReport(shredded=shredded, wiped=wiped, cleanup_started=cleanup_started,
                           errors=tuple(errors))


def _current_task() -> asyncio.Task[object] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def _start_background(cleanup: Callable[[], Awaitable[None]]) -> bool:
    try:
        future = asyncio.ensure_future(cleanup())
    except Exception:
        log.warning("vault panic: the server clean-up could not start", exc_info=True)
        return False
    _background.add(future)
    future.add_done_callback(_cleanup_done)
    return True


def _cleanup_done(future: asyncio.Future[None]) -> None:
    _background.discard(future)
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        # The type only: an HTTP library's message may quote a request with a token.
        log.warning("vault panic: the server clean-up failed (%s)", type(error).__name__)

