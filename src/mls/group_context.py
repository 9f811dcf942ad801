"""The GroupContext (RFC 9420 §8.1)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .codec import Reader, Struct, Writer, keep_encoding
from .extensions import Extension, read_extensions, write_extensions


@dataclass(frozen=True, slots=True)
class GroupContext(Struct):
    """Summary of the group's state that every member agrees on per epoch."""

    version: int
    cipher_suite: int
    group_id: bytes
    epoch: int
    tree_hash: bytes
    confirmed_transcript_hash: bytes
    extensions: tuple[Extension, ...] = ()
    # The encoding, made once: every message signed or verified in the epoch
    # includes it (FramedContentTBS, §6.1). ``replace`` starts a copy without it.
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def encode(self, w: Writer) -> None:
        data = self._encoded
        w.write(data if data is not None else keep_encoding(self, "_encoded", self._write))

    def _write(self, w: Writer) -> None:
        w.u16(self.version)
        w.u16(self.cipher_suite)
        w.opaque(self.group_id)
        w.u64(self.epoch)
        w.opaque(self.tree_hash)
        w.opaque(self.confirmed_transcript_hash)
        write_extensions(w, self.extensions)

    @classmethod
    def decode(cls, r: Reader) -> GroupContext:
        return cls(r.u16(), r.u16(), r.opaque(), r.u64(), r.opaque(), r.opaque(),
                   read_extensions(r))
