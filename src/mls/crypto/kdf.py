"""HKDF (RFC 5869) over the provider's HMAC, and HPKE's labelled KDF calls.

HPKE labels every KDF call with ``"HPKE-v1"`` and a suite identifier
(RFC 9180 §4): two-stage KDFs (HKDF) through LabeledExtract/LabeledExpand, the
single-stage SHAKE256 of the post-quantum KEMs through LabeledDerive
(draft-ietf-hpke-hpke §4.4, used by draft-ietf-hpke-pq §3 and §4).
"""

from __future__ import annotations

from .hashing import shake256
from .provider import CryptoProvider, HashAlg

_HPKE_VERSION = b"HPKE-v1"


def hkdf_extract(provider: CryptoProvider, alg: HashAlg, salt: bytes, ikm: bytes) -> bytes:
    # An empty salt is HMAC-equivalent to Nh zero bytes (HMAC zero-pads keys).
    return provider.hmac(alg, salt, ikm)


def hkdf_expand(
    provider: CryptoProvider, alg: HashAlg, prk: bytes, info: bytes, length: int
) -> bytes:
    n = alg.digest_size
    if length <= n:  # one block: T(1) = HMAC(PRK, info || 0x01), the common case
        return provider.hmac(alg, prk, info + b"\x01")[:length]
    if length > 255 * n:
        raise ValueError("HKDF-Expand output too long")
    out = bytearray()
    t = b""
    i = 1
    while len(out) < length:
        t = provider.hmac(alg, prk, t + info + bytes((i,)))
        out += t
        i += 1
    return bytes(out[:length])


def labeled_extract(
    provider: CryptoProvider, alg: HashAlg, suite_id: bytes, salt: bytes, label: bytes,
    ikm: bytes,
) -> bytes:
    """LabeledExtract (RFC 9180 §4)."""
    return hkdf_extract(provider, alg, salt, _HPKE_VERSION + suite_id + label + ikm)


def labeled_expand(
    provider: CryptoProvider, alg: HashAlg, suite_id: bytes, prk: bytes, label: bytes,
    info: bytes, length: int,
) -> bytes:
    """LabeledExpand (RFC 9180 §4)."""
    labeled = length.to_bytes(2, "big") + _HPKE_VERSION + suite_id + label + info
    return hkdf_expand(provider, alg, prk, labeled, length)


def shake256_labeled_derive(
    suite_id: bytes, ikm: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """SHAKE256.LabeledDerive (draft-ietf-hpke-hpke §4.4; draft-ietf-hpke-pq §5):
    ``ikm || "HPKE-v1" || suite_id || len(label) || label || I2OSP(L, 2) || context``."""
    labeled_ikm = (
        ikm + _HPKE_VERSION + suite_id + len(label).to_bytes(2, "big") + label
        + length.to_bytes(2, "big") + context
    )
    return shake256(labeled_ikm, length)
