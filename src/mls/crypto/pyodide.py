"""The browser crypto provider: audited JavaScript libraries through Pyodide's FFI.

The primitives live in ``web/js/mls_crypto.mjs`` (libsodium for Ed25519, X25519 and
ChaCha20-Poly1305; noble for AES-GCM, the NIST curves and Ed448/X448). The page or
the Node harness initializes that module and registers it as ``mls_crypto_js``
before any Python runs, so every call here is synchronous: one FFI crossing per
primitive, no awaiting. Hashes, HMAC and randomness stay in Python (``hashlib``,
``hmac`` and ``os.urandom``, which Emscripten backs with
``crypto.getRandomValues``): a crossing costs more than hashing a few hundred bytes.

Length checks happen here, before crossing, with the CPython provider's messages;
the JS side reports any other rejection (invalid point or scalar, bad tag, all-zero
shared secret) by returning ``undefined``, which arrives as ``None``.

This module imports on CPython (for type checking); only constructing
:class:`PyodideProvider` needs Pyodide.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from ..errors import CryptoError, DecryptionError
from .hashing import digest, hmac_digest
from .provider import AeadAlg, HashAlg, KemAlg, SignatureScheme

#: Serialized private-key sizes (RFC 9180 §7.1 ``Nsk``).
_KEM_SK_LEN = {
    KemAlg.DHKEM_P256: 32,
    KemAlg.DHKEM_P384: 48,
    KemAlg.DHKEM_P521: 66,
    KemAlg.DHKEM_X25519: 32,
    KemAlg.DHKEM_X448: 56,
}
#: Serialized public-key sizes (RFC 9180 §7.1 ``Npk``).
_KEM_PK_LEN = {
    KemAlg.DHKEM_P256: 65,
    KemAlg.DHKEM_P384: 97,
    KemAlg.DHKEM_P521: 133,
    KemAlg.DHKEM_X25519: 32,
    KemAlg.DHKEM_X448: 56,
}
#: Curve names as the CPython provider spells them in its errors.
_CURVE_NAME = {
    KemAlg.DHKEM_P256: "secp256r1",
    KemAlg.DHKEM_P384: "secp384r1",
    KemAlg.DHKEM_P521: "secp521r1",
    SignatureScheme.ECDSA_SECP256R1_SHA256: "secp256r1",
    SignatureScheme.ECDSA_SECP384R1_SHA384: "secp384r1",
    SignatureScheme.ECDSA_SECP521R1_SHA512: "secp521r1",
}
_SIG_SK_LEN = {
    SignatureScheme.ED25519: 32,
    SignatureScheme.ED448: 57,
    SignatureScheme.ECDSA_SECP256R1_SHA256: 32,
    SignatureScheme.ECDSA_SECP384R1_SHA384: 48,
    SignatureScheme.ECDSA_SECP521R1_SHA512: 66,
}
_ECDSA_PK_LEN = {
    SignatureScheme.ECDSA_SECP256R1_SHA256: 65,
    SignatureScheme.ECDSA_SECP384R1_SHA384: 97,
    SignatureScheme.ECDSA_SECP521R1_SHA512: 133,
}
_NONCE_LEN = 12  # every MLS AEAD (RFC 9180 §7.3 Nn)


def _is_montgomery(kem: KemAlg) -> bool:
    return kem in (KemAlg.DHKEM_X25519, KemAlg.DHKEM_X448)


def _is_eddsa(scheme: SignatureScheme) -> bool:
    return scheme in (SignatureScheme.ED25519, SignatureScheme.ED448)


def _is_uncompressed_point(public_key: bytes, length: int) -> bool:
    # Only the uncompressed SEC1 form is valid in MLS (RFC 9180 §7.1.1); noble would
    # also accept the compressed one.
    return len(public_key) == length and public_key[0] == 4


def _ec_scalar(curve: str, size: int, private_key: bytes) -> bytes:
    """The fixed-size big-endian scalar noble expects. Like the CPython provider, accept
    encoders that strip leading zero octets (seen in the message-protection vectors)."""
    if not 0 < len(private_key) <= size:
        raise CryptoError(f"{curve} private key must be {size} bytes")
    return private_key.rjust(size, b"\0")


def _load_js() -> tuple[Any, Any]:
    """The registered JS primitives and Pyodide's ``to_js``."""
    # Imported by name at construction: neither module exists on CPython, where this
    # file must still import for type checking.
    try:
        js = importlib.import_module("mls_crypto_js")
        ffi = importlib.import_module("pyodide.ffi")
    except ImportError as e:
        raise RuntimeError(
            "PyodideProvider needs Pyodide with the JS module 'mls_crypto_js' registered "
            "(call register(pyodide) from web/js/mls_crypto.mjs before running Python)"
        ) from e
    return js, ffi.to_js


class PyodideProvider:
    """:class:`~mls.crypto.provider.CryptoProvider` over JS libraries, for Pyodide."""

    name = "pyodide-js"

    __slots__ = (
        "_aead_open",
        "_aead_seal",
        "_dh",
        "_kem_public_key",
        "_sign",
        "_signature_public_key",
        "_to_js",
        "_verify",
    )

    def __init__(self) -> None:
        js, to_js = _load_js()
        # Bound once: each attribute lookup on a JS object is itself an FFI crossing.
        self._to_js = to_js
        self._aead_seal = js.aead_seal
        self._aead_open = js.aead_open
        self._kem_public_key = js.kem_public_key
        self._dh = js.dh
        self._signature_public_key = js.signature_public_key
        self._sign = js.sign
        self._verify = js.verify

    def _call(self, fn: Any, alg: int, *args: bytes) -> bytes | None:
        """One crossing: bytes go over as fresh Uint8Arrays (``to_js`` copies, so no
        PyProxy is created and none needs destroying); the Uint8Array result comes back
        as a JsProxy, freed with its last Python reference."""
        to_js = self._to_js
        result = fn(alg, *[to_js(a) for a in args])
        if result is None:
            return None
        out: bytes = result.to_bytes()
        return out

    def random(self, n: int) -> bytes:
        return os.urandom(n)

    def hash(self, alg: HashAlg, data: bytes) -> bytes:
        return digest(alg, data)

    def hmac(self, alg: HashAlg, key: bytes, data: bytes) -> bytes:
        return hmac_digest(alg, key, data)

    # -- AEAD ------------------------------------------------------------------
    @staticmethod
    def _check_aead(alg: AeadAlg, key: bytes, nonce: bytes) -> None:
        if len(key) != alg.key_size:
            raise CryptoError(f"{alg.name} key must be {alg.key_size} bytes")
        if len(nonce) != _NONCE_LEN:
            raise CryptoError(f"{alg.name} nonce must be {_NONCE_LEN} bytes")

    def aead_seal(
        self, alg: AeadAlg, key: bytes, nonce: bytes, aad: bytes, plaintext: bytes
    ) -> bytes:
        self._check_aead(alg, key, nonce)
        out = self._call(self._aead_seal, alg.value, key, nonce, aad, plaintext)
        if out is None:
            raise CryptoError(f"{alg.name} encryption failed")
        return out

    def aead_open(
        self, alg: AeadAlg, key: bytes, nonce: bytes, aad: bytes, ciphertext: bytes
    ) -> bytes:
        self._check_aead(alg, key, nonce)
        out = self._call(self._aead_open, alg.value, key, nonce, aad, ciphertext)
        if out is None:
            raise DecryptionError("AEAD authentication failed")
        return out

    # -- KEM -------------------------------------------------------------------
    @staticmethod
    def _kem_private(kem: KemAlg, private_key: bytes) -> bytes:
        if _is_montgomery(kem):
            if len(private_key) != _KEM_SK_LEN[kem]:
                raise CryptoError(f"invalid {kem.name} private key")
            return private_key
        return _ec_scalar(_CURVE_NAME[kem], _KEM_SK_LEN[kem], private_key)

    def kem_public_key(self, kem: KemAlg, private_key: bytes) -> bytes:
        out = self._call(self._kem_public_key, kem.value, self._kem_private(kem, private_key))
        if out is None:
            if _is_montgomery(kem):
                raise CryptoError(f"invalid {kem.name} private key")
            raise CryptoError(f"invalid {_CURVE_NAME[kem]} private scalar")
        return out

    def dh(self, kem: KemAlg, private_key: bytes, public_key: bytes) -> bytes:
        private_key = self._kem_private(kem, private_key)
        if _is_montgomery(kem):
            if len(public_key) != _KEM_PK_LEN[kem]:
                raise CryptoError(f"{kem.name} key agreement failed: invalid key")
        elif not _is_uncompressed_point(public_key, _KEM_PK_LEN[kem]):
            raise CryptoError(f"{_CURVE_NAME[kem]} public key must be an uncompressed point")
        out = self._call(self._dh, kem.value, private_key, public_key)
        if out is None:  # invalid point or scalar, low-order point, all-zero output
            raise CryptoError(f"{kem.name} key agreement failed: invalid key")
        return out

    # -- signatures --------------------------------------------------------------
    @staticmethod
    def _sig_private(scheme: SignatureScheme, private_key: bytes) -> bytes:
        if _is_eddsa(scheme):
            if len(private_key) != _SIG_SK_LEN[scheme]:
                raise CryptoError(f"invalid {scheme.name} private key")
            return private_key
        return _ec_scalar(_CURVE_NAME[scheme], _SIG_SK_LEN[scheme], private_key)

    @staticmethod
    def _invalid_sig_private(scheme: SignatureScheme) -> CryptoError:
        if _is_eddsa(scheme):
            return CryptoError(f"invalid {scheme.name} private key")
        return CryptoError(f"invalid {_CURVE_NAME[scheme]} private scalar")

    def signature_public_key(self, scheme: SignatureScheme, private_key: bytes) -> bytes:
        private_key = self._sig_private(scheme, private_key)
        out = self._call(self._signature_public_key, scheme.value, private_key)
        if out is None:
            raise self._invalid_sig_private(scheme)
        return out

    def sign(self, scheme: SignatureScheme, private_key: bytes, message: bytes) -> bytes:
        private_key = self._sig_private(scheme, private_key)
        out = self._call(self._sign, scheme.value, private_key, message)
        if out is None:
            raise self._invalid_sig_private(scheme)
        return out

    def verify(
        self, scheme: SignatureScheme, public_key: bytes, message: bytes, signature: bytes
    ) -> bool:
        if not _is_eddsa(scheme) and not _is_uncompressed_point(
            public_key, _ECDSA_PK_LEN[scheme]
        ):
            return False
        to_js = self._to_js
        ok = self._verify(scheme.value, to_js(public_key), to_js(message), to_js(signature))
        return ok is True
