"""GroupInfo (RFC 9420 §12.4.3)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .codec import Reader, Struct, Writer
from .crypto import CipherSuite
from .extensions import Extension, read_extensions, write_extensions
from .group_context import GroupContext


@dataclass(frozen=True, slots=True)
class GroupInfo(Struct):
    """Signed group state handed to joiners (in a Welcome or for external joins)."""

    group_context: GroupContext
    extensions: tuple[Extension, ...]
    confirmation_tag: bytes
    signer: int
    signature: bytes = b""

    def _encode_tbs(self, w: Writer) -> None:
        self.group_context.encode(w)
        write_extensions(w, self.extensions)
        w.opaque(self.confirmation_tag)
        w.u32(self.signer)

    def encode(self, w: Writer) -> None:
        self._encode_tbs(w)
        w.opaque(self.signature)

    @classmethod
    def decode(cls, r: Reader) -> GroupInfo:
        return cls(GroupContext.decode(r), read_extensions(r), r.opaque(), r.u32(), r.opaque())

    def tbs(self) -> bytes:
        w = Writer()
        self._encode_tbs(w)
        return w.getvalue()

    def signed(self, cs: CipherSuite, signature_priv: bytes) -> GroupInfo:
        return replace(self, signature=cs.sign_with_label(signature_priv, b"GroupInfoTBS",
                                                          self.tbs()))

    def verify(self, cs: CipherSuite, signature_pub: bytes) -> bool:
        return cs.verify_with_label(signature_pub, b"GroupInfoTBS", self.tbs(), self.signature)
