"""HPKE base mode (RFC 9180) with DHKEM, written once over provider primitives.

Only what MLS uses is here: DHKEM Encap/Decap, DeriveKeyPair (§7.1.3),
SealBase/OpenBase single-shot encryption (§6.1) and the secret export used by
external commits (RFC 9420 §8.3).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CryptoError, DecryptionError
from .kdf import hkdf_expand, hkdf_extract
from .provider import AeadAlg, CryptoProvider, HashAlg, KemAlg

_MODE_BASE = 0x00
_VERSION = b"HPKE-v1"

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


@dataclass(frozen=True, slots=True)
class KemParams:
    """Constants of a DHKEM (RFC 9180 §7.1)."""

    kem: KemAlg
    hash: HashAlg
    n_secret: int
    n_enc: int
    n_pk: int
    n_sk: int
    bitmask: int  # for DeriveKeyPair on NIST curves; 0 for X25519/X448


KEM_PARAMS: dict[KemAlg, KemParams] = {
    KemAlg.DHKEM_P256: KemParams(KemAlg.DHKEM_P256, HashAlg.SHA256, 32, 65, 65, 32, 0xFF),
    KemAlg.DHKEM_P384: KemParams(KemAlg.DHKEM_P384, HashAlg.SHA384, 48, 97, 97, 48, 0xFF),
    KemAlg.DHKEM_P521: KemParams(KemAlg.DHKEM_P521, HashAlg.SHA512, 64, 133, 133, 66, 0x01),
    KemAlg.DHKEM_X25519: KemParams(KemAlg.DHKEM_X25519, HashAlg.SHA256, 32, 32, 32, 32, 0),
    KemAlg.DHKEM_X448: KemParams(KemAlg.DHKEM_X448, HashAlg.SHA512, 64, 56, 56, 56, 0),
}


def curve_order(kem: KemAlg) -> int | None:
    """The group order for NIST-curve KEMs, ``None`` for X25519/X448."""
    return _ORDER.get(kem)


class HpkeContext:
    """An HPKE encryption context (RFC 9180 §5.2), single use in MLS."""

    __slots__ = ("_hpke", "_key", "_nonce", "_seq", "exporter_secret")

    def __init__(self, hpke: Hpke, key: bytes, nonce: bytes, exporter_secret: bytes) -> None:
        self._hpke = hpke
        self._key = key
        self._nonce = nonce
        self._seq = 0
        self.exporter_secret = exporter_secret

    def _next_nonce(self) -> bytes:
        seq = self._seq.to_bytes(len(self._nonce), "big")
        self._seq += 1
        return bytes(a ^ b for a, b in zip(self._nonce, seq, strict=True))

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        h = self._hpke
        return h.provider.aead_seal(h.aead, self._key, self._next_nonce(), aad, plaintext)

    def open(self, aad: bytes, ciphertext: bytes) -> bytes:
        h = self._hpke
        return h.provider.aead_open(h.aead, self._key, self._next_nonce(), aad, ciphertext)

    def export(self, exporter_context: bytes, length: int) -> bytes:
        return self._hpke.labeled_expand(self.exporter_secret, b"sec", exporter_context, length)


class Hpke:
    """HPKE with one (KEM, KDF, AEAD) triple over a provider."""

    __slots__ = ("_hpke_suite", "_kem_suite", "aead", "kdf", "kem", "params", "provider")

    def __init__(self, provider: CryptoProvider, kem: KemAlg, kdf: HashAlg, aead: AeadAlg) -> None:
        self.provider = provider
        self.kem = kem
        self.kdf = kdf
        self.aead = aead
        self.params = KEM_PARAMS[kem]
        self._kem_suite = b"KEM" + kem.to_bytes(2, "big")
        self._hpke_suite = (
            b"HPKE" + kem.to_bytes(2, "big") + kdf.to_bytes(2, "big") + aead.to_bytes(2, "big")
        )

    # -- labelled KDF (RFC 9180 §4) ---------------------------------------
    def _extract(self, suite: bytes, alg: HashAlg, salt: bytes, label: bytes, ikm: bytes) -> bytes:
        return hkdf_extract(self.provider, alg, salt, _VERSION + suite + label + ikm)

    def _expand(
        self, suite: bytes, alg: HashAlg, prk: bytes, label: bytes, info: bytes, length: int
    ) -> bytes:
        labeled = length.to_bytes(2, "big") + _VERSION + suite + label + info
        return hkdf_expand(self.provider, alg, prk, labeled, length)

    def labeled_expand(self, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
        return self._expand(self._hpke_suite, self.kdf, prk, label, info, length)

    # -- DHKEM (RFC 9180 §4.1) --------------------------------------------
    def derive_key_pair(self, ikm: bytes) -> tuple[bytes, bytes]:
        """DeriveKeyPair(ikm) -> (serialized private key, serialized public key)."""
        p = self.params
        ks, h = self._kem_suite, p.hash
        dkp_prk = self._extract(ks, h, b"", b"dkp_prk", ikm)
        order = _ORDER.get(self.kem)
        if order is None:
            sk = self._expand(ks, h, dkp_prk, b"sk", b"", p.n_sk)
        else:
            for counter in range(256):
                cand = bytearray(
                    self._expand(ks, h, dkp_prk, b"candidate", bytes((counter,)), p.n_sk)
                )
                cand[0] &= p.bitmask
                v = int.from_bytes(cand, "big")
                if 0 < v < order:
                    sk = bytes(cand)
                    break
            else:  # probability ~2^-256 per the RFC; still an explicit error
                raise CryptoError("DeriveKeyPairError: no valid scalar found")
        return sk, self.provider.kem_public_key(self.kem, sk)

    def generate_key_pair(self) -> tuple[bytes, bytes]:
        return self.derive_key_pair(self.provider.random(self.params.n_sk))

    def _extract_and_expand(self, dh: bytes, kem_context: bytes) -> bytes:
        ks, h = self._kem_suite, self.params.hash
        eae_prk = self._extract(ks, h, b"", b"eae_prk", dh)
        return self._expand(ks, h, eae_prk, b"shared_secret", kem_context, self.params.n_secret)

    def encap(self, pk_r: bytes) -> tuple[bytes, bytes]:
        """Encap(pkR) -> (shared_secret, enc)."""
        sk_e, pk_e = self.generate_key_pair()
        dh = self.provider.dh(self.kem, sk_e, pk_r)
        return self._extract_and_expand(dh, pk_e + pk_r), pk_e

    def decap(self, enc: bytes, sk_r: bytes) -> bytes:
        if len(enc) != self.params.n_enc:
            raise DecryptionError("HPKE enc has the wrong length for the KEM")
        dh = self.provider.dh(self.kem, sk_r, enc)
        pk_r = self.provider.kem_public_key(self.kem, sk_r)
        return self._extract_and_expand(dh, enc + pk_r)

    # -- key schedule and single-shot API (RFC 9180 §5.1, §6.1) -----------
    def _key_schedule(self, shared_secret: bytes, info: bytes) -> HpkeContext:
        hs, h = self._hpke_suite, self.kdf
        psk_id_hash = self._extract(hs, h, b"", b"psk_id_hash", b"")
        info_hash = self._extract(hs, h, b"", b"info_hash", info)
        ctx = bytes((_MODE_BASE,)) + psk_id_hash + info_hash
        secret = self._extract(hs, h, shared_secret, b"secret", b"")
        key = self._expand(hs, h, secret, b"key", ctx, self.aead.key_size)
        nonce = self._expand(hs, h, secret, b"base_nonce", ctx, self.aead.nonce_size)
        exp = self._expand(hs, h, secret, b"exp", ctx, h.digest_size)
        return HpkeContext(self, key, nonce, exp)

    def setup_base_s(self, pk_r: bytes, info: bytes) -> tuple[bytes, HpkeContext]:
        shared, enc = self.encap(pk_r)
        return enc, self._key_schedule(shared, info)

    def setup_base_r(self, enc: bytes, sk_r: bytes, info: bytes) -> HpkeContext:
        return self._key_schedule(self.decap(enc, sk_r), info)

    def seal_base(self, pk_r: bytes, info: bytes, aad: bytes, pt: bytes) -> tuple[bytes, bytes]:
        enc, ctx = self.setup_base_s(pk_r, info)
        return enc, ctx.seal(aad, pt)

    def open_base(self, enc: bytes, sk_r: bytes, info: bytes, aad: bytes, ct: bytes) -> bytes:
        return self.setup_base_r(enc, sk_r, info).open(aad, ct)
