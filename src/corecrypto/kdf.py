"""Password-based key derivation with Argon2id (RFC 9106).

On CPython this uses argon2-cffi; under Pyodide, libsodium's ``crypto_pwhash``
(through ``web/js/vault.mjs``, registered as ``vault_js``). Both compute
Argon2id v1.3 with parallelism 1, so the same password, salt and costs give
the same key on both.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

from .errors import KdfParameterError

SALT_MIN = 16


@dataclass(frozen=True)
class Argon2Params:
    """Costs: ``memory_kib`` KiB, ``iterations`` passes, ``parallelism`` lanes.

    The defaults (64 MiB, t=3, p=1) are the floor: weaker values are refused.
    """

    memory_kib: int = 64 * 1024
    iterations: int = 3
    parallelism: int = 1
    length: int = 32

    def check(self) -> None:
        if self.memory_kib < 64 * 1024 or self.iterations < 3:
            raise KdfParameterError("Argon2id costs below m=64 MiB, t=3 are not allowed")
        if self.parallelism != 1:
            # libsodium (the browser implementation) only computes p=1.
            raise KdfParameterError("Argon2id parallelism must be 1")
        if not 16 <= self.length <= 64:
            raise KdfParameterError("Argon2id output length must be 16..64 bytes")


DEFAULT_PARAMS = Argon2Params()


def derive_key_argon2id(password: str, salt: bytes, params: Argon2Params = DEFAULT_PARAMS
                        ) -> bytes:
    """Argon2id(password, salt) -> ``params.length`` bytes (32 by default)."""
    if not isinstance(salt, bytes | bytearray) or len(salt) < SALT_MIN:
        raise KdfParameterError(f"the salt must be at least {SALT_MIN} bytes")
    params.check()
    secret = password.encode("utf-8")
    if sys.platform == "emscripten":
        return _libsodium(secret, bytes(salt), params)
    # argon2-cffi is a compiled wheel that Pyodide cannot load: imported on CPython only.
    from argon2.low_level import Type, hash_secret_raw  # noqa: PLC0415

    return hash_secret_raw(secret, bytes(salt), time_cost=params.iterations,
                           memory_cost=params.memory_kib, parallelism=params.parallelism,
                           hash_len=params.length, type=Type.ID, version=19)


def _libsodium(secret: bytes, salt: bytes, params: Argon2Params) -> bytes:
    if len(salt) != 16:
        raise KdfParameterError("in the browser (libsodium) the Argon2id salt must be 16 bytes")
    # Registered by web/js/vault.mjs (loaded by mls_runtime.mjs); absent on CPython,
    # hence imported by name. Synchronous: libsodium's crypto_pwhash is.
    js = importlib.import_module("vault_js")
    to_js = importlib.import_module("pyodide.ffi").to_js
    out = js.argon2id(to_js(secret), to_js(salt), params.iterations, params.memory_kib * 1024,
                      params.length)
    if out is None:
        raise KdfParameterError("libsodium refused the Argon2id parameters")
    result: bytes = out.to_bytes()
    out.fill(0)  # the JS copy; Python's bytes cannot be wiped
    return result
