"""The browser crypto provider: audited JavaScript libraries through Pyodide's FFI.

The primitives live in ``web/js/mls_crypto.mjs`` (libsodium for Ed25519, X25519 and
ChaCha20-Poly1305; noble for AES-GCM, the NIST curves and Ed448/X448;
``@noble/post-quantum`` for ML-KEM). The page or
the Node harness initializes that module and registers it as ``mls_crypto_js``
before any Python runs, so every call here is synchronous: one FFI crossing per
primitive, no awaiting. Hashes, HMAC and randomness stay in Python (``hashlib``,
``hmac`` and ``os.urandom``, which Emscripten backs with
``crypto.getRandomValues``): a crossing costs more than hashing a few hundred bytes.

Byte arguments cross by address when the JS side offers it (``*_heap`` forms): the
call passes the address and length of each ``bytes`` object's data in Pyodide's
WebAssembly memory, and JS copies them from that memory into a scratch buffer of its
own for the call. A ``to_js`` copy per call cost more than the AES-GCM of a short
message (a Uint8Array built through the FFI, against a memcpy in JS). The provider
checks at construction that an address and the memory agree (``heap_probe``) and
otherwise falls back to one ``to_js`` copy of the arguments concatenated (``*_packed``
forms).

Length checks happen here, before crossing, with the CPython provider's messages
(one deliberate difference: AEAD nonces must be 12 bytes, ``Nn`` of every MLS AEAD,
where ``cryptography`` lets AES-GCM take others); the JS side reports any other
rejection (invalid point or scalar, bad tag, all-zero shared secret) by returning
``undefined``, which arrives as ``None``.

This module imports on CPython (for type checking); only constructing
:class:`PyodideProvider` needs Pyodide.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..errors import CryptoError, DecryptionError
from .hashing import StdlibPrimitives
from .provider import AeadAlg, KemAlg, SignatureScheme

_Alg = KemAlg | SignatureScheme

#: Raw key sizes of the Montgomery and Edwards curves (private keys; public keys of
#: X25519, X448, Ed25519 and Ed448 have the same size).
_RAW_LEN: dict[_Alg, int] = {
    KemAlg.DHKEM_X25519: 32,
    KemAlg.DHKEM_X448: 56,
    SignatureScheme.ED25519: 32,
    SignatureScheme.ED448: 57,
}
#: NIST curves: the name as the CPython provider spells it in errors, and the scalar
#: size; public keys are uncompressed SEC1 points of 1 + 2 * size bytes.
_NIST: dict[_Alg, tuple[str, int]] = {
    KemAlg.DHKEM_P256: ("secp256r1", 32),
    KemAlg.DHKEM_P384: ("secp384r1", 48),
    KemAlg.DHKEM_P521: ("secp521r1", 66),
    SignatureScheme.ECDSA_SECP256R1_SHA256: ("secp256r1", 32),
    SignatureScheme.ECDSA_SECP384R1_SHA384: ("secp384r1", 48),
    SignatureScheme.ECDSA_SECP521R1_SHA512: ("secp521r1", 66),
}
_NONCE_LEN = 12  # every MLS AEAD (RFC 9180 §7.3 Nn)
#: ML-KEM: the private key is the 64-byte seed d || z (FIPS 203 §6.1); the sizes of
#: encapsulation keys and ciphertexts (FIPS 203 Table 3).
_MLKEM_SEED_LEN = 64
_MLKEM_SS_LEN = 32
_MLKEM_EK_LEN = {KemAlg.MLKEM768: 1184, KemAlg.MLKEM1024: 1568}
_MLKEM_CT_LEN = {KemAlg.MLKEM768: 1088, KemAlg.MLKEM1024: 1568}
#: Offset of a ``bytes`` object's data from its address (``id``) in CPython, whose
#: objects never move: ``ob_sval`` ends the fixed part, followed by its NUL terminator.
_BYTES_DATA = bytes.__basicsize__ - 1


def _private_key(alg: _Alg, private_key: bytes) -> bytes:
    """The key as the JS side expects it, or CryptoError as the CPython provider raises.

    NIST scalars are left-padded to their full size: like the CPython provider, accept
    encoders that strip leading zero octets (the message-protection vectors do).
    """
    raw = _RAW_LEN.get(alg)
    if raw is not None:
        if len(private_key) != raw:
            raise CryptoError(f"invalid {alg.name} private key")
        return private_key
    curve, size = _NIST[alg]
    if not 0 < len(private_key) <= size:
        raise CryptoError(f"{curve} private key must be {size} bytes")
    return private_key.rjust(size, b"\0")


def _signature(scheme: SignatureScheme, result: Any) -> bytes:
    """A JS signer's result as bytes (``None``: the key was refused)."""
    if result is None:
        raise _invalid_private_key(scheme)
    out: bytes = result.to_bytes()
    return out


def _invalid_private_key(alg: _Alg) -> CryptoError:
    if alg in _RAW_LEN:
        return CryptoError(f"invalid {alg.name} private key")
    return CryptoError(f"invalid {_NIST[alg][0]} private scalar")


def _is_uncompressed_point(alg: _Alg, public_key: bytes) -> bool:
    # Only the uncompressed SEC1 form is valid in MLS (RFC 9180 §7.1.1); noble would
    # also accept the compressed one.
    return len(public_key) == 1 + 2 * _NIST[alg][1] and public_key[0] == 4


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


def _heap_agrees(js: Any) -> bool:
    """Whether the JS side reads a bytes object's data at the address computed here."""
    probe = getattr(js, "heap_probe", None)
    if probe is None:  # registered without Pyodide's memory
        return False
    sample = bytes(range(256)) * 2
    try:
        seen = probe(id(sample) + _BYTES_DATA, len(sample))
    except Exception:  # noqa: BLE001 - a JS RangeError: the address is outside the memory
        return False
    return bytes(seen.to_bytes()) == sample


class PyodideProvider(StdlibPrimitives):
    """:class:`~mls.crypto.provider.CryptoProvider` over JS libraries, for Pyodide.

    ``by_address=False`` forces the copying forms (for tests of that fallback).
    """

    name = "pyodide-js"

    __slots__ = (
        "_aead_open",
        "_aead_seal",
        "_dh",
        "_dh_with_public",
        "_kem_decap",
        "_kem_encap",
        "_kem_public_key",
        "_sign",
        "_signature_public_key",
        "_signer",
        "_to_js",
        "_verify",
        "by_address",
    )

    def __init__(self, *, by_address: bool = True) -> None:
        js, to_js = _load_js()
        self._to_js = to_js
        self.by_address = by_address and _heap_agrees(js)
        suffix = "_heap" if self.by_address else "_packed"

        def form(stem: str) -> Any:
            return getattr(js, stem + suffix)

        # Bound once: each attribute lookup on a JS object is itself an FFI crossing.
        self._aead_seal = form("aead_seal")
        self._aead_open = form("aead_open")
        self._kem_public_key = form("kem_public_key")
        self._kem_encap = form("kem_encap")
        self._kem_decap = form("kem_decap")
        self._dh = form("dh")
        self._dh_with_public = form("dh_with_public")
        self._signature_public_key = form("signature_public_key")
        self._sign = form("sign")
        self._verify = form("verify")
        self._signer = js.signer_heap if self.by_address else js.signer

    def _cross(self, fn: Any, alg: int, args: tuple[bytes, ...]) -> Any:
        """One crossing with the byte arguments as the JS form takes them: the address
        and length of each object's data (by address), or one ``to_js`` copy of their
        concatenation followed by the lengths of all but the last."""
        if not self.by_address:
            return fn(alg, self._to_js(b"".join(args)), *[len(a) for a in args[:-1]])
        refs: list[int] = []
        held = []  # converted arguments: alive, so unmoved and unfreed, until return
        for arg in args:
            data = arg
            if type(data) is not bytes:  # only the layout of bytes exactly is known
                data = bytes(data)
                held.append(data)
            refs += (id(data) + _BYTES_DATA, len(data))
        return fn(alg, *refs)

    def _call(self, fn: Any, alg: int, *args: bytes) -> bytes | None:
        """:meth:`_cross`; the Uint8Array result comes back as a JsProxy, copied to
        bytes and freed with its last Python reference (no PyProxy is ever created)."""
        result = self._cross(fn, alg, args)
        if result is None:
            return None
        out: bytes = result.to_bytes()
        return out

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
    def _check_mlkem_seed(kem: KemAlg, private_key: bytes) -> None:
        if len(private_key) != _MLKEM_SEED_LEN:
            raise CryptoError(f"{kem.name} private key must be a {_MLKEM_SEED_LEN}-byte seed")

    def kem_encap(self, kem: KemAlg, public_key: bytes) -> tuple[bytes, bytes]:
        if len(public_key) != _MLKEM_EK_LEN[kem]:
            raise CryptoError(f"invalid {kem.name} encapsulation key")
        out = self._call(self._kem_encap, kem.value, public_key)
        if out is None:  # coefficients not reduced mod q (FIPS 203 §7.2)
            raise CryptoError(f"invalid {kem.name} encapsulation key")
        return out[:_MLKEM_SS_LEN], out[_MLKEM_SS_LEN:]

    def kem_decap(self, kem: KemAlg, private_key: bytes, ciphertext: bytes) -> bytes:
        self._check_mlkem_seed(kem, private_key)
        if len(ciphertext) != _MLKEM_CT_LEN[kem]:
            raise CryptoError(f"invalid {kem.name} ciphertext")
        out = self._call(self._kem_decap, kem.value, private_key, ciphertext)
        if out is None:
            raise CryptoError(f"invalid {kem.name} ciphertext")
        return out

    def kem_public_key(self, kem: KemAlg, private_key: bytes) -> bytes:
        if kem.is_mlkem:
            self._check_mlkem_seed(kem, private_key)
            out = self._call(self._kem_public_key, kem.value, private_key)
            if out is None:
                raise CryptoError(f"{kem.name} key generation failed")
            return out
        out = self._call(self._kem_public_key, kem.value, _private_key(kem, private_key))
        if out is None:
            raise _invalid_private_key(kem)
        return out

    def dh(self, kem: KemAlg, private_key: bytes, public_key: bytes) -> bytes:
        return self._key_agreement(self._dh, kem, private_key, public_key)

    def _key_agreement(self, fn: Any, kem: KemAlg, private_key: bytes, public_key: bytes) -> bytes:
        """A DH form of the JS side (``dh`` or ``dh_with_public``), after the checks and
        with the errors of :meth:`dh`."""
        private_key = _private_key(kem, private_key)
        raw = _RAW_LEN.get(kem)
        if raw is not None:
            if len(public_key) != raw:
                raise CryptoError(f"{kem.name} key agreement failed: invalid key")
        elif not _is_uncompressed_point(kem, public_key):
            raise CryptoError(f"{_NIST[kem][0]} public key must be an uncompressed point")
        out = self._call(fn, kem.value, private_key, public_key)
        if out is None:  # invalid point or scalar, low-order point, all-zero output
            raise CryptoError(f"{kem.name} key agreement failed: invalid key")
        return out

    def dh_with_public(
        self, kem: KemAlg, private_key: bytes, public_key: bytes
    ) -> tuple[bytes, bytes]:
        """RFC 9180 §4.1 DH(skX, pkY) and pk(skX) in one crossing, with :meth:`dh`'s checks
        and errors (a private key :meth:`dh` accepts always has a public key)."""
        if kem.is_mlkem:
            return self.dh(kem, private_key, public_key), self.kem_public_key(kem, private_key)
        out = self._key_agreement(self._dh_with_public, kem, private_key, public_key)
        raw = _RAW_LEN.get(kem)
        own = raw if raw is not None else 1 + 2 * _NIST[kem][1]
        return out[:-own], out[-own:]

    # -- signatures --------------------------------------------------------------
    def signature_public_key(self, scheme: SignatureScheme, private_key: bytes) -> bytes:
        out = self._call(
            self._signature_public_key, scheme.value, _private_key(scheme, private_key)
        )
        if out is None:
            raise _invalid_private_key(scheme)
        return out

    def sign(self, scheme: SignatureScheme, private_key: bytes, message: bytes) -> bytes:
        out = self._call(self._sign, scheme.value, _private_key(scheme, private_key), message)
        if out is None:
            raise _invalid_private_key(scheme)
        return out

    def signing_key(
        self, scheme: SignatureScheme, private_key: bytes
    ) -> Callable[[bytes], bytes]:
        """The key is checked and loaded once (for Ed25519, its expanded form), like the
        CPython provider's: an invalid key raises here, not at the first signature."""
        key = _private_key(scheme, private_key)
        if self.by_address:
            key = bytes(key)
            fn = self._signer(scheme.value, id(key) + _BYTES_DATA, len(key))
        else:
            fn = self._signer(scheme.value, self._to_js(key))
        if fn is None:
            raise _invalid_private_key(scheme)
        return self._sign_with(scheme, fn)

    def _sign_with(self, scheme: SignatureScheme, fn: Any) -> Callable[[bytes], bytes]:
        """The signing function over the JS signer ``fn`` (of the by-address form, taking
        the message's address and length, or of the copying form, a Uint8Array)."""
        to_js = self._to_js

        def sign_copying(message: bytes) -> bytes:
            return _signature(scheme, fn(to_js(message)))

        def sign(message: bytes) -> bytes:
            if type(message) is not bytes:  # only the layout of bytes exactly is known
                message = bytes(message)
            return _signature(scheme, fn(id(message) + _BYTES_DATA, len(message)))

        return sign if self.by_address else sign_copying

    def verify(
        self, scheme: SignatureScheme, public_key: bytes, message: bytes, signature: bytes
    ) -> bool:
        if scheme in _NIST and not _is_uncompressed_point(scheme, public_key):
            return False
        ok = self._cross(self._verify, scheme.value, (public_key, message, signature))
        return ok is True
