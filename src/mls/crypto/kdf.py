"""HKDF (RFC 5869) over the provider's HMAC."""

from __future__ import annotations

from .provider import CryptoProvider, HashAlg


def hkdf_extract(provider: CryptoProvider, alg: HashAlg, salt: bytes, ikm: bytes) -> bytes:
    # An empty salt is HMAC-equivalent to Nh zero bytes (HMAC zero-pads keys).
    return provider.hmac(alg, salt, ikm)


def hkdf_expand(
    provider: CryptoProvider, alg: HashAlg, prk: bytes, info: bytes, length: int
) -> bytes:
    n = alg.digest_size
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
