"""MLS cipher suites (RFC 9420 §5.1, §17.1) and the labelled functions of §5.

A :class:`CipherSuite` binds one suite's algorithms to a provider and offers
the operations the protocol is written in: ``ExpandWithLabel``,
``DeriveSecret``, ``RefHash``, ``SignWithLabel``/``VerifyWithLabel`` and
``EncryptWithLabel``/``DecryptWithLabel``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from ..codec import Writer, encode_varint
from ..errors import CryptoError, PublicKeyError, UnsupportedError
from .hashing import StdlibPrimitives, hmac_keyed
from .hpke import Hpke
from .kdf import hkdf_expand, hkdf_extract
from .kem import (
    DHKEM_P256,
    DHKEM_P384,
    DHKEM_P521,
    DHKEM_X448,
    DHKEM_X25519,
    MLKEM768,
    MLKEM768_X25519,
    MLKEM1024,
    XWING_OPENMLS,
    Kem,
    curve_order,
)
from .provider import AeadAlg, CryptoProvider, HashAlg, KemAlg, SignatureScheme

_LABEL_PREFIX = b"MLS 1.0 "
#: How many ExpandWithLabel info prefixes a suite keeps (labels are the code's
#: constants, but MLS-Exporter takes the caller's: the cache must stay bounded).
_MAX_LABEL_PREFIXES = 64


class CipherSuiteId(IntEnum):
    """The cipher suites registered by RFC 9420 §17.1."""

    MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 = 0x0001
    MLS_128_DHKEMP256_AES128GCM_SHA256_P256 = 0x0002
    MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519 = 0x0003
    MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448 = 0x0004
    MLS_256_DHKEMP521_AES256GCM_SHA512_P521 = 0x0005
    MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448 = 0x0006
    MLS_256_DHKEMP384_AES256GCM_SHA384_P384 = 0x0007


@dataclass(frozen=True, slots=True)
class SuiteParams:
    """One suite's algorithms: the HPKE KEM, AEAD and KDF/hash, and the signature
    scheme. ``name`` is the suite's registered name; ``origin`` says where its code
    point and exact definition come from."""

    kem: Kem
    aead: AeadAlg
    hash: HashAlg
    signature: SignatureScheme
    name: str
    origin: str = "RFC 9420"


_ED25519 = SignatureScheme.ED25519
_P256 = SignatureScheme.ECDSA_SECP256R1_SHA256
_P384 = SignatureScheme.ECDSA_SECP384R1_SHA384
_SHA256, _SHA384, _SHA512 = HashAlg.SHA256, HashAlg.SHA384, HashAlg.SHA512
_AES128, _AES256, _CHACHA = AeadAlg.AES128GCM, AeadAlg.AES256GCM, AeadAlg.CHACHA20POLY1305
_DRAFT = "draft-ietf-mls-pq-ciphersuites-06"
_OPENMLS = "OpenMLS 0.9 (libcrux): X-Wing keys derived as draft-connolly-cfrg-xwing-kem"

#: The post-quantum suites, in ONE table: change a code point here and nowhere else.
#:
#: draft-ietf-mls-pq-ciphersuites-06 leaves its values "TBD". Its suites are exactly
#: as the draft specifies (KEMs of draft-ietf-hpke-pq) under private-use values
#: (RFC 9420 §17.1: 0xF000-0xFFFF); TBD3-5 (ML-KEM + P-256/P-384 hybrids) and
#: TBD9-11 (ML-DSA signatures) are not implemented. 0x004D-0x004F are the values
#: OpenMLS 0.9.2 uses, with OpenMLS's key derivation so that the two interoperate
#: (the only difference from the draft: see mls.crypto.kem.Derivation).
PQ_SUITES: dict[int, SuiteParams] = {
    0x004D: SuiteParams(XWING_OPENMLS, _CHACHA, _SHA256, _ED25519,
                        "MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519", _OPENMLS),
    0x004E: SuiteParams(XWING_OPENMLS, _AES256, _SHA384, _ED25519,
                        "MLS_128_MLKEM768X25519_AES256GCM_SHA384_Ed25519", _OPENMLS),
    0x004F: SuiteParams(XWING_OPENMLS, _AES128, _SHA256, _ED25519,
                        "MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519", _OPENMLS),
    0xF0D1: SuiteParams(MLKEM768_X25519, _AES128, _SHA256, _ED25519,
                        "MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519", _DRAFT + " TBD1"),
    0xF0D2: SuiteParams(MLKEM768_X25519, _AES256, _SHA384, _ED25519,
                        "MLS_128_MLKEM768X25519_AES256GCM_SHA384_Ed25519", _DRAFT + " TBD2"),
    0xF0D6: SuiteParams(MLKEM768, _AES256, _SHA384, _ED25519,
                        "MLS_128_MLKEM768_AES256GCM_SHA384_Ed25519", _DRAFT + " TBD6"),
    0xF0D7: SuiteParams(MLKEM768, _AES256, _SHA384, _P256,
                        "MLS_128_MLKEM768_AES256GCM_SHA384_P256", _DRAFT + " TBD7"),
    0xF0D8: SuiteParams(MLKEM1024, _AES256, _SHA384, _P384,
                        "MLS_192_MLKEM1024_AES256GCM_SHA384_P384", _DRAFT + " TBD8"),
}

SUITES: dict[int, SuiteParams] = {
    1: SuiteParams(DHKEM_X25519, _AES128, _SHA256, _ED25519, CipherSuiteId(1).name),
    2: SuiteParams(DHKEM_P256, _AES128, _SHA256, _P256, CipherSuiteId(2).name),
    3: SuiteParams(DHKEM_X25519, _CHACHA, _SHA256, _ED25519, CipherSuiteId(3).name),
    4: SuiteParams(DHKEM_X448, _AES256, _SHA512, SignatureScheme.ED448, CipherSuiteId(4).name),
    5: SuiteParams(DHKEM_P521, _AES256, _SHA512, SignatureScheme.ECDSA_SECP521R1_SHA512,
                   CipherSuiteId(5).name),
    6: SuiteParams(DHKEM_X448, _CHACHA, _SHA512, SignatureScheme.ED448, CipherSuiteId(6).name),
    7: SuiteParams(DHKEM_P384, _AES256, _SHA384, _P384, CipherSuiteId(7).name),
    **PQ_SUITES,
}


def suite_name(suite_id: int) -> str:
    """The registered name of a suite, with its origin for the post-quantum ones."""
    params = SUITES.get(suite_id)
    if params is None:
        return f"unknown cipher suite 0x{suite_id:04x}"
    if suite_id in PQ_SUITES:
        return f"{params.name} (0x{suite_id:04x}, {params.origin})"
    return params.name


# Private key sizes of the signature schemes (raw EdDSA seeds, ECDSA scalars).
_SIG_SK_LEN = {
    SignatureScheme.ED25519: 32,
    SignatureScheme.ED448: 57,
    SignatureScheme.ECDSA_SECP256R1_SHA256: 32,
    SignatureScheme.ECDSA_SECP384R1_SHA384: 48,
    SignatureScheme.ECDSA_SECP521R1_SHA512: 66,
}
_SIG_CURVE = {
    SignatureScheme.ECDSA_SECP256R1_SHA256: KemAlg.DHKEM_P256,
    SignatureScheme.ECDSA_SECP384R1_SHA384: KemAlg.DHKEM_P384,
    SignatureScheme.ECDSA_SECP521R1_SHA512: KemAlg.DHKEM_P521,
}


#: ``opaque label<V>`` of the labels signed with, with the MLS prefix (read-only).
_SIGN_LABELS = {label: encode_varint(len(_LABEL_PREFIX + label)) + _LABEL_PREFIX + label
                for label in (b"FramedContentTBS", b"LeafNodeTBS", b"KeyPackageTBS",
                              b"GroupInfoTBS")}


def _label_struct(label: bytes, context: bytes) -> bytes:
    """``struct { opaque label<V>; opaque content<V>; }`` with the MLS prefix."""
    head = _SIGN_LABELS.get(label)
    if head is None:
        full = _LABEL_PREFIX + label
        head = encode_varint(len(full)) + full
    n = len(context)
    return b"".join((head, bytes((n,)) if n < 0x40 else encode_varint(n), context))


class CipherSuite:
    """One MLS cipher suite over one provider (RFC 9420 §5)."""

    __slots__ = ("_hmac", "_hmac_key", "_hmac_name", "_prefixes", "_sd_key", "_sd_prefixes",
                 "_signer", "_tree_prefixes",
                 "aead_key_length", "aead_nonce_length", "hash_alg", "hash_length", "hpke",
                 "id", "params", "provider")

    def __init__(self, suite_id: int, provider: CryptoProvider) -> None:
        params = SUITES.get(suite_id)
        if params is None:
            raise UnsupportedError(f"unsupported cipher suite 0x{suite_id:04x}")
        self.id = suite_id
        self.params = params
        self.provider = provider
        self.hash_alg = params.hash
        #: ``KDF.Nh``: the hash and KDF output length; the AEAD's ``Nk`` and ``Nn``.
        self.hash_length: int = params.hash.digest_size
        self.aead_key_length: int = params.aead.key_size
        self.aead_nonce_length: int = params.aead.nonce_size
        self.hpke = Hpke(provider, params.kem, params.hash, params.aead)
        # The last private key signed with, loaded: a group signs with one key.
        self._signer: tuple[bytes, Callable[[bytes], bytes]] | None = None
        # HMAC(key, data, name): the standard library's straight away when the
        # provider uses it unchanged (every KDF call of every message goes here),
        # else through the provider.
        # A key that MACs several messages is prepared once (hmac_keyed) with the
        # standard library, else each MAC goes through the provider too.
        self._hmac_name = params.hash.hashlib_name
        self._hmac: Callable[[bytes, bytes, str], bytes]
        self._hmac_key: Callable[[bytes], Callable[[bytes], bytes]]
        stdlib_hmac: object = StdlibPrimitives.hmac
        alg = params.hash
        if type(provider).hmac is stdlib_hmac:
            self._hmac = hmac.digest
            self._hmac_key = hmac_keyed(alg)
        else:
            self._hmac = lambda key, data, _name: provider.hmac(alg, key, data)
            self._hmac_key = lambda key: lambda data: provider.hmac(alg, key, data)
        # The sender data secret of the last message and its prepared MAC: every
        # message of an epoch derives its sender data key and nonce from it.
        self._sd_key: tuple[bytes, Callable[[bytes], bytes]] | None = None
        # ExpandWithLabel's info up to the context, by (label, length) (§5.1).
        self._prefixes: dict[tuple[bytes, int], bytes] = {}
        # DeriveTreeSecret's info up to the generation (its 4-byte context), for
        # the secret-tree ratchet's "key", "nonce" and "secret" (§9).
        self._tree_prefixes = tuple(
            self._prefix(label, n) + b"\x04" for label, n in (
                (b"key", self.aead_key_length), (b"nonce", self.aead_nonce_length),
                (b"secret", self.hash_length)))
        # ExpandWithLabel's info up to the ciphertext sample (Nh bytes) for the
        # sender data key and nonce (§6.3.2).
        nh = encode_varint(self.hash_length)
        self._sd_prefixes = (self._prefix(b"key", self.aead_key_length) + nh,
                             self._prefix(b"nonce", self.aead_nonce_length) + nh)

    def __repr__(self) -> str:
        return f"CipherSuite({suite_name(self.id)}, provider={self.provider.name})"

    # -- sizes ---------------------------------------------------------------
    @property
    def signature_scheme(self) -> SignatureScheme:
        return self.params.signature

    # -- hash, MAC, KDF ------------------------------------------------------
    def random(self, n: int) -> bytes:
        return self.provider.random(n)

    def hash(self, data: bytes) -> bytes:
        return self.provider.hash(self.hash_alg, data)

    def mac(self, key: bytes, data: bytes) -> bytes:
        """MAC = HMAC with the suite's hash (RFC 9420 §5.1)."""
        return self._hmac(key, data, self._hmac_name)

    def extract(self, salt: bytes, ikm: bytes) -> bytes:
        return hkdf_extract(self.provider, self.hash_alg, salt, ikm)

    def expand(self, prk: bytes, info: bytes, length: int) -> bytes:
        if length <= self.hash_length:  # one block: T(1) = HMAC(PRK, info || 0x01)
            return self._hmac(prk, info + b"\x01", self._hmac_name)[:length]
        return hkdf_expand(self.provider, self.hash_alg, prk, info, length)

    def _prefix(self, label: bytes, length: int) -> bytes:
        """``KDFLabel`` up to its context: ``uint16 length; opaque label<V>`` (§5.1)."""
        pre = self._prefixes.get((label, length))
        if pre is None:
            full = _LABEL_PREFIX + label
            pre = length.to_bytes(2, "big") + encode_varint(len(full)) + full
            if len(self._prefixes) < _MAX_LABEL_PREFIXES:
                self._prefixes[(label, length)] = pre
        return pre

    def expand_with_label(self, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
        """ExpandWithLabel (RFC 9420 §5.1)."""
        n = len(context)
        info = (self._prefix(label, length) + (bytes((n,)) if n < 0x40 else encode_varint(n))
                + context)
        return self.expand(secret, info, length)

    def sender_data_key_nonce(self, sender_data_secret: bytes, ciphertext: bytes
                              ) -> tuple[bytes, bytes]:
        """Key and nonce protecting SenderData (§6.3.2): ExpandWithLabel of the
        sender data secret with "key" and "nonce", the ciphertext sample as context."""
        sample = ciphertext[:self.hash_length]
        if len(sample) < self.hash_length:  # a ciphertext too short to make a full sample
            return (self.expand_with_label(sender_data_secret, b"key", sample,
                                           self.aead_key_length),
                    self.expand_with_label(sender_data_secret, b"nonce", sample,
                                           self.aead_nonce_length))
        pk, pn = self._sd_prefixes
        ctx = sample + b"\x01"  # the context, then HKDF's counter
        prepared = self._sd_key
        # Identity, not equality: no comparison of secret bytes; a group state
        # hands over the same bytes object for every message of the epoch.
        if prepared is None or prepared[0] is not sender_data_secret:
            prepared = (sender_data_secret, self._hmac_key(sender_data_secret))
            self._sd_key = prepared
        mac = prepared[1]
        return mac(pk + ctx)[:self.aead_key_length], mac(pn + ctx)[:self.aead_nonce_length]

    def ratchet_step(self, secret: bytes, generation: int) -> tuple[bytes, bytes, bytes]:
        """One step of a secret-tree hash ratchet (RFC 9420 §9.1): this generation's
        key and nonce, and the next generation's ratchet secret, each
        ``DeriveTreeSecret(secret, label, generation, length)``."""
        pk, pn, ps = self._tree_prefixes
        ctx = generation.to_bytes(4, "big") + b"\x01"  # the context, then HKDF's counter
        mac = self._hmac_key(secret)
        return (mac(pk + ctx)[:self.aead_key_length], mac(pn + ctx)[:self.aead_nonce_length],
                mac(ps + ctx))

    def derive_secret(self, secret: bytes, label: bytes) -> bytes:
        """DeriveSecret (RFC 9420 §5.1)."""
        return self.expand_with_label(secret, label, b"", self.hash_length)

    def derive_tree_secret(
        self, secret: bytes, label: bytes, generation: int, length: int
    ) -> bytes:
        """DeriveTreeSecret (RFC 9420 §9)."""
        return self.expand(secret, self._prefix(label, length) + b"\x04"
                           + generation.to_bytes(4, "big"), length)

    def ref_hash(self, label: bytes, value: bytes) -> bytes:
        """RefHash (RFC 9420 §5.2); ``label`` is used as given."""
        w = Writer()
        w.opaque(label)
        w.opaque(value)
        return self.hash(w.getvalue())

    # -- signatures ------------------------------------------------------------
    def sign_with_label(self, private_key: bytes, label: bytes, content: bytes) -> bytes:
        """SignWithLabel (RFC 9420 §5.1.2)."""
        signer = self._signer
        # Identity, not equality: no comparison of secret bytes, and a group
        # state hands over the same bytes object for every message.
        if signer is None or signer[0] is not private_key:
            signer = (private_key, self.provider.signing_key(self.params.signature, private_key))
            self._signer = signer
        return signer[1](_label_struct(label, content))

    def verify_with_label(
        self, public_key: bytes, label: bytes, content: bytes, signature: bytes
    ) -> bool:
        """VerifyWithLabel (RFC 9420 §5.1.2); ``False`` for any invalid input."""
        try:
            return self.provider.verify(
                self.params.signature, public_key, _label_struct(label, content), signature
            )
        except CryptoError:
            return False

    def signature_public_key(self, private_key: bytes) -> bytes:
        return self.provider.signature_public_key(self.params.signature, private_key)

    def generate_signature_key_pair(self) -> tuple[bytes, bytes]:
        """A fresh (private, public) signature key pair from the provider's randomness."""
        scheme = self.params.signature
        n = _SIG_SK_LEN[scheme]
        curve = _SIG_CURVE.get(scheme)
        while True:
            sk = bytearray(self.provider.random(n))
            if curve is not None:
                if curve is KemAlg.DHKEM_P521:
                    sk[0] &= 0x01
                order = curve_order(curve)
                assert order is not None
                if not 0 < int.from_bytes(sk, "big") < order:
                    continue
            return bytes(sk), self.provider.signature_public_key(scheme, bytes(sk))

    # -- HPKE ------------------------------------------------------------------
    def derive_key_pair(self, secret: bytes) -> tuple[bytes, bytes]:
        """KEM.DeriveKeyPair (RFC 9180 §7.1.3) -> (private, public)."""
        return self.hpke.derive_key_pair(secret)

    def generate_hpke_key_pair(self) -> tuple[bytes, bytes]:
        return self.hpke.generate_key_pair()

    def hpke_public_key(self, private_key: bytes) -> bytes:
        return self.hpke.public_key(private_key)

    @property
    def hpke_public_key_length(self) -> int:
        """``Npk`` of the suite's KEM: the size of every HPKE public key in the tree."""
        return self.params.kem.n_pk

    def check_hpke_public_key(self, key: bytes, what: str) -> None:
        """An HPKE public key is the suite KEM's SerializePublicKey output, ``Npk``
        bytes (RFC 9420 §5.1.1, RFC 9180 §7.1, draft-ietf-hpke-pq): a key of
        another length is refused where it arrives, not when someone encrypts to it."""
        n = self.params.kem.n_pk
        if len(key) != n:
            raise PublicKeyError(
                f"{what} must be a {self.params.kem.name} public key of {n} bytes, "
                f"got {len(key)} (§5.1.1)")

    @property
    def kem_output_length(self) -> int:
        """``Nenc`` of the suite's KEM: the size of every HPKE ciphertext's kem_output."""
        return self.params.kem.n_enc

    def encrypt_with_label(
        self, public_key: bytes, label: bytes, context: bytes, plaintext: bytes
    ) -> tuple[bytes, bytes]:
        """EncryptWithLabel (RFC 9420 §5.1.3) -> (kem_output, ciphertext)."""
        return self.hpke.seal_base(public_key, _label_struct(label, context), b"", plaintext)

    def decrypt_with_label(
        self, private_key: bytes, label: bytes, context: bytes, kem_output: bytes, ciphertext: bytes
    ) -> bytes:
        """DecryptWithLabel (RFC 9420 §5.1.3); raises DecryptionError."""
        return self.hpke.open_base(
            kem_output, private_key, _label_struct(label, context), b"", ciphertext
        )
