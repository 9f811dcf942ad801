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


def digest(alg: HashAlg, data: bytes) -> bytes:
    return hashlib.new(alg.hashlib_name, data).digest()


def hmac_digest(alg: HashAlg, key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, alg.hashlib_name)


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
