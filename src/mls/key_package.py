"""KeyPackages (RFC 9420 §10)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .codec import Reader, Struct, Writer
from .crypto import CipherSuite
from .extensions import Extension, read_extensions, write_extensions
from .leaf_node import LeafNode


@dataclass(frozen=True, slots=True)
class KeyPackage(Struct):
    """``KeyPackage``: a client's signed offer to be added to groups."""

    version: int
    cipher_suite: int
    init_key: bytes
    leaf_node: LeafNode
    extensions: tuple[Extension, ...] = ()
    signature: bytes = b""

    def _encode_tbs(self, w: Writer) -> None:
        w.u16(self.version)
        w.u16(self.cipher_suite)
        w.opaque(self.init_key)
        self.leaf_node.encode(w)
        write_extensions(w, self.extensions)

    def encode(self, w: Writer) -> None:
        self._encode_tbs(w)
        w.opaque(self.signature)

    @classmethod
    def decode(cls, r: Reader) -> KeyPackage:
        return cls(r.u16(), r.u16(), r.opaque(), LeafNode.decode(r), read_extensions(r),
                   r.opaque())

    def tbs(self) -> bytes:
        w = Writer()
        self._encode_tbs(w)
        return w.getvalue()

    def signed(self, cs: CipherSuite, signature_priv: bytes) -> KeyPackage:
        return replace(self, signature=cs.sign_with_label(signature_priv, b"KeyPackageTBS",
                                                          self.tbs()))

    def verify_signature(self, cs: CipherSuite) -> bool:
        return cs.verify_with_label(self.leaf_node.signature_key, b"KeyPackageTBS", self.tbs(),
                                    self.signature)

    def ref(self, cs: CipherSuite) -> bytes:
        """``KeyPackageRef`` = RefHash("MLS 1.0 KeyPackage Reference", KeyPackage) (§5.2)."""
        return cs.ref_hash(b"MLS 1.0 KeyPackage Reference", self.serialize())
