"""Hash, HMAC and randomness from the standard library, shared by every provider.

``hashlib``, ``hmac`` and ``os.urandom`` exist both on CPython and in Pyodide
(where Emscripten backs ``urandom`` with ``crypto.getRandomValues``), so no
provider needs to cross into a foreign runtime for them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys
from collections.abc import Callable

from .provider import HashAlg

# Read-only tables: hashlib's named constructors are faster than hashlib.new.
_CONSTRUCTOR = {HashAlg.SHA256: hashlib.sha256, HashAlg.SHA384: hashlib.sha384,
                HashAlg.SHA512: hashlib.sha512}
_NAME = {alg: alg.hashlib_name for alg in HashAlg}


def digest(alg: HashAlg, data: bytes) -> bytes:
    return _CONSTRUCTOR[alg](data).digest()


def hmac_digest(alg: HashAlg, key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, _NAME[alg])


#: HMAC's ipad and opad (RFC 2104 §2) as integers, by hash block size.
_IPAD = {n: int.from_bytes(b"\x36" * n, "big") for n in (64, 128)}
_OPAD = {n: int.from_bytes(b"\x5c" * n, "big") for n in (64, 128)}


#: Whether :func:`hmac_keyed` beats one ``hmac.digest`` per MAC: on CPython, where
#: OpenSSL sets up each one-shot HMAC afresh and hash states copy cheaply, it does;
#: in Pyodide (builtin HACL* hashes, WebAssembly) three ``hmac.digest`` calls
#: cost a third of it (measured under Node).
KEYED_HMAC_FASTER = sys.platform != "emscripten"


def hmac_keyed(alg: HashAlg) -> Callable[[bytes], Callable[[bytes], bytes]]:
    """HMAC (RFC 2104) from ``hashlib`` for keys that MAC several messages (a
    ratchet step, the sender data key and nonce): ``hmac_keyed(alg)(key)`` hashes
    the key's inner and outer pads once and returns ``mac(data)``, which then
    costs two hash state copies. (The standard library's HMAC does the same
    work in each ``hmac.digest`` call.) Where that is slower, the MACs are
    ``hmac.digest`` calls (:data:`KEYED_HMAC_FASTER`)."""
    if not KEYED_HMAC_FASTER:
        name = alg.hashlib_name
        return lambda key: lambda data: hmac.digest(key, data, name)
    new = _CONSTRUCTOR[alg]
    block = alg.block_size
    ipad, opad = _IPAD[block], _OPAD[block]

    def keyed(key: bytes) -> Callable[[bytes], bytes]:
        if len(key) > block:
            key = new(key).digest()
        k = int.from_bytes(key, "big") << (8 * (block - len(key)))  # zero-padded to a block
        inner = new((k ^ ipad).to_bytes(block, "big"))
        outer = new((k ^ opad).to_bytes(block, "big"))

        def mac(data: bytes) -> bytes:
            h = inner.copy()
            h.update(data)
            o = outer.copy()
            o.update(h.digest())
            return o.digest()

        return mac

    return keyed


def shake256(data: bytes, length: int) -> bytes:
    """SHAKE256 (FIPS 202 §6.2) with ``length`` output bytes."""
    return hashlib.shake_256(data).digest(length)


def sha3_256(data: bytes) -> bytes:
    """SHA3-256 (FIPS 202 §6.1)."""
    return hashlib.sha3_256(data).digest()


class StdlibPrimitives:
    """The provider methods every runtime implements the same way."""

    __slots__ = ()

    def random(self, n: int) -> bytes:
        return os.urandom(n)

    def hash(self, alg: HashAlg, data: bytes) -> bytes:
        return digest(alg, data)

    def hmac(self, alg: HashAlg, key: bytes, data: bytes) -> bytes:
        return hmac_digest(alg, key, data)
