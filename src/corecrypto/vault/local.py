"""CPython implementations of the vault's interfaces, for tests and tools.

* :class:`MemoryStorage`: a dict; :class:`FileStorage`: one file per name in a
  directory (atomic replace, fsync).
* :class:`CryptographyCipher`: AES-256-GCM with ``cryptography``. It is the test
  double of WebCrypto and follows its rules (a KEK can only wrap and unwrap, a data
  key only encrypt and decrypt, a destroyed handle is unusable), but its handles
  hold the key bytes in Python memory. The browser's :class:`BrowserCipher
  <corecrypto.vault.browser.BrowserCipher>` never exposes the data key's bytes: it
  exists only as a non-extractable ``CryptoKey``.
* :class:`LocalLockBus`: the in-process equivalent of a BroadcastChannel.

The formats are the same as the browser's (AES-GCM ``ciphertext || tag``, the data
key wrapped as AES-GCM of its 32 raw bytes), so a vault written by one can be read
by the other.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from .interfaces import AuthenticationError, KeyHandle, VaultLockedError, VaultStorageError

KEY_BYTES = 32


class MemoryStorage:
    """A :class:`~corecrypto.vault.interfaces.VaultStorage` in a dict (``data``)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def get(self, name: str) -> bytes | None:
        return self.data.get(name)

    async def put(self, name: str, data: bytes) -> None:
        self.data[name] = bytes(data)

    async def delete(self, name: str) -> None:
        self.data.pop(name, None)

    async def names(self) -> list[str]:
        return list(self.data)

    async def wipe_all(self) -> list[str]:
        self.data.clear()
        return []


class FileStorage:
    """A :class:`~corecrypto.vault.interfaces.VaultStorage` in a directory: one file per
    name (the file name is the hex of the UTF-8 name, so any name is safe)."""

    SUFFIX = ".rec"

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _path(self, name: str) -> Path:
        return self.directory / (name.encode("utf-8").hex() + self.SUFFIX)

    async def get(self, name: str) -> bytes | None:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise VaultStorageError(f"reading a vault file failed: {e.strerror}") from e

    async def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # atomic: the old bytes or the new, never a mix
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise VaultStorageError(f"writing a vault file failed: {e.strerror}") from e

    async def delete(self, name: str) -> None:
        try:
            self._path(name).unlink(missing_ok=True)
        except OSError as e:
            raise VaultStorageError(f"deleting a vault file failed: {e.strerror}") from e

    async def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        out = []
        for path in self.directory.iterdir():
            if path.name.endswith(self.SUFFIX) and not path.name.startswith("."):
                try:
                    out.append(bytes.fromhex(path.name[: -len(self.SUFFIX)]).decode("utf-8"))
                except ValueError:
                    continue  # not one of ours
        return out

    async def wipe_all(self) -> list[str]:
        try:
            shutil.rmtree(self.directory)
        except FileNotFoundError:
            pass
        except OSError as e:
            return [f"removing {self.directory} failed: {e.strerror}"]
        return []


class _Key(KeyHandle):
    """A key's bytes and what it may be used for (as a WebCrypto key's usages)."""

    __slots__ = ("_material", "usage")

    def __init__(self, material: bytes, usage: str) -> None:
        self._material: bytes | None = material
        self.usage = usage

    def material(self, usage: str) -> bytes:
        if self._material is None:
            raise VaultLockedError("the key was dropped (the vault is locked)")
        if usage != self.usage:
            raise TypeError(f"a {self.usage} key cannot be used to {usage}")
        return self._material

    def destroy(self) -> None:
        self._material = None


def _key(handle: KeyHandle) -> _Key:
    if not isinstance(handle, _Key):
        raise TypeError("not a key of this cipher")
    return handle


def _check_nonce(nonce: bytes) -> None:
    if len(nonce) != 12:
        raise ValueError("AES-GCM nonces are 12 bytes here")


class CryptographyCipher:
    """A :class:`~corecrypto.vault.interfaces.VaultCipher` over ``cryptography``'s AESGCM
    (see the module docstring: a test double whose handles hold key bytes)."""

    _WRAP = "wrap"
    _DATA = "encrypt"

    def __init__(self, random: Callable[[int], bytes] = os.urandom) -> None:
        self._random = random

    @staticmethod
    def _seal(key: bytes, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

        _check_nonce(nonce)
        return AESGCM(key).encrypt(nonce, plaintext, aad)

    @staticmethod
    def _open(key: bytes, nonce: bytes, aad: bytes, ciphertext: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag  # noqa: PLC0415
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

        _check_nonce(nonce)
        try:
            return AESGCM(key).decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise AuthenticationError("AES-GCM authentication failed") from None

    async def import_kek(self, kek: bytes) -> KeyHandle:
        if len(kek) != KEY_BYTES:
            raise ValueError("the KEK must be 32 bytes")
        return _Key(bytes(kek), self._WRAP)

    async def new_data_key(self, kek: KeyHandle, nonce: bytes, aad: bytes
                           ) -> tuple[KeyHandle, bytes]:
        material = self._random(KEY_BYTES)
        wrapped = self._seal(_key(kek).material(self._WRAP), nonce, aad, material)
        return _Key(material, self._DATA), wrapped

    async def unwrap(self, kek: KeyHandle, nonce: bytes, aad: bytes, wrapped: bytes
                     ) -> KeyHandle:
        material = self._open(_key(kek).material(self._WRAP), nonce, aad, wrapped)
        if len(material) != KEY_BYTES:
            raise AuthenticationError("the unwrapped key has the wrong size")
        return _Key(material, self._DATA)

    async def rewrap(self, old_kek: KeyHandle, old_nonce: bytes, old_aad: bytes,
                     new_kek: KeyHandle, new_nonce: bytes, new_aad: bytes,
                     wrapped: bytes) -> bytes:
        material = self._open(_key(old_kek).material(self._WRAP), old_nonce, old_aad,
                              wrapped)
        return self._seal(_key(new_kek).material(self._WRAP), new_nonce, new_aad, material)

    async def encrypt(self, key: KeyHandle, nonce: bytes, aad: bytes, plaintext: bytes
                      ) -> bytes:
        return self._seal(_key(key).material(self._DATA), nonce, aad, plaintext)

    async def decrypt(self, key: KeyHandle, nonce: bytes, aad: bytes, ciphertext: bytes
                      ) -> bytes:
        return self._open(_key(key).material(self._DATA), nonce, aad, ciphertext)

    def random(self, n: int) -> bytes:
        return self._random(n)


class LocalLockBus:
    """Connects :class:`LocalLockChannel` objects the way a BroadcastChannel connects
    the tabs of an origin: a message goes to every channel but its sender."""

    def __init__(self) -> None:
        self._channels: list[LocalLockChannel] = []

    def channel(self) -> LocalLockChannel:
        channel = LocalLockChannel(self)
        self._channels.append(channel)
        return channel

    def _deliver(self, sender: LocalLockChannel, message: str) -> None:
        for channel in list(self._channels):
            if channel is not sender:
                channel._receive(message)

    def _remove(self, channel: LocalLockChannel) -> None:
        if channel in self._channels:
            self._channels.remove(channel)


class LocalLockChannel:
    """A :class:`~corecrypto.vault.interfaces.LockChannel` on a :class:`LocalLockBus`."""

    def __init__(self, bus: LocalLockBus) -> None:
        self._bus: LocalLockBus | None = bus
        self._callbacks: list[Callable[[str], None]] = []

    def publish(self, message: str) -> None:
        if self._bus is not None:
            self._bus._deliver(self, message)

    def subscribe(self, callback: Callable[[str], None]) -> None:
        self._callbacks.append(callback)

    def close(self) -> None:
        if self._bus is not None:
            self._bus._remove(self)
            self._bus = None
        self._callbacks.clear()

    def _receive(self, message: str) -> None:
        for callback in list(self._callbacks):
            callback(message)
