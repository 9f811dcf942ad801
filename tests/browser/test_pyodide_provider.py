"""PyodideProvider behaves like CPythonProvider, including on hostile input.

The vectors exercise the happy paths of every primitive; this differential test adds
what they do not: tampered and truncated ciphertexts, wrong key sizes, low-order and
off-curve points, all-zero shared secrets, out-of-range scalars, garbage and high-S
ECDSA signatures (valid, emitted by OpenSSL and others; noble rejects them by
default), compressed keys MLS forbids, and zero-stripped NIST scalars. Each operation
runs through both providers (Pyodide under Node) and the outcomes must be equal:
same bytes, same boolean, or the same exception class. Randomized ECDSA signatures
cannot be equal, so Pyodide's must verify under CPython instead.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from mls.crypto import AeadAlg, KemAlg, SignatureScheme
from mls.crypto.cpython import CPythonProvider
from mls.crypto.hpke import curve_order
from mls.vectors.pyodide_runtime import run_python

from . import provider_ops

MSG = b"MLS provider parity"
CP = CPythonProvider()

_X25519_P = 2**255 - 19
_X448_P = 2**448 - 2**224 - 1
# Points of small order (and their non-canonical aliases): DH with them gives all
# zeros, which RFC 9180 §7.1.4 requires to be rejected.
X25519_LOW_ORDER = [
    *(u.to_bytes(32, "little") for u in (0, 1, _X25519_P - 1, _X25519_P, _X25519_P + 1)),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
]
X448_LOW_ORDER = [u.to_bytes(56, "little") for u in (0, 1, _X448_P - 1, _X448_P, _X448_P + 1)]
NIST_KEM = {
    SignatureScheme.ECDSA_SECP256R1_SHA256: KemAlg.DHKEM_P256,
    SignatureScheme.ECDSA_SECP384R1_SHA384: KemAlg.DHKEM_P384,
    SignatureScheme.ECDSA_SECP521R1_SHA512: KemAlg.DHKEM_P521,
}
SCALAR_LEN = {KemAlg.DHKEM_P256: 32, KemAlg.DHKEM_P384: 48, KemAlg.DHKEM_P521: 66}


def _scalar(kem: KemAlg, seed: bytes, *, leading_zero: bool = False) -> bytes:
    """A valid private scalar derived from ``seed``; optionally one < 2^(8(n-1))."""
    order = curve_order(kem)
    assert order is not None
    size = SCALAR_LEN[kem]
    limit = 2 ** (8 * (size - 1)) if leading_zero else order
    v = int.from_bytes(hashlib.sha512(seed * 3).digest() * 2, "big") % (limit - 1) + 1
    return v.to_bytes(size, "big")


def _h(*parts: bytes) -> list[str]:
    return [p.hex() for p in parts]


def aead_ops() -> list[list[Any]]:
    ops: list[list[Any]] = []
    for alg in AeadAlg:
        key, nonce, aad = bytes(range(alg.key_size)), bytes(range(100, 112)), b"aad"
        for pt in (b"", b"x", bytes(range(256)) * 4):
            ct = CP.aead_seal(alg, key, nonce, aad, pt)
            tampered = ct[:-1] + bytes([ct[-1] ^ 1])
            ops += [
                ["aead_seal", alg, *_h(key, nonce, aad, pt)],
                ["aead_open", alg, *_h(key, nonce, aad, ct)],
                ["aead_open", alg, *_h(key, nonce, b"other aad", ct)],
                ["aead_open", alg, *_h(key, nonce, aad, tampered)],
                ["aead_open", alg, *_h(bytes(alg.key_size), nonce, aad, ct)],
            ]
        ops += [
            ["aead_open", alg, *_h(key, nonce, aad, bytes(15))],  # shorter than the tag
            ["aead_open", alg, *_h(key, nonce, aad, b"")],
            ["aead_seal", alg, *_h(key[:-1], nonce, aad, b"x")],  # wrong key sizes
            ["aead_open", alg, *_h(key + b"\0", nonce, aad, bytes(16))],
        ]
    return ops


_Q = 3329  # the ML-KEM modulus


def _unreduced(ek: bytes) -> bytes:
    """ML-KEM encapsulation key whose first coefficient is q: FIPS 203 §7.2 refuses it."""
    b = bytearray(ek)
    b[0], b[1] = _Q & 0xFF, (b[1] & 0xF0) | (_Q >> 8)
    return bytes(b)


#: ML-KEM seed of each encapsulation key in mlkem_ops (to check randomized encapsulations).
MLKEM_SEEDS: dict[str, bytes] = {}


def mlkem_ops() -> list[list[Any]]:
    """ML-KEM: keys from seeds, decapsulation (valid, tampered: implicit rejection must
    give the same secret on both), wrong sizes, and unreduced encapsulation keys."""
    ops: list[list[Any]] = []
    for kem in (KemAlg.MLKEM768, KemAlg.MLKEM1024):
        seed = hashlib.sha512(b"mlkem" + bytes([kem])).digest()
        ek = CP.kem_public_key(kem, seed)
        MLKEM_SEEDS[ek.hex()] = seed
        _, ct = CP.kem_encap(kem, ek)
        tampered = ct[:7] + bytes([ct[7] ^ 0x40]) + ct[8:]
        ops += [
            ["kem_public_key", kem, *_h(seed)],
            ["kem_public_key", kem, *_h(seed[:-1])],
            ["kem_public_key", kem, *_h(seed + b"\0")],
            ["kem_decap", kem, *_h(seed, ct)],
            ["kem_decap", kem, *_h(seed, tampered)],
            ["kem_decap", kem, *_h(seed, bytes(len(ct)))],
            ["kem_decap", kem, *_h(seed, ct[:-1])],
            ["kem_decap", kem, *_h(seed, ct + b"\0")],
            ["kem_decap", kem, *_h(seed[:32], ct)],
            ["kem_encap", kem, *_h(ek)],
            ["kem_encap", kem, *_h(_unreduced(ek))],
            ["kem_encap", kem, *_h(ek[:-1])],
            ["kem_encap", kem, *_h(b"")],
        ]
    return ops


def kem_ops() -> list[list[Any]]:
    ops: list[list[Any]] = mlkem_ops()
    for kem, low_order, size in (
        (KemAlg.DHKEM_X25519, X25519_LOW_ORDER, 32),
        (KemAlg.DHKEM_X448, X448_LOW_ORDER, 56),
    ):
        sk = hashlib.sha512(b"sk" + bytes([kem])).digest()[:size]
        peer = CP.kem_public_key(kem, hashlib.sha512(b"peer").digest()[:size])
        ops += [
            ["kem_public_key", kem, *_h(sk)],
            ["dh", kem, *_h(sk, peer)],
            ["kem_public_key", kem, *_h(sk[:-1])],
            ["dh", kem, *_h(sk, peer[:-1])],
            ["dh", kem, *_h(sk + b"\0", peer)],
            *(["dh", kem, *_h(sk, point)] for point in low_order),
        ]
    for kem, size in SCALAR_LEN.items():
        order = curve_order(kem)
        assert order is not None
        sk = _scalar(kem, b"sk")
        peer = CP.kem_public_key(kem, _scalar(kem, b"peer"))
        x, y = peer[1 : 1 + size], peer[1 + size :]
        compressed = bytes([2 + (y[-1] & 1)]) + x
        off_curve = peer[:-1] + bytes([peer[-1] ^ 1])
        ops += [
            ["kem_public_key", kem, *_h(sk)],
            ["dh", kem, *_h(sk, peer)],
            ["kem_public_key", kem, *_h(_scalar(kem, b"short", leading_zero=True))],
            ["kem_public_key", kem, *_h(_scalar(kem, b"short", leading_zero=True)[1:])],
            ["kem_public_key", kem, *_h(bytes(size))],  # zero scalar
            ["kem_public_key", kem, *_h(order.to_bytes(size, "big"))],  # scalar = n
            ["kem_public_key", kem, *_h((order - 1).to_bytes(size, "big"))],
            ["kem_public_key", kem, *_h(sk + b"\0")],
            ["dh", kem, *_h(sk, compressed)],  # MLS requires the uncompressed form
            ["dh", kem, *_h(sk, off_curve)],
            ["dh", kem, *_h(sk, b"\x05" + peer[1:])],
            ["dh", kem, *_h(sk, b"\x00")],  # the point at infinity
            ["dh", kem, *_h(sk, bytes(len(peer)))],
            ["dh", kem, *_h(bytes(size), peer)],
        ]
    # The one-crossing DH used by HPKE Encap/Decap: every DH case again.
    ops += [["dh_with_public", *op[1:]] for op in ops if op[0] == "dh"]
    return ops


def _ecdsa_variants(scheme: SignatureScheme, sig: bytes) -> list[bytes]:
    """The other-S twin of a DER signature (one of the two is high-S), and r/s = 0."""
    order = curve_order(NIST_KEM[scheme])
    assert order is not None
    r, s = decode_dss_signature(sig)
    return [
        encode_dss_signature(r, order - s),
        encode_dss_signature(0, s),
        encode_dss_signature(r, 0),
        encode_dss_signature(r, s + order),
    ]


def signature_ops() -> list[list[Any]]:
    ops: list[list[Any]] = []
    for scheme in SignatureScheme:
        if scheme in NIST_KEM:
            kem = NIST_KEM[scheme]
            sk = _scalar(kem, b"sig")
            order = curve_order(kem)
            assert order is not None
            size = SCALAR_LEN[kem]
            bad_keys = [bytes(size), order.to_bytes(size, "big"), sk + b"\0", b""]
            short = _scalar(kem, b"short sig", leading_zero=True)
            ops.append(["signature_public_key", scheme, *_h(short[1:])])
        else:
            size = 32 if scheme is SignatureScheme.ED25519 else 57
            sk = hashlib.sha512(b"sig" + bytes([scheme & 0xFF])).digest()[:size]
            bad_keys = [sk[:-1], sk + b"\0", b""]
        pk = CP.signature_public_key(scheme, sk)
        sig = CP.sign(scheme, sk, MSG)
        garbage = [b"", bytes(len(sig)), b"\x30\x00", sig[:-1], sig + b"\0", bytes(range(72))]
        ops += [
            ["signature_public_key", scheme, *_h(sk)],
            ["sign", scheme, *_h(sk, MSG)],
            ["sign", scheme, *_h(sk, b"")],
            ["verify", scheme, *_h(pk, MSG, sig)],
            ["verify", scheme, *_h(pk, MSG + b"!", sig)],
            ["verify", scheme, *_h(pk[:-1], MSG, sig)],
            ["verify", scheme, *_h(bytes(len(pk)), MSG, sig)],
            *(["verify", scheme, *_h(pk, MSG, g)] for g in garbage),
            *(["signature_public_key", scheme, *_h(k)] for k in bad_keys),
            *(["sign", scheme, *_h(k, MSG)] for k in bad_keys),
        ]
        if scheme in NIST_KEM:
            size = SCALAR_LEN[NIST_KEM[scheme]]
            compressed = bytes([2 + (pk[-1] & 1)]) + pk[1 : 1 + size]
            ops.append(["verify", scheme, *_h(compressed, MSG, sig)])
            ops += [["verify", scheme, *_h(pk, MSG, v)] for v in _ecdsa_variants(scheme, sig)]
    # The loaded-once signer: every signing case again, through signing_key.
    ops += [["signing_key", *op[1:]] for op in ops if op[0] == "sign"]
    return ops


def run_pyodide_provider(ops: list[list[Any]], *, by_address: bool) -> list[list[Any]]:
    """The outcomes under Pyodide, bytes passed by address (``by_address``, asserted to
    be in use) or copied with ``to_js`` (the fallback)."""
    source = Path(provider_ops.__file__).read_text(encoding="utf-8")
    code = (
        f"{source}\n"
        "import json\n"
        "from mls.crypto.pyodide import PyodideProvider\n"
        f"provider = PyodideProvider(by_address={by_address})\n"
        f"assert provider.by_address is {by_address}\n"
        f"print(json.dumps(outcomes(provider, json.loads({json.dumps(ops)!r}))))\n"
    )
    proc = run_python(code, capture=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result: list[list[Any]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("by_address", [True, False], ids=["by-address", "to_js"])
def test_pyodide_provider_matches_cpython(by_address: bool) -> None:
    ops = aead_ops() + kem_ops() + signature_ops()
    want = provider_ops.outcomes(CP, ops)
    got = run_pyodide_provider(ops, by_address=by_address)
    assert len(got) == len(ops)
    mismatches = []
    for op, w, g in zip(ops, want, got, strict=True):
        method, alg, *args = op
        if method == "kem_encap" and w[0] == "pair":
            # Randomized: Pyodide's encapsulation must decapsulate under CPython.
            seed = MLKEM_SEEDS[args[0]]
            if g[0] == "pair":
                ss, ct = bytes.fromhex(g[1]), bytes.fromhex(g[2])
                if CP.kem_decap(KemAlg(alg), seed, ct) == ss:
                    continue
        elif method in ("sign", "signing_key") and alg in NIST_KEM and w[0] == "bytes":
            scheme = SignatureScheme(alg)
            sk, msg = bytes.fromhex(args[0]), bytes.fromhex(args[1])
            pk = CP.signature_public_key(scheme, sk)
            if g[0] == "bytes" and CP.verify(scheme, pk, msg, bytes.fromhex(g[1])):
                continue
        elif w == g:
            continue
        mismatches.append(
            f"{method}({alg:#06x}, {', '.join(a[:24] for a in args)}): CPython {w}, Pyodide {g}"
        )
    assert not mismatches, f"{len(mismatches)} of {len(ops)} differ:\n" + "\n".join(mismatches)


def test_differential_cases_cover_rejections() -> None:
    """The comparison above is only as good as its cases: make sure they include the
    rejections and the high-S acceptance they are meant to probe."""
    ops = aead_ops() + kem_ops() + signature_ops()
    outcomes = [tuple(o) for o in provider_ops.outcomes(CP, ops)]
    assert ("raises", "DecryptionError") in outcomes
    pairs = list(zip(ops, outcomes, strict=True))
    dh_errors = [o for op, o in pairs if op[0] == "dh" and o[0] == "raises"]
    assert len(dh_errors) >= len(X25519_LOW_ORDER) + len(X448_LOW_ORDER)
    mlkem_errors = [o for op, o in pairs if op[0].startswith("kem_") and o[0] == "raises"]
    assert len(mlkem_errors) >= 2 * 8  # wrong sizes and unreduced keys, for both ML-KEMs
    for method in ("dh_with_public", "signing_key"):
        done = [o for op, o in pairs if op[0] == method]
        assert ("raises", "CryptoError") in done and any(o[0] != "raises" for o in done)
    ecdsa_accepted = [
        o for op, o in pairs if op[0] == "verify" and op[1] in NIST_KEM and o == ("bool", True)
    ]
    assert len(ecdsa_accepted) == 2 * len(NIST_KEM)  # the original and its other-S twin


ZERO_COPY_EDGES = """
import json
from mls.crypto import AeadAlg, SignatureScheme
from mls.crypto.pyodide import PyodideProvider
import mls_crypto_js as js
from pyodide.ffi import JsException

p = PyodideProvider()
assert p.by_address
A, ED = AeadAlg.AES128GCM, SignatureScheme.ED25519
key, nonce, aad, msg = bytes(range(16)), bytes(range(12)), b"aad", bytes(range(200))


class Sub(bytes):
    pass


out = {"seal": p.aead_seal(A, key, nonce, aad, msg).hex()}
# Other buffer types are copied to bytes first (and kept alive during the call).
out["seal_views"] = p.aead_seal(
    A, bytearray(key), memoryview(nonce), Sub(aad), memoryview(msg)[0:200]).hex()
sign = p.signing_key(ED, bytes(range(32)))
out["sign"] = sign(msg).hex()
out["sign_views"] = sign(bytearray(msg)).hex()
out["sign_empty"] = sign(b"").hex()
# The memory grows (its old views detach): later calls read the new memory.
big = bytes(96 << 20)
out["seal_grown"] = p.aead_seal(A, key, nonce, aad, msg).hex()
out["sign_grown"] = sign(msg).hex()
del big
# Addresses outside the memory are refused on the JS side, not read.
try:
    js.aead_seal_heap(1, 2**32 - 8, 16, 0, 12, 0, 0, 0, 0)
    out["outside"] = "accepted"
except JsException as e:
    out["outside"] = str(e)
print(json.dumps(out))
"""


def test_by_address_edges() -> None:
    """Bytes passed by address: other buffer types, a grown memory, addresses outside
    the memory; the results are CPython's."""
    proc = run_python(ZERO_COPY_EDGES, capture=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    key, nonce, msg = bytes(range(16)), bytes(range(12)), bytes(range(200))
    seal = CP.aead_seal(AeadAlg.AES128GCM, key, nonce, b"aad", msg).hex()
    sig = CP.sign(SignatureScheme.ED25519, bytes(range(32)), msg).hex()
    assert out["seal"] == out["seal_views"] == out["seal_grown"] == seal
    assert out["sign"] == out["sign_views"] == out["sign_grown"] == sig
    assert out["sign_empty"] == CP.sign(SignatureScheme.ED25519, bytes(range(32)), b"").hex()
    assert "outside the Python heap" in out["outside"]
