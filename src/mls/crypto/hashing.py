"""Hash and HMAC from the standard library, shared by every provider.

``hashlib`` and ``hmac`` exist both on CPython and in Pyodide's core, so no
provider needs to cross into a foreign runtime for them.
"""

from __future__ import annotations

import hashlib
import hmac

from .provider import HashAlg


def digest(alg: HashAlg, data: bytes) -> bytes:
    return hashlib.new(alg.hashlib_name, data).digest()


def hmac_digest(alg: HashAlg, key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, alg.hashlib_name)
