"""A member's signing identity and KeyPackage generation (RFC 9420 §5.3, §10)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..codec import Reader, Writer
from ..credentials import Credential, CredentialType
from ..crypto import SUITES, CipherSuite
from ..extensions import Extension, ExtensionType
from ..key_package import KeyPackage
from ..leaf_node import (
    DEFAULT_LIFETIME,
    PROTOCOL_VERSION_MLS10,
    Capabilities,
    LeafNode,
    LeafNodeSource,
    Lifetime,
)
from ..signature_key import check_signature_key
from .config import system_clock


def default_capabilities(credential_types: Sequence[int] = (CredentialType.BASIC,)) -> Capabilities:
    """What this implementation supports: mls10, every registered suite, the
    last_resort extension, basic credentials."""
    return Capabilities(
        versions=(PROTOCOL_VERSION_MLS10,),
        cipher_suites=tuple(sorted(SUITES)),
        extensions=(ExtensionType.LAST_RESORT,),
        proposals=(),
        credentials=tuple(credential_types),
    )


@dataclass(frozen=True)
class Signer:
    """A credential with its signature key pair."""

    credential: Credential
    signature_priv: bytes
    signature_pub: bytes

    @classmethod
    def generate(cls, cs: CipherSuite, identity: bytes) -> Signer:
        priv, pub = cs.generate_signature_key_pair()
        return cls(Credential.basic(identity), priv, pub)

    def encode(self, w: Writer) -> None:
        self.credential.encode(w)
        w.opaque(self.signature_priv)
        w.opaque(self.signature_pub)

    @classmethod
    def decode(cls, r: Reader) -> Signer:
        return cls(Credential.decode(r), r.opaque(), r.opaque())


@dataclass(frozen=True)
class KeyPackageBundle:
    """A KeyPackage and the private keys needed to join with it."""

    key_package: KeyPackage
    init_priv: bytes
    encryption_priv: bytes
    signature_priv: bytes

    def encode(self, w: Writer) -> None:
        self.key_package.encode(w)
        w.opaque(self.init_priv)
        w.opaque(self.encryption_priv)
        w.opaque(self.signature_priv)

    @classmethod
    def decode(cls, r: Reader) -> KeyPackageBundle:
        return cls(KeyPackage.decode(r), r.opaque(), r.opaque(), r.opaque())


def make_leaf_node(
    cs: CipherSuite, signer: Signer, encryption_key: bytes, *, lifetime: Lifetime,
    capabilities: Capabilities | None = None, extensions: tuple[Extension, ...] = (),
) -> LeafNode:
    """An unsigned key_package leaf node; refuses a signature key that is not
    in the suite's encoding (§5.1.1)."""
    check_signature_key(cs, signer.signature_pub)
    return LeafNode(
        encryption_key=encryption_key,
        signature_key=signer.signature_pub,
        credential=signer.credential,
        capabilities=capabilities or default_capabilities(),
        leaf_node_source=LeafNodeSource.KEY_PACKAGE,
        lifetime=lifetime,
        extensions=extensions,
    )


def create_key_package(
    cs: CipherSuite, signer: Signer, *, now: int | None = None,
    lifetime: int = DEFAULT_LIFETIME, last_resort: bool = False,
    capabilities: Capabilities | None = None, leaf_extensions: tuple[Extension, ...] = (),
) -> KeyPackageBundle:
    """Fresh init and encryption keys in a signed KeyPackage (§10), valid for
    ``lifetime`` seconds from ``now`` (default: the system clock), back-dated by
    an hour of clock skew (§7.2)."""
    window = Lifetime.starting(system_clock() if now is None else now, lifetime)
    init_priv, init_pub = cs.generate_hpke_key_pair()
    enc_priv, enc_pub = cs.generate_hpke_key_pair()
    leaf = make_leaf_node(cs, signer, enc_pub, capabilities=capabilities, lifetime=window,
                          extensions=leaf_extensions).signed(cs, signer.signature_priv)
    exts = (Extension(ExtensionType.LAST_RESORT, b""),) if last_resort else ()
    kp = KeyPackage(PROTOCOL_VERSION_MLS10, cs.id, init_pub, leaf, exts).signed(
        cs, signer.signature_priv)
    return KeyPackageBundle(kp, init_priv, enc_priv, signer.signature_priv)
