"""The encoding of signature public keys (RFC 9420 §5.1.1).

EdDSA keys are the raw RFC 8032 encodings (32 bytes for Ed25519, 57 for
Ed448). ECDSA keys of suites 2, 5 and 7 are ``UncompressedPointRepresentation``
(RFC 8446 §4.2.8.2): ``0x04 || X || Y`` with coordinates of the field size, a
point on the curve. A compressed or hybrid point, a wrong length or an
off-curve point is not a key of the suite: it is reported as such, before any
signature is checked with it, so the error names the real cause.
"""

from __future__ import annotations

from .crypto import CipherSuite, SignatureScheme
from .errors import PublicKeyError

# (field prime p, curve coefficient b, coordinate length) of the NIST curves; a = -3.
_P256 = (
    2**256 - 2**224 + 2**192 + 2**96 - 1,
    0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
    32,
)
_P384 = (
    2**384 - 2**128 - 2**96 + 2**32 - 1,
    int("B3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875A"
        "C656398D8A2ED19D2A85C8EDD3EC2AEF", 16),
    48,
)
_P521 = (
    2**521 - 1,
    int("0051953EB9618E1C9A1F929A21A0B68540EEA2DA725B99B315F3B8B489918EF1"
        "09E156193951EC7E937B1652C0BD3BB1BF073573DF883D2C34F1EF451FD46B50"
        "3F00", 16),
    66,
)
_CURVES = {
    SignatureScheme.ECDSA_SECP256R1_SHA256: _P256,
    SignatureScheme.ECDSA_SECP384R1_SHA384: _P384,
    SignatureScheme.ECDSA_SECP521R1_SHA512: _P521,
}
_EDDSA_LENGTH = {SignatureScheme.ED25519: 32, SignatureScheme.ED448: 57}


def check_signature_key(cs: CipherSuite, key: bytes) -> None:
    """Raise :class:`~mls.errors.PublicKeyError` unless ``key`` is a signature
    public key in the encoding of ``cs`` (RFC 9420 §5.1.1)."""
    scheme = cs.signature_scheme
    curve = _CURVES.get(scheme)
    if curve is None:
        if len(key) != _EDDSA_LENGTH[scheme]:
            raise PublicKeyError(
                f"{scheme.name} signature key must be {_EDDSA_LENGTH[scheme]} bytes, "
                f"got {len(key)} (§5.1.1)")
        return
    p, b, n = curve
    if len(key) != 1 + 2 * n or key[0] != 0x04:
        form = {0x02: "compressed", 0x03: "compressed", 0x06: "hybrid", 0x07: "hybrid"}
        kind = form.get(key[0], "malformed") if key else "empty"
        raise PublicKeyError(
            f"{scheme.name} signature key must be an uncompressed SEC1 point of "
            f"{1 + 2 * n} bytes; got a {kind} encoding of {len(key)} bytes (§5.1.1)")
    x = int.from_bytes(key[1 : 1 + n], "big")
    y = int.from_bytes(key[1 + n :], "big")
    if x >= p or y >= p or (y * y - (x * x * x - 3 * x + b)) % p != 0:
        raise PublicKeyError(f"{scheme.name} signature key is not a point on the curve (§5.1.1)")
