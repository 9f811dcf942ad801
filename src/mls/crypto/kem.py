"""HPKE KEMs (RFC 9180 §4, draft-ietf-hpke-pq): DHKEM, ML-KEM and the
ML-KEM-768 + X25519 hybrid, written once over provider primitives.

A :class:`Kem` is a stateless description of one HPKE KEM; every operation takes
the provider that supplies the primitives (DH, ML-KEM, randomness), so the same
objects serve every runtime. Keys are serialized byte strings throughout:

============== ========================= ======================= ======
KEM            private key (``Nsk``)     public key (``Npk``)    ``Nenc``
============== ========================= ======================= ======
DHKEM(X25519)  scalar, 32                u-coordinate, 32        32
ML-KEM-768     seed ``d || z``, 64       encapsulation key, 1184 1088
ML-KEM-1024    seed ``d || z``, 64       encapsulation key, 1568 1568
MLKEM768-X25519 seed, 32                 ``pk_M || pk_X``, 1216  1120
============== ========================= ======================= ======

``DeriveKeyPair`` (what MLS uses to turn path and node secrets into HPKE keys,
RFC 9420 §7.4) differs per KEM and, for the post-quantum ones, between the
specifications and the OpenMLS/hpke-rs implementation; see :class:`Derivation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from ..errors import CryptoError, DecryptionError
from .hashing import sha3_256, shake256
from .kdf import labeled_expand, labeled_extract, shake256_labeled_derive
from .provider import CryptoProvider, HashAlg, KemAlg

# Group orders of the NIST curves, for DeriveKeyPair's rejection sampling.
_ORDER = {
    KemAlg.DHKEM_P256: int(
        "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551", 16
    ),
    KemAlg.DHKEM_P384: int(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf"
        "581a0db248b0a77aecec196accc52973",
        16,
    ),
    KemAlg.DHKEM_P521: int(
        "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        "fffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e9138"
        "6409",
        16,
    ),
}


def curve_order(kem: KemAlg) -> int | None:
    """The group order for NIST-curve KEMs, ``None`` for X25519/X448."""
    return _ORDER.get(kem)


class Derivation(Enum):
    """How ``DeriveKeyPair(ikm)`` turns input keying material into a key seed.

    * ``HPKE_PQ``: draft-ietf-hpke-pq §3/§4, the KEMs draft-ietf-mls-pq-ciphersuites
      uses: ``SHAKE256.LabeledDerive(ikm, "DeriveKeyPair", "", Nseed)`` with the
      suite identifier ``"KEM" || I2OSP(kem_id, 2)``.
    * ``XWING_HPKE``: draft-connolly-cfrg-xwing-kem §5.4 ("Use in HPKE"): the
      unlabelled ``SHAKE256(ikm, 32)``. OpenMLS (openmls_libcrux_crypto 0.4 via
      hpke-rs 0.7) derives X-Wing keys this way for its suites 0x004D-0x004F, so
      the suites registered for interoperability with it use this derivation.

    Keys, encapsulation and the combiner are the same either way.
    """

    HPKE_PQ = "draft-ietf-hpke-pq"
    XWING_HPKE = "draft-connolly-cfrg-xwing-kem"


class Kem(Protocol):
    """The HPKE KEM interface (RFC 9180 §4; draft-ietf-hpke-hpke §4.1)."""

    @property
    def id(self) -> int:
        """The HPKE KEM identifier, part of HPKE's ``suite_id``."""
        ...

    @property
    def name(self) -> str: ...

    @property
    def n_secret(self) -> int: ...

    @property
    def n_enc(self) -> int: ...

    @property
    def n_pk(self) -> int: ...

    @property
    def n_sk(self) -> int: ...

    def derive_key_pair(self, p: CryptoProvider, ikm: bytes) -> tuple[bytes, bytes]:
        """DeriveKeyPair(ikm) -> (private key, public key)."""
        ...

    def generate_key_pair(self, p: CryptoProvider) -> tuple[bytes, bytes]: ...

    def public_key(self, p: CryptoProvider, private_key: bytes) -> bytes: ...

    def encap(self, p: CryptoProvider, pk_r: bytes) -> tuple[bytes, bytes]:
        """Encap(pkR) -> (shared_secret, enc); CryptoError for an invalid key."""
        ...

    def decap(self, p: CryptoProvider, enc: bytes, sk_r: bytes) -> bytes:
        """Decap(enc, skR) -> shared_secret; DecryptionError for a malformed enc."""
        ...


def _kem_suite_id(kem_id: int) -> bytes:
    return b"KEM" + kem_id.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class DhKem:
    """DHKEM (RFC 9180 §4.1) over X25519, X448 or a NIST curve."""

    alg: KemAlg
    name: str
    hash: HashAlg
    n_secret: int
    n_pk: int
    n_sk: int
    bitmask: int  # for DeriveKeyPair on NIST curves; 0 for X25519/X448

    @property
    def id(self) -> int:
        return int(self.alg)

    @property
    def n_enc(self) -> int:
        return self.n_pk

    def _suite(self) -> bytes:
        return _kem_suite_id(self.alg)

    def derive_key_pair(self, p: CryptoProvider, ikm: bytes) -> tuple[bytes, bytes]:
        """DeriveKeyPair (RFC 9180 §7.1.3)."""
        sk = self._derive_private(p, ikm)
        return sk, p.kem_public_key(self.alg, sk)

    def _derive_private(self, p: CryptoProvider, ikm: bytes) -> bytes:
        """The private half of DeriveKeyPair (RFC 9180 §7.1.3)."""
        ks, h = self._suite(), self.hash
        dkp_prk = labeled_extract(p, h, ks, b"", b"dkp_prk", ikm)
        order = _ORDER.get(self.alg)
        if order is None:
            sk = labeled_expand(p, h, ks, dkp_prk, b"sk", b"", self.n_sk)
        else:
            for counter in range(256):
                cand = bytearray(
                    labeled_expand(p, h, ks, dkp_prk, b"candidate", bytes((counter,)), self.n_sk)
                )
                cand[0] &= self.bitmask
                if 0 < int.from_bytes(cand, "big") < order:
                    sk = bytes(cand)
                    break
            else:  # probability ~2^-256 per the RFC; still an explicit error
                raise CryptoError("DeriveKeyPairError: no valid scalar found")
        return sk

    def generate_key_pair(self, p: CryptoProvider) -> tuple[bytes, bytes]:
        return self.derive_key_pair(p, p.random(self.n_sk))

    def public_key(self, p: CryptoProvider, private_key: bytes) -> bytes:
        return p.kem_public_key(self.alg, private_key)

    def _extract_and_expand(self, p: CryptoProvider, dh: bytes, kem_context: bytes) -> bytes:
        ks, h = self._suite(), self.hash
        eae_prk = labeled_extract(p, h, ks, b"", b"eae_prk", dh)
        return labeled_expand(p, h, ks, eae_prk, b"shared_secret", kem_context, self.n_secret)

    def encap(self, p: CryptoProvider, pk_r: bytes) -> tuple[bytes, bytes]:
        # GenerateKeyPair is DeriveKeyPair(random), as in generate_key_pair; the
        # ephemeral public key comes out of the same key load as the DH.
        sk_e = self._derive_private(p, p.random(self.n_sk))
        dh, pk_e = p.dh_with_public(self.alg, sk_e, pk_r)
        return self._extract_and_expand(p, dh, pk_e + pk_r), pk_e

    def decap(self, p: CryptoProvider, enc: bytes, sk_r: bytes) -> bytes:
        if len(enc) != self.n_enc:
            raise DecryptionError("HPKE enc has the wrong length for the KEM")
        dh, pk_r = p.dh_with_public(self.alg, sk_r, enc)
        return self._extract_and_expand(p, dh, enc + pk_r)


@dataclass(frozen=True, slots=True)
class MlKem:
    """ML-KEM as an HPKE KEM (draft-ietf-hpke-pq §3): the private key is the
    64-byte seed ``d || z``, Encap/Decap are ML-KEM.Encaps/Decaps."""

    alg: KemAlg
    name: str
    n_enc: int
    n_pk: int
    derivation: Derivation = Derivation.HPKE_PQ
    n_secret: int = 32
    n_sk: int = 64

    @property
    def id(self) -> int:
        return int(self.alg)

    def derive_key_pair(self, p: CryptoProvider, ikm: bytes) -> tuple[bytes, bytes]:
        if self.derivation is Derivation.HPKE_PQ:
            dk = shake256_labeled_derive(_kem_suite_id(self.id), ikm, b"DeriveKeyPair", b"", 64)
        else:
            dk = shake256(ikm, 64)
        return dk, p.kem_public_key(self.alg, dk)

    def generate_key_pair(self, p: CryptoProvider) -> tuple[bytes, bytes]:
        dk = p.random(self.n_sk)
        return dk, p.kem_public_key(self.alg, dk)

    def public_key(self, p: CryptoProvider, private_key: bytes) -> bytes:
        if len(private_key) != self.n_sk:
            raise CryptoError(f"{self.name} private key must be {self.n_sk} bytes")
        return p.kem_public_key(self.alg, private_key)

    def encap(self, p: CryptoProvider, pk_r: bytes) -> tuple[bytes, bytes]:
        if len(pk_r) != self.n_pk:
            raise CryptoError(f"{self.name} public key must be {self.n_pk} bytes")
        return p.kem_encap(self.alg, pk_r)

    def decap(self, p: CryptoProvider, enc: bytes, sk_r: bytes) -> bytes:
        if len(enc) != self.n_enc:
            raise DecryptionError("HPKE enc has the wrong length for the KEM")
        if len(sk_r) != self.n_sk:
            raise CryptoError(f"{self.name} private key must be {self.n_sk} bytes")
        return p.kem_decap(self.alg, sk_r, enc)


#: The MLKEM768-X25519 combiner label (draft-irtf-cfrg-concrete-hybrid-kems §5.2;
#: X-Wing's ``XWingLabel``): the six ASCII characters ``\.//^\``.
_XWING_LABEL = bytes.fromhex("5c2e2f2f5e5c")
_MLKEM768_PK = 1184
_MLKEM768_CT = 1088
_X25519 = 32


@dataclass(frozen=True, slots=True)
class MlKem768X25519:
    """MLKEM768-X25519 (draft-irtf-cfrg-concrete-hybrid-kems §5.2), identical to
    X-Wing (draft-connolly-cfrg-xwing-kem-06+ §5), HPKE KEM 0x647A
    (draft-ietf-hpke-pq §4).

    The 32-byte private key expands with SHAKE256 to the ML-KEM-768 seed and the
    X25519 scalar; the shared secret is
    ``SHA3-256(ss_M || ss_X || ct_X || pk_X || label)``. Encapsulations are
    ``ct_M || ct_X``, public keys ``pk_M || pk_X``.
    """

    name: str
    derivation: Derivation
    id: int = 0x647A
    n_secret: int = 32
    n_enc: int = _MLKEM768_CT + _X25519
    n_pk: int = _MLKEM768_PK + _X25519
    n_sk: int = 32

    @staticmethod
    def expand(p: CryptoProvider, sk: bytes) -> tuple[bytes, bytes, bytes, bytes]:
        """expandDecapsulationKey(sk) -> (seed_M, sk_X, pk_M, pk_X)."""
        if len(sk) != 32:
            raise CryptoError("MLKEM768-X25519 private key must be 32 bytes")
        expanded = shake256(sk, 96)
        seed_m, sk_x = expanded[:64], expanded[64:]
        pk_m = p.kem_public_key(KemAlg.MLKEM768, seed_m)
        pk_x = p.kem_public_key(KemAlg.DHKEM_X25519, sk_x)
        return seed_m, sk_x, pk_m, pk_x

    @staticmethod
    def combiner(ss_m: bytes, ss_x: bytes, ct_x: bytes, pk_x: bytes) -> bytes:
        return sha3_256(ss_m + ss_x + ct_x + pk_x + _XWING_LABEL)

    def derive_key_pair(self, p: CryptoProvider, ikm: bytes) -> tuple[bytes, bytes]:
        if self.derivation is Derivation.HPKE_PQ:
            sk = shake256_labeled_derive(_kem_suite_id(self.id), ikm, b"DeriveKeyPair", b"", 32)
        else:
            sk = shake256(ikm, 32)
        return sk, self.public_key(p, sk)

    def generate_key_pair(self, p: CryptoProvider) -> tuple[bytes, bytes]:
        sk = p.random(self.n_sk)
        return sk, self.public_key(p, sk)

    def public_key(self, p: CryptoProvider, private_key: bytes) -> bytes:
        _, _, pk_m, pk_x = self.expand(p, private_key)
        return pk_m + pk_x

    def encap(self, p: CryptoProvider, pk_r: bytes) -> tuple[bytes, bytes]:
        if len(pk_r) != self.n_pk:
            raise CryptoError(f"{self.name} public key must be {self.n_pk} bytes")
        pk_m, pk_x = pk_r[:_MLKEM768_PK], pk_r[_MLKEM768_PK:]
        ek_x = p.random(_X25519)
        ct_x = p.kem_public_key(KemAlg.DHKEM_X25519, ek_x)
        ss_x = p.dh(KemAlg.DHKEM_X25519, ek_x, pk_x)
        ss_m, ct_m = p.kem_encap(KemAlg.MLKEM768, pk_m)
        return self.combiner(ss_m, ss_x, ct_x, pk_x), ct_m + ct_x

    def decap(self, p: CryptoProvider, enc: bytes, sk_r: bytes) -> bytes:
        if len(enc) != self.n_enc:
            raise DecryptionError("HPKE enc has the wrong length for the KEM")
        seed_m, sk_x, _, pk_x = self.expand(p, sk_r)
        ct_m, ct_x = enc[:_MLKEM768_CT], enc[_MLKEM768_CT:]
        ss_m = p.kem_decap(KemAlg.MLKEM768, seed_m, ct_m)
        ss_x = p.dh(KemAlg.DHKEM_X25519, sk_x, ct_x)
        return self.combiner(ss_m, ss_x, ct_x, pk_x)


DHKEM_P256 = DhKem(KemAlg.DHKEM_P256, "DHKEM(P-256, HKDF-SHA256)", HashAlg.SHA256, 32, 65, 32, 0xFF)
DHKEM_P384 = DhKem(KemAlg.DHKEM_P384, "DHKEM(P-384, HKDF-SHA384)", HashAlg.SHA384, 48, 97, 48, 0xFF)
DHKEM_P521 = DhKem(
    KemAlg.DHKEM_P521, "DHKEM(P-521, HKDF-SHA512)", HashAlg.SHA512, 64, 133, 66, 0x01
)
DHKEM_X25519 = DhKem(
    KemAlg.DHKEM_X25519, "DHKEM(X25519, HKDF-SHA256)", HashAlg.SHA256, 32, 32, 32, 0
)
DHKEM_X448 = DhKem(KemAlg.DHKEM_X448, "DHKEM(X448, HKDF-SHA512)", HashAlg.SHA512, 64, 56, 56, 0)
MLKEM768 = MlKem(KemAlg.MLKEM768, "ML-KEM-768", n_enc=1088, n_pk=1184)
MLKEM1024 = MlKem(KemAlg.MLKEM1024, "ML-KEM-1024", n_enc=1568, n_pk=1568)
#: As draft-ietf-mls-pq-ciphersuites specifies it (through draft-ietf-hpke-pq).
MLKEM768_X25519 = MlKem768X25519("MLKEM768-X25519", Derivation.HPKE_PQ)
#: As OpenMLS derives keys for its X-Wing suites (see :class:`Derivation`).
XWING_OPENMLS = MlKem768X25519("X-Wing (OpenMLS key derivation)", Derivation.XWING_HPKE)

#: The DHKEMs by provider algorithm, for the RFC 9420 suites.
DHKEMS: dict[KemAlg, DhKem] = {
    k.alg: k for k in (DHKEM_P256, DHKEM_P384, DHKEM_P521, DHKEM_X25519, DHKEM_X448)
}
