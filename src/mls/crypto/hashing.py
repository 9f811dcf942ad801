"""Hash, HMAC and randomness from the standard library, shared by every provider.

``hashlib``, ``hmac`` and ``os.urandom`` exist both on CPython and in Pyodide
(where Emscripten backs ``urandom`` with ``crypto.getRandomValues``), so no
provider needs to cross into a foreign runtime for them.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from .provider import HashAlg

# Read-only tables: hashlib's named constructors are faster than hashlib.new.
_CONSTRUCTOR = {HashAlg.SHA256: hashlib.sha256, HashAlg.SHA384: hashlib.sha384,
                HashAlg.SHA512: hashlib.sha512}
_NAME = {alg: alg.hashlib_name for alg in HashAlg}


def digest(alg: HashAlg, data: bytes) -> bytes:
    return _CONSTRUCTOR[alg](data).digest()


def hmac_digest(alg: HashAlg, key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, _NAME[alg])


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
