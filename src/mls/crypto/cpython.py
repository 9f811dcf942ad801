"""The CPython crypto provider, on top of pyca/cryptography."""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, mlkem, x448, x25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ..errors import CryptoError, DecryptionError
from .hashing import StdlibPrimitives
from .provider import AeadAlg, KemAlg, SignatureScheme

_RAW = serialization.Encoding.Raw
_RAW_PUB = serialization.PublicFormat.Raw
_X962 = serialization.Encoding.X962
_UNCOMPRESSED = serialization.PublicFormat.UncompressedPoint

_KEM_CURVE: dict[KemAlg, ec.EllipticCurve] = {
    KemAlg.DHKEM_P256: ec.SECP256R1(),
    KemAlg.DHKEM_P384: ec.SECP384R1(),
    KemAlg.DHKEM_P521: ec.SECP521R1(),
}
_SIG_CURVE: dict[SignatureScheme, tuple[ec.EllipticCurve, hashes.HashAlgorithm]] = {
    SignatureScheme.ECDSA_SECP256R1_SHA256: (ec.SECP256R1(), hashes.SHA256()),
    SignatureScheme.ECDSA_SECP384R1_SHA384: (ec.SECP384R1(), hashes.SHA384()),
    SignatureScheme.ECDSA_SECP521R1_SHA512: (ec.SECP521R1(), hashes.SHA512()),
}
_SCALAR_LEN = {"secp256r1": 32, "secp384r1": 48, "secp521r1": 66}
_MLKEM: dict[KemAlg, tuple[type[mlkem.MLKEM768PrivateKey] | type[mlkem.MLKEM1024PrivateKey],
                           type[mlkem.MLKEM768PublicKey] | type[mlkem.MLKEM1024PublicKey]]] = {
    KemAlg.MLKEM768: (mlkem.MLKEM768PrivateKey, mlkem.MLKEM768PublicKey),
    KemAlg.MLKEM1024: (mlkem.MLKEM1024PrivateKey, mlkem.MLKEM1024PublicKey),
}
_MLKEM_SEED_LEN = 64


def _ec_private(curve: ec.EllipticCurve, sk: bytes) -> ec.EllipticCurvePrivateKey:
    # Some encoders strip leading zero octets of the scalar; accept those too.
    if not 0 < len(sk) <= _SCALAR_LEN[curve.name]:
        raise CryptoError(f"{curve.name} private key must be {_SCALAR_LEN[curve.name]} bytes")
    try:
        return ec.derive_private_key(int.from_bytes(sk, "big"), curve)
    except ValueError as e:
        raise CryptoError(f"invalid {curve.name} private scalar") from e


def _ec_public(curve: ec.EllipticCurve, pk: bytes) -> ec.EllipticCurvePublicKey:
    # Only the uncompressed form is valid in MLS (RFC 9180 §7.1.1 SerializePublicKey).
    if len(pk) != 1 + 2 * _SCALAR_LEN[curve.name] or pk[0] != 4:
        raise CryptoError(f"{curve.name} public key must be an uncompressed point")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, pk)
    except ValueError as e:
        raise CryptoError(f"{curve.name} public key is not a point on the curve") from e


class CPythonProvider(StdlibPrimitives):
    """:class:`~mls.crypto.provider.CryptoProvider` backed by ``cryptography``."""

    name = "cpython-cryptography"

    # -- AEAD ------------------------------------------------------------------
    @staticmethod
    def _aead(alg: AeadAlg, key: bytes) -> AESGCM | ChaCha20Poly1305:
        if len(key) != alg.key_size:
            raise CryptoError(f"{alg.name} key must be {alg.key_size} bytes")
        if alg is AeadAlg.CHACHA20POLY1305:
            return ChaCha20Poly1305(key)
        return AESGCM(key)

    @staticmethod
    def _check_nonce(alg: AeadAlg, nonce: bytes) -> None:
        if len(nonce) != alg.nonce_size:
            raise CryptoError(f"{alg.name} nonce must be {alg.nonce_size} bytes")

    def aead_seal(
        self, alg: AeadAlg, key: bytes, nonce: bytes, aad: bytes, plaintext: bytes
    ) -> bytes:
        self._check_nonce(alg, nonce)
        return self._aead(alg, key).encrypt(nonce, plaintext, aad)

    def aead_open(
        self, alg: AeadAlg, key: bytes, nonce: bytes, aad: bytes, ciphertext: bytes
    ) -> bytes:
        self._check_nonce(alg, nonce)
        try:
            return self._aead(alg, key).decrypt(nonce, ciphertext, aad)
        except InvalidTag as e:
            raise DecryptionError("AEAD authentication failed") from e

    # -- KEM -------------------------------------------------------------------
    @staticmethod
    def _mlkem_private(
        kem: KemAlg, private_key: bytes
    ) -> mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey:
        if len(private_key) != _MLKEM_SEED_LEN:
            raise CryptoError(f"{kem.name} private key must be a {_MLKEM_SEED_LEN}-byte seed")
        return _MLKEM[kem][0].from_seed_bytes(private_key)

    def kem_encap(self, kem: KemAlg, public_key: bytes) -> tuple[bytes, bytes]:
        try:
            ek = _MLKEM[kem][1].from_public_bytes(public_key)
        except ValueError as e:  # wrong length, or coefficients not reduced (FIPS 203 §7.2)
            raise CryptoError(f"invalid {kem.name} encapsulation key") from e
        shared_secret, ciphertext = ek.encapsulate()
        return shared_secret, ciphertext

    def kem_decap(self, kem: KemAlg, private_key: bytes, ciphertext: bytes) -> bytes:
        try:
            return self._mlkem_private(kem, private_key).decapsulate(ciphertext)
        except ValueError as e:  # only a wrong ciphertext length; else implicit rejection
            raise CryptoError(f"invalid {kem.name} ciphertext") from e

    def kem_public_key(self, kem: KemAlg, private_key: bytes) -> bytes:
        if kem.is_mlkem:
            return self._mlkem_private(kem, private_key).public_key().public_bytes_raw()
        try:
            if kem is KemAlg.DHKEM_X25519:
                xk = x25519.X25519PrivateKey.from_private_bytes(private_key)
                return xk.public_key().public_bytes(_RAW, _RAW_PUB)
            if kem is KemAlg.DHKEM_X448:
                xk2 = x448.X448PrivateKey.from_private_bytes(private_key)
                return xk2.public_key().public_bytes(_RAW, _RAW_PUB)
        except ValueError as e:
            raise CryptoError(f"invalid {kem.name} private key") from e
        ek = _ec_private(_KEM_CURVE[kem], private_key)
        return ek.public_key().public_bytes(_X962, _UNCOMPRESSED)

    def dh(self, kem: KemAlg, private_key: bytes, public_key: bytes) -> bytes:
        try:
            if kem is KemAlg.DHKEM_X25519:
                return x25519.X25519PrivateKey.from_private_bytes(private_key).exchange(
                    x25519.X25519PublicKey.from_public_bytes(public_key)
                )
            if kem is KemAlg.DHKEM_X448:
                return x448.X448PrivateKey.from_private_bytes(private_key).exchange(
                    x448.X448PublicKey.from_public_bytes(public_key)
                )
            curve = _KEM_CURVE[kem]
            peer = _ec_public(curve, public_key)
            return _ec_private(curve, private_key).exchange(ec.ECDH(), peer)
        except ValueError as e:  # wrong length, low-order point or all-zero output
            raise CryptoError(f"{kem.name} key agreement failed: invalid key") from e

    def dh_with_public(
        self, kem: KemAlg, private_key: bytes, public_key: bytes
    ) -> tuple[bytes, bytes]:
        if kem is not KemAlg.DHKEM_X25519:
            return self.dh(kem, private_key, public_key), self.kem_public_key(kem, private_key)
        try:
            # One key load: from_private_bytes multiplies out the public key.
            xk = x25519.X25519PrivateKey.from_private_bytes(private_key)
        except ValueError as e:
            raise CryptoError(f"{kem.name} key agreement failed: invalid key") from e
        try:
            shared = xk.exchange(x25519.X25519PublicKey.from_public_bytes(public_key))
        except ValueError as e:  # wrong length, low-order point or all-zero output
            raise CryptoError(f"{kem.name} key agreement failed: invalid key") from e
        return shared, xk.public_key().public_bytes(_RAW, _RAW_PUB)

    # -- signatures --------------------------------------------------------------
    def signature_public_key(self, scheme: SignatureScheme, private_key: bytes) -> bytes:
        try:
            if scheme is SignatureScheme.ED25519:
                k1 = ed25519.Ed25519PrivateKey.from_private_bytes(private_key)
                return k1.public_key().public_bytes(_RAW, _RAW_PUB)
            if scheme is SignatureScheme.ED448:
                k2 = ed448.Ed448PrivateKey.from_private_bytes(private_key)
                return k2.public_key().public_bytes(_RAW, _RAW_PUB)
        except ValueError as e:
            raise CryptoError(f"invalid {scheme.name} private key") from e
        curve, _ = _SIG_CURVE[scheme]
        return _ec_private(curve, private_key).public_key().public_bytes(_X962, _UNCOMPRESSED)

    def sign(self, scheme: SignatureScheme, private_key: bytes, message: bytes) -> bytes:
        try:
            if scheme is SignatureScheme.ED25519:
                return ed25519.Ed25519PrivateKey.from_private_bytes(private_key).sign(message)
            if scheme is SignatureScheme.ED448:
                return ed448.Ed448PrivateKey.from_private_bytes(private_key).sign(message)
        except ValueError as e:
            raise CryptoError(f"invalid {scheme.name} private key") from e
        curve, h = _SIG_CURVE[scheme]
        return _ec_private(curve, private_key).sign(message, ec.ECDSA(h))

    def signing_key(
        self, scheme: SignatureScheme, private_key: bytes
    ) -> Callable[[bytes], bytes]:
        try:
            if scheme is SignatureScheme.ED25519:
                return ed25519.Ed25519PrivateKey.from_private_bytes(private_key).sign
            if scheme is SignatureScheme.ED448:
                return ed448.Ed448PrivateKey.from_private_bytes(private_key).sign
        except ValueError as e:
            raise CryptoError(f"invalid {scheme.name} private key") from e
        curve, h = _SIG_CURVE[scheme]
        key = _ec_private(curve, private_key)
        return lambda message: key.sign(message, ec.ECDSA(h))

    def verify(
        self, scheme: SignatureScheme, public_key: bytes, message: bytes, signature: bytes
    ) -> bool:
        try:
            if scheme is SignatureScheme.ED25519:
                ed25519.Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
            elif scheme is SignatureScheme.ED448:
                ed448.Ed448PublicKey.from_public_bytes(public_key).verify(signature, message)
            else:
                curve, h = _SIG_CURVE[scheme]
                decode_dss_signature(signature)  # rejects non-DER encodings up front
                _ec_public(curve, public_key).verify(signature, message, ec.ECDSA(h))
        except (InvalidSignature, ValueError, CryptoError):
            return False
        return True
