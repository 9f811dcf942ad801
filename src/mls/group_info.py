"""GroupInfo (RFC 9420 §12.4.3)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .codec import Reader, Struct, Writer, keep_encoding
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
    # The GroupInfoTBS as received: a joiner checks the signature over it
    # without re-encoding the tree in the extensions. Not compared; ``replace``
    # starts a copy without it.
    _tbs: bytes | None = field(default=None, init=False, repr=False, compare=False)

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
        start = r.position
        ctx, extensions = GroupContext.decode(r), read_extensions(r)
        tag, signer = r.opaque(), r.u32()
        # Every field has a single (minimal) encoding: these bytes are the TBS.
        tbs = r.since(start)
        gi = cls(ctx, extensions, tag, signer, r.opaque())
        object.__setattr__(gi, "_tbs", tbs)
        return gi

    def tbs(self) -> bytes:
        """``GroupInfoTBS`` (§12.4.3), encoded once."""
        t = self._tbs
        return t if t is not None else keep_encoding(self, "_tbs", self._encode_tbs)

    def signed(self, cs: CipherSuite, signature_priv: bytes) -> GroupInfo:
        return replace(self, signature=cs.sign_with_label(signature_priv, b"GroupInfoTBS",
                                                          self.tbs()))

    def verify(self, cs: CipherSuite, signature_pub: bytes) -> bool:
        return cs.verify_with_label(signature_pub, b"GroupInfoTBS", self.tbs(), self.signature)
