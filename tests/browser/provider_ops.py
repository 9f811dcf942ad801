"""Runs provider operations and reports their outcomes as JSON-able values.

Runtime-neutral on purpose: ``test_pyodide_provider.py`` runs the same operations
through the CPython provider in-process and, by sending this file's source to
Pyodide, through the Pyodide provider, then compares outcomes. An operation is
``[method, alg, *hex_args]``; its outcome is ``["bytes", hex]``, ``["bool", b]``,
``["pair", hex, hex]`` (ML-KEM encapsulation: shared secret and ciphertext) or
``["raises", exception class name]``. ``signing_key`` takes the key and a message and
signs the message with the function ``provider.signing_key`` returns.
"""

from __future__ import annotations

from typing import Any

from mls.crypto import AeadAlg, CryptoProvider, KemAlg, SignatureScheme
from mls.errors import MLSError

_ALG_TYPE = {
    "aead_seal": AeadAlg,
    "aead_open": AeadAlg,
    "kem_public_key": KemAlg,
    "dh": KemAlg,
    "dh_with_public": KemAlg,
    "kem_encap": KemAlg,
    "kem_decap": KemAlg,
    "signature_public_key": SignatureScheme,
    "sign": SignatureScheme,
    "signing_key": SignatureScheme,
    "verify": SignatureScheme,
}


def outcome(provider: CryptoProvider, op: list[Any]) -> list[Any]:
    method, alg, *args = op
    try:
        if method == "signing_key":
            key, message = map(bytes.fromhex, args)
            result = provider.signing_key(SignatureScheme(alg), key)(message)
        else:
            result = getattr(provider, method)(_ALG_TYPE[method](alg), *map(bytes.fromhex, args))
    except MLSError as e:
        return ["raises", type(e).__name__]
    if isinstance(result, bool):
        return ["bool", result]
    if isinstance(result, tuple):
        return ["pair", *(part.hex() for part in result)]
    return ["bytes", result.hex()]


def outcomes(provider: CryptoProvider, ops: list[list[Any]]) -> list[list[Any]]:
    return [outcome(provider, op) for op in ops]
