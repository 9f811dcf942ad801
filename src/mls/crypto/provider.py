"""The crypto-provider interface: the primitives MLS needs, nothing more.

Everything built from these primitives (HKDF, HPKE of RFC 9180, the labelled
functions of RFC 9420 §5) lives in pure Python on top, so a provider is small:
the CPython provider wraps ``cryptography``; the browser provider calls audited
JavaScript libraries through Pyodide's FFI.

Key formats are those of the test vectors and of RFC 9180 §7.1.1:

* KEM private keys: ``SerializePrivateKey`` (raw 32/56 bytes for X25519/X448,
  the big-endian scalar of ``Nsk`` bytes for the NIST curves, the 64-byte seed
  ``d || z`` for ML-KEM, FIPS 203 §6.1); public keys: raw for X25519/X448,
  uncompressed SEC1 points for the NIST curves, the encapsulation key for ML-KEM.
* Signature private keys: raw 32/57 bytes for Ed25519/Ed448, the big-endian
  scalar for ECDSA; public keys: raw for EdDSA, uncompressed SEC1 for ECDSA.
  ECDSA signatures are DER-encoded ``Ecdsa-Sig-Value`` (RFC 8446 §4.2.3).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Protocol, runtime_checkable


class HashAlg(IntEnum):
    """Hash functions, numbered as the HPKE KDF identifiers (RFC 9180 §7.2)."""

    SHA256 = 0x0001
    SHA384 = 0x0002
    SHA512 = 0x0003

    @property
    def digest_size(self) -> int:
        return _DIGEST_SIZE[self]

    @property
    def block_size(self) -> int:
        return 64 if self is HashAlg.SHA256 else 128

    @property
    def hashlib_name(self) -> str:
        return _HASHLIB_NAME[self]


# Read-only tables (built once, never changed), so the properties above are a lookup.
_DIGEST_SIZE = {HashAlg.SHA256: 32, HashAlg.SHA384: 48, HashAlg.SHA512: 64}
_HASHLIB_NAME = {HashAlg.SHA256: "sha256", HashAlg.SHA384: "sha384", HashAlg.SHA512: "sha512"}


class KemAlg(IntEnum):
    """The KEM primitives a provider implements, numbered as their HPKE KEM
    identifiers: DHKEMs (RFC 9180 §7.1) and ML-KEM (FIPS 203;
    draft-ietf-hpke-pq §3). Hybrid KEMs are composed from these in
    :mod:`mls.crypto.kem`."""

    DHKEM_P256 = 0x0010
    DHKEM_P384 = 0x0011
    DHKEM_P521 = 0x0012
    DHKEM_X25519 = 0x0020
    DHKEM_X448 = 0x0021
    MLKEM768 = 0x0041
    MLKEM1024 = 0x0042

    @property
    def is_mlkem(self) -> bool:
        return self in (KemAlg.MLKEM768, KemAlg.MLKEM1024)


class AeadAlg(IntEnum):
    """AEAD identifiers (RFC 9180 §7.3)."""

    AES128GCM = 0x0001
    AES256GCM = 0x0002
    CHACHA20POLY1305 = 0x0003

    @property
    def key_size(self) -> int:
        return 16 if self is AeadAlg.AES128GCM else 32

    @property
    def nonce_size(self) -> int:
        return 12

    @property
    def tag_size(self) -> int:
        return 16


class SignatureScheme(IntEnum):
    """TLS SignatureScheme values used by the MLS cipher suites (RFC 9420 §17.1)."""

    ECDSA_SECP256R1_SHA256 = 0x0403
    ECDSA_SECP384R1_SHA384 = 0x0503
    ECDSA_SECP521R1_SHA512 = 0x0603
    ED25519 = 0x0807
    ED448 = 0x0808


@runtime_checkable
class CryptoProvider(Protocol):
    """Primitive operations; every method is synchronous and side-effect free
    except :meth:`random`.

    Failures of validation (invalid point, bad tag, malformed key) raise
    :class:`mls.errors.CryptoError`; :meth:`verify` returns ``False`` on a bad
    signature instead.
    """

    name: str

    def random(self, n: int) -> bytes:
        """``n`` bytes from a cryptographically secure source."""
        ...

    def hash(self, alg: HashAlg, data: bytes) -> bytes: ...

    def hmac(self, alg: HashAlg, key: bytes, data: bytes) -> bytes: ...

    def aead_seal(
        self, alg: AeadAlg, key: bytes, nonce: bytes, aad: bytes, plaintext: bytes
    ) -> bytes:
        """Ciphertext with the 16-byte tag appended."""
        ...

    def aead_open(
        self, alg: AeadAlg, key: bytes, nonce: bytes, aad: bytes, ciphertext: bytes
    ) -> bytes:
        """Plaintext, or :class:`~mls.errors.DecryptionError` if the tag is wrong."""
        ...

    def kem_public_key(self, kem: KemAlg, private_key: bytes) -> bytes:
        """The serialized public key of a serialized KEM private key (for ML-KEM:
        ``KeyGen_internal(d, z)`` of the 64-byte seed, FIPS 203 Algorithm 16)."""
        ...

    def kem_encap(self, kem: KemAlg, public_key: bytes) -> tuple[bytes, bytes]:
        """ML-KEM.Encaps (FIPS 203 Algorithm 20) -> ``(shared_secret, ciphertext)``;
        rejects an encapsulation key that fails the check of FIPS 203 §7.2."""
        ...

    def kem_decap(self, kem: KemAlg, private_key: bytes, ciphertext: bytes) -> bytes:
        """ML-KEM.Decaps (FIPS 203 Algorithm 21) with the key of the 64-byte seed;
        a ciphertext of the right length never fails (implicit rejection)."""
        ...

    def dh(self, kem: KemAlg, private_key: bytes, public_key: bytes) -> bytes:
        """The raw shared secret (x-coordinate for NIST curves); rejects invalid
        points and the all-zero X25519/X448 output."""
        ...

    def dh_with_public(
        self, kem: KemAlg, private_key: bytes, public_key: bytes
    ) -> tuple[bytes, bytes]:
        """``(dh(private_key, public_key), kem_public_key(private_key))`` in one
        go: HPKE Encap and Decap (RFC 9180 §4.1) need both, and loading a key is
        a scalar multiplication a provider can do once instead of twice."""
        ...

    def signature_public_key(self, scheme: SignatureScheme, private_key: bytes) -> bytes: ...

    def sign(self, scheme: SignatureScheme, private_key: bytes, message: bytes) -> bytes: ...

    def signing_key(
        self, scheme: SignatureScheme, private_key: bytes
    ) -> Callable[[bytes], bytes]:
        """A function signing messages as :meth:`sign` does with this key, loading
        the key once (a member signs every message it sends, RFC 9420 §6.1)."""
        ...

    def verify(
        self, scheme: SignatureScheme, public_key: bytes, message: bytes, signature: bytes
    ) -> bool: ...
