"""The vault's browser implementations, over ``web/js/vault.mjs`` (registered in
Pyodide as ``vault_js`` by ``web/js/mls_runtime.mjs``).

* :class:`BrowserStorage`: the IndexedDB database ``intellacc-vault``; ``wipe_all``
  deletes every IndexedDB database of the origin, localStorage, sessionStorage,
  Cache Storage, and unregisters the service workers.
* :class:`BrowserCipher`: WebCrypto. The data key is generated inside WebCrypto and
  held as a non-extractable ``CryptoKey``; Python only holds a proxy to it, and
  neither Python nor JS can read its bytes. The KEK is imported non-extractable
  with the wrapKey/unwrapKey usages only (the JS copy of its bytes is zeroed after
  the import). The data key is extractable only inside ``rewrap``, transiently,
  inside WebCrypto.
* :class:`BrowserLockChannel`: the BroadcastChannel ``intellacc-vault``.

Only importable under Pyodide (the ``vault_js`` and ``pyodide`` modules are looked
up at call time, so that CPython can still import and type-check this module).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from .core import DEFAULT_IDLE_LOCK_SECONDS, Vault
from .interfaces import AuthenticationError, KeyHandle, VaultLockedError, VaultStorageError

MODULE_NAME = "vault_js"


def _js() -> Any:
    return importlib.import_module(MODULE_NAME)


def _to_js(data: bytes) -> Any:
    """A JS Uint8Array copy of ``data``."""
    return importlib.import_module("pyodide.ffi").to_js(data)


def _bytes(value: Any) -> bytes:
    """Python bytes of a JS Uint8Array proxy."""
    data: bytes = value.to_bytes()
    return data


class BrowserStorage:
    """:class:`~corecrypto.vault.interfaces.VaultStorage` in IndexedDB."""

    def __init__(self) -> None:
        self._js = _js()
        self._js_error: type[Exception] = importlib.import_module("pyodide.ffi").JsException

    async def _call(self, what: str, method: str, *args: Any) -> Any:
        try:
            return await getattr(self._js, method)(*args)
        except self._js_error as e:  # IndexedDB's messages hold no record contents
            raise VaultStorageError(f"IndexedDB {what} failed: {e}") from None

    async def get(self, name: str) -> bytes | None:
        value = await self._call("read", "storageGet", name)
        return None if value is None else _bytes(value)

    async def put(self, name: str, data: bytes) -> None:
        await self._call("write", "storagePut", name, _to_js(data))

    async def delete(self, name: str) -> None:
        await self._call("delete", "storageDelete", name)

    async def names(self) -> list[str]:
        keys = await self._call("listing", "storageNames")
        return [str(k) for k in keys.to_py()]

    async def wipe_all(self) -> list[str]:
        problems = await self._js.wipeAll()  # never rejects: failures are listed
        return [str(p) for p in problems.to_py()]


class _CryptoKey(KeyHandle):
    """A proxy to a WebCrypto CryptoKey (its bytes are out of reach)."""

    __slots__ = ("_proxy",)

    def __init__(self, proxy: Any) -> None:
        self._proxy: Any = proxy

    @property
    def proxy(self) -> Any:
        if self._proxy is None:
            raise VaultLockedError("the key was dropped (the vault is locked)")
        return self._proxy

    def destroy(self) -> None:
        # Dropping the proxy releases Python's reference at once (reference counting);
        # the CryptoKey is then unreachable and left to the JS garbage collector (JS
        # offers nothing more deterministic).
        self._proxy = None


def _handle(key: KeyHandle) -> Any:
    if not isinstance(key, _CryptoKey):
        raise TypeError("not a key of this cipher")
    return key.proxy


class BrowserCipher:
    """:class:`~corecrypto.vault.interfaces.VaultCipher` over WebCrypto (AES-256-GCM)."""

    def __init__(self) -> None:
        self._js = _js()

    async def import_kek(self, kek: bytes) -> KeyHandle:
        return _CryptoKey(await self._js.importKek(_to_js(kek)))

    async def new_data_key(self, kek: KeyHandle, nonce: bytes, aad: bytes
                           ) -> tuple[KeyHandle, bytes]:
        result = await self._js.newDataKey(_handle(kek), _to_js(nonce), _to_js(aad))
        return _CryptoKey(result.key), _bytes(result.wrapped)

    async def unwrap(self, kek: KeyHandle, nonce: bytes, aad: bytes, wrapped: bytes
                     ) -> KeyHandle:
        key = await self._js.unwrapDataKey(_handle(kek), _to_js(nonce), _to_js(aad),
                                           _to_js(wrapped))
        if key is None:
            raise AuthenticationError("the data key did not unwrap")
        return _CryptoKey(key)

    async def rewrap(self, old_kek: KeyHandle, old_nonce: bytes, old_aad: bytes,
                     new_kek: KeyHandle, new_nonce: bytes, new_aad: bytes,
                     wrapped: bytes) -> bytes:
        out = await self._js.rewrapDataKey(_handle(old_kek), _to_js(old_nonce),
                                           _to_js(old_aad), _handle(new_kek),
                                           _to_js(new_nonce), _to_js(new_aad),
                                           _to_js(wrapped))
        if out is None:
            raise AuthenticationError("the data key did not unwrap")
        return _bytes(out)

    async def encrypt(self, key: KeyHandle, nonce: bytes, aad: bytes, plaintext: bytes
                      ) -> bytes:
        return _bytes(await self._js.encrypt(_handle(key), _to_js(nonce), _to_js(aad),
                                             _to_js(plaintext)))

    async def decrypt(self, key: KeyHandle, nonce: bytes, aad: bytes, ciphertext: bytes
                      ) -> bytes:
        out = await self._js.decrypt(_handle(key), _to_js(nonce), _to_js(aad),
                                     _to_js(ciphertext))
        if out is None:
            raise AuthenticationError("AES-GCM authentication failed")
        return _bytes(out)

    def random(self, n: int) -> bytes:
        return _bytes(self._js.randomBytes(n))


class BrowserLockChannel:
    """:class:`~corecrypto.vault.interfaces.LockChannel` over a BroadcastChannel."""

    def __init__(self) -> None:
        create_proxy = importlib.import_module("pyodide.ffi").create_proxy
        self._callbacks: list[Callable[[str], None]] = []
        # Kept until close(): JS calls it for every message from another tab.
        self._proxy: Any = create_proxy(self._dispatch)
        self._channel: Any = _js().openLockChannel(self._proxy)

    def _dispatch(self, message: Any) -> None:
        for callback in list(self._callbacks):
            callback(str(message))

    def subscribe(self, callback: Callable[[str], None]) -> None:
        self._callbacks.append(callback)

    def publish(self, message: str) -> None:
        if self._channel is not None:
            self._channel.post(message)

    def close(self) -> None:
        channel, self._channel = self._channel, None
        proxy, self._proxy = self._proxy, None
        self._callbacks.clear()
        if channel is not None:
            channel.close()
        if proxy is not None:
            proxy.destroy()


async def open_browser_vault(*, idle_lock_seconds: float | None = DEFAULT_IDLE_LOCK_SECONDS
                             ) -> Vault:
    """The page's vault: IndexedDB, WebCrypto, and locking shared with the other
    tabs of the origin."""
    return await Vault.open(BrowserStorage(), BrowserCipher(),
                            idle_lock_seconds=idle_lock_seconds,
                            channel=BrowserLockChannel())
