"""Which cipher suites the service accepts, derived from the mls library's suite table.

A device registers one signature key under one cipher suite (RFC 9420 §5.1.1: the key's
format is the suite's signature scheme). The same key signs in every suite with that
signature scheme, so a device may publish KeyPackages, create and join groups in any
supported suite whose scheme equals its registered suite's: e.g. a device registered
in suite 1 (Ed25519) may also use the post-quantum suites 0x004D-0x004F (Ed25519
signatures, hybrid ML-KEM key exchange; docs/pq.md). The server never needs the KEM:
it only verifies signatures and parses messages.
"""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519

from delivery.errors import BadRequest
from mls.crypto.ciphersuite import SUITES
from mls.crypto.provider import SignatureScheme

SUPPORTED_CIPHER_SUITES: frozenset[int] = frozenset(SUITES)

_CURVES: dict[SignatureScheme, ec.EllipticCurve] = {
    SignatureScheme.ECDSA_SECP256R1_SHA256: ec.SECP256R1(),
    SignatureScheme.ECDSA_SECP384R1_SHA384: ec.SECP384R1(),
    SignatureScheme.ECDSA_SECP521R1_SHA512: ec.SECP521R1(),
}


def _supported_list() -> str:
    return ", ".join(f"{s} (0x{s:04x})" for s in sorted(SUPPORTED_CIPHER_SUITES))


def require_supported(cipher_suite: int) -> SignatureScheme:
    """The suite's signature scheme; 400 ``unsupported_cipher_suite`` for a suite the
    mls library does not implement."""
    params = SUITES.get(cipher_suite)
    if params is None:
        raise BadRequest(
            f"cipher suite {cipher_suite} (0x{cipher_suite:04x}) is not supported; use one "
            f"of {_supported_list()}",
            code="unsupported_cipher_suite",
        )
    return params.signature


def validate_signature_key(cipher_suite: int, key: bytes) -> None:
    """Refuse a key that is not a valid raw public key of the suite's signature scheme
    (RFC 9420 §5.1.1: EdDSA raw keys, ECDSA uncompressed SEC1 points)."""
    scheme = require_supported(cipher_suite)
    try:
        if scheme == SignatureScheme.ED25519:
            ed25519.Ed25519PublicKey.from_public_bytes(key)
        elif scheme == SignatureScheme.ED448:
            ed448.Ed448PublicKey.from_public_bytes(key)
        else:
            if not key.startswith(b"\x04"):
                raise ValueError("not an uncompressed point")
            ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[scheme], key)
    except (ValueError, UnsupportedAlgorithm):
        raise BadRequest(
            f"signature_key is not a valid public key for cipher suite {cipher_suite}",
            code="invalid_signature_key",
        ) from None


def usable_suites(device_suite: int) -> frozenset[int]:
    """The supported suites a device registered in ``device_suite`` can sign in."""
    params = SUITES.get(device_suite)
    if params is None:
        return frozenset()
    return frozenset(s for s, p in SUITES.items() if p.signature == params.signature)


def check_usable(device_suite: int, cipher_suite: int, what: str) -> None:
    """400 unless a device of ``device_suite`` may use ``cipher_suite`` for ``what``:
    ``unsupported_cipher_suite`` for a suite the library lacks, ``cipher_suite_mismatch``
    for one whose signature scheme differs from the device's registered key."""
    scheme = require_supported(cipher_suite)
    if cipher_suite not in usable_suites(device_suite):
        raise BadRequest(
            f"{what} uses cipher suite {cipher_suite} (0x{cipher_suite:04x}), whose signature "
            f"scheme ({scheme.name}) is not that of the device's registered key (suite "
            f"{device_suite})",
            code="cipher_suite_mismatch",
        )
