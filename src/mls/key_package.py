"""KeyPackages (RFC 9420 §10)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .codec import Reader, Struct, Writer, keep_encoding
from .crypto import CipherSuite
from .errors import SignatureError, ValidationError
from .extensions import (
    Extension,
    ExtensionType,
    check_unique_extensions,
    read_extensions,
    write_extensions,
)
from .leaf_node import MAX_LIFETIME, PROTOCOL_VERSION_MLS10, LeafNode, LeafNodeSource
from .signature_key import check_signature_key


@dataclass(frozen=True, slots=True)
class KeyPackage(Struct):
    """``KeyPackage``: a client's signed offer to be added to groups."""

    version: int
    cipher_suite: int
    init_key: bytes
    leaf_node: LeafNode
    extensions: tuple[Extension, ...] = ()
    signature: bytes = b""
    # The KeyPackageTBS encoding, made once: it goes into the signature check,
    # the KeyPackageRef and every Welcome or commit carrying the KeyPackage.
    # Not compared; ``replace`` starts a copy without it.
    _tbs: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def _encode_tbs(self, w: Writer) -> None:
        w.u16(self.version)
        w.u16(self.cipher_suite)
        w.opaque(self.init_key)
        self.leaf_node.encode(w)
        write_extensions(w, self.extensions)

    def encode(self, w: Writer) -> None:
        w.write(self.tbs())
        w.opaque(self.signature)

    @classmethod
    def decode(cls, r: Reader) -> KeyPackage:
        start = r.position
        version, suite, init_key = r.u16(), r.u16(), r.opaque()
        leaf, extensions = LeafNode.decode(r), read_extensions(r)
        # Every field has a single (minimal) encoding: these bytes are the TBS.
        tbs = r.since(start)
        kp = cls(version, suite, init_key, leaf, extensions, r.opaque())
        object.__setattr__(kp, "_tbs", tbs)
        return kp

    def tbs(self) -> bytes:
        """``KeyPackageTBS`` (§10), encoded once."""
        t = self._tbs
        return t if t is not None else keep_encoding(self, "_tbs", self._encode_tbs)

    def signed(self, cs: CipherSuite, signature_priv: bytes) -> KeyPackage:
        tbs = self.tbs()
        kp = replace(self, signature=cs.sign_with_label(signature_priv, b"KeyPackageTBS", tbs))
        object.__setattr__(kp, "_tbs", tbs)  # the signature is not part of the TBS
        return kp

    def verify_signature(self, cs: CipherSuite) -> bool:
        return cs.verify_with_label(self.leaf_node.signature_key, b"KeyPackageTBS", self.tbs(),
                                    self.signature)

    def ref(self, cs: CipherSuite) -> bytes:
        """``KeyPackageRef`` = RefHash("MLS 1.0 KeyPackage Reference", KeyPackage) (§5.2)."""
        return cs.ref_hash(b"MLS 1.0 KeyPackage Reference", self.serialize())


def check_key_package(cs: CipherSuite, kp: KeyPackage, now: int | None,
                      max_lifetime: int | None = MAX_LIFETIME) -> None:
    """The group-independent KeyPackage rules of RFC 9420 §10.1 and §7.3.

    ``now`` (seconds since the epoch) enables the check that the lifetime covers
    the current time, ``max_lifetime`` the bound on its length (§7.2); group rules
    (required capabilities, duplicate keys) are checked when adding.
    """
    leaf = kp.leaf_node
    if kp.version != PROTOCOL_VERSION_MLS10:
        raise ValidationError(f"KeyPackage version {kp.version} is not mls10 (§10.1)")
    if kp.cipher_suite != cs.id:
        raise ValidationError(
            f"KeyPackage cipher suite {kp.cipher_suite} differs from the group's {cs.id} (§10.1)")
    if leaf.leaf_node_source != LeafNodeSource.KEY_PACKAGE or leaf.lifetime is None:
        raise ValidationError("KeyPackage leaf_node_source must be key_package (§10.1)")
    if kp.init_key == leaf.encryption_key:
        raise ValidationError("KeyPackage init_key equals the leaf encryption_key (§10.1)")
    check_signature_key(cs, leaf.signature_key)
    cs.check_hpke_public_key(kp.init_key, "KeyPackage init_key")
    cs.check_hpke_public_key(leaf.encryption_key, "KeyPackage encryption_key")
    if not kp.verify_signature(cs):
        raise SignatureError("KeyPackage signature is invalid (§10.1)")
    if not leaf.verify(cs):
        raise SignatureError("KeyPackage leaf node signature is invalid (§7.3)")
    leaf.lifetime.check(now, max_lifetime, "KeyPackage")
    check_unique_extensions(kp.extensions, "KeyPackage")
    check_leaf_capabilities(leaf)


def check_leaf_capabilities(leaf: LeafNode) -> None:
    """A leaf supports mls10, its own credential type, and lists every
    non-default extension it carries (RFC 9420 §7.2, §7.3)."""
    caps = leaf.capabilities
    check_unique_extensions(leaf.extensions, "LeafNode")
    if PROTOCOL_VERSION_MLS10 not in caps.versions:
        raise ValidationError("leaf capabilities do not include mls10 (§7.2)")
    if leaf.credential.credential_type not in caps.credentials:
        raise ValidationError("leaf capabilities do not include its own credential type (§7.2)")
    for e in leaf.extensions:
        listed = e.extension_type in caps.extensions
        if not listed and e.extension_type not in ExtensionType.DEFAULT:
            raise ValidationError(
                f"leaf extension 0x{e.extension_type:04x} is not listed in its capabilities (§7.3)")
