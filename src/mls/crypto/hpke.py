"""HPKE base mode (RFC 9180) over any KEM of :mod:`mls.crypto.kem`.

Only what MLS uses is here: SealBase/OpenBase single-shot encryption (§6.1), the
key schedule with a two-stage KDF (HKDF, §5.1) and the secret export used by
external commits (RFC 9420 §8.3). The KEM is a parameter: the RFC 9180 DHKEMs and
the post-quantum KEMs of draft-ietf-hpke-pq, whose Encap/Decap replace the DH in
SetupBaseS/R (draft-ietf-hpke-hpke §5.1.1); the key schedule is unchanged.
"""

from __future__ import annotations

from .kdf import labeled_expand, labeled_extract
from .kem import DHKEMS, Kem, curve_order
from .provider import AeadAlg, CryptoProvider, HashAlg, KemAlg

_MODE_BASE = 0x00

__all__ = ["Hpke", "HpkeContext", "curve_order"]


class HpkeContext:
    """An HPKE encryption context (RFC 9180 §5.2), single use in MLS."""

    __slots__ = ("_ctx", "_hpke", "_key", "_nonce", "_secret", "_seq")

    def __init__(self, hpke: Hpke, key: bytes, nonce: bytes, secret: bytes,
                 key_schedule_context: bytes) -> None:
        self._hpke = hpke
        self._key = key
        self._nonce = nonce
        self._seq = 0
        # The exporter secret is derived on demand: MLS exports only from the
        # context of an external commit, never from the many UpdatePath ones.
        self._secret = secret
        self._ctx = key_schedule_context

    @property
    def exporter_secret(self) -> bytes:
        """``LabeledExpand(secret, "exp", key_schedule_context, Nh)`` (RFC 9180 §5.1)."""
        h = self._hpke
        return h.labeled_expand(self._secret, b"exp", self._ctx, h.kdf.digest_size)

    def _next_nonce(self) -> bytes:
        if self._seq == 0:  # single-shot, the only use in MLS: nonce XOR 0
            self._seq = 1
            return self._nonce
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

    __slots__ = ("_hpke_suite", "_info_hash", "_psk_id_hash", "aead", "kdf", "kem", "provider")

    def __init__(
        self, provider: CryptoProvider, kem: Kem | KemAlg, kdf: HashAlg, aead: AeadAlg
    ) -> None:
        self.provider = provider
        self.kem: Kem = DHKEMS[kem] if isinstance(kem, KemAlg) else kem
        self.kdf = kdf
        self.aead = aead
        self._hpke_suite = (
            b"HPKE" + self.kem.id.to_bytes(2, "big") + kdf.to_bytes(2, "big")
            + aead.to_bytes(2, "big")
        )
        # Key schedule inputs that repeat: base mode's psk_id_hash is a constant,
        # and a commit encrypts every path secret under the same info.
        self._psk_id_hash = labeled_extract(provider, kdf, self._hpke_suite, b"", b"psk_id_hash",
                                            b"")
        self._info_hash: tuple[bytes, bytes] | None = None

    def labeled_expand(self, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
        return labeled_expand(self.provider, self.kdf, self._hpke_suite, prk, label, info, length)

    # -- KEM (RFC 9180 §4) --------------------------------------------------
    def derive_key_pair(self, ikm: bytes) -> tuple[bytes, bytes]:
        """DeriveKeyPair(ikm) -> (serialized private key, serialized public key)."""
        return self.kem.derive_key_pair(self.provider, ikm)

    def generate_key_pair(self) -> tuple[bytes, bytes]:
        return self.kem.generate_key_pair(self.provider)

    def public_key(self, private_key: bytes) -> bytes:
        return self.kem.public_key(self.provider, private_key)

    def encap(self, pk_r: bytes) -> tuple[bytes, bytes]:
        """Encap(pkR) -> (shared_secret, enc)."""
        return self.kem.encap(self.provider, pk_r)

    def decap(self, enc: bytes, sk_r: bytes) -> bytes:
        return self.kem.decap(self.provider, enc, sk_r)

    # -- key schedule and single-shot API (RFC 9180 §5.1, §6.1) -----------
    def _key_schedule(self, shared_secret: bytes, info: bytes) -> HpkeContext:
        p, hs, h = self.provider, self._hpke_suite, self.kdf
        cached = self._info_hash
        if cached is not None and cached[0] == info:  # info is public (label and context)
            info_hash = cached[1]
        else:
            info_hash = labeled_extract(p, h, hs, b"", b"info_hash", info)
            self._info_hash = (info, info_hash)
        ctx = bytes((_MODE_BASE,)) + self._psk_id_hash + info_hash
        secret = labeled_extract(p, h, hs, shared_secret, b"secret", b"")
        key = labeled_expand(p, h, hs, secret, b"key", ctx, self.aead.key_size)
        nonce = labeled_expand(p, h, hs, secret, b"base_nonce", ctx, self.aead.nonce_size)
        return HpkeContext(self, key, nonce, secret, ctx)

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
