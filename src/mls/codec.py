"""TLS presentation-language codec (RFC 9420 §2.1, RFC 8446 §3).

MLS encodes every variable-length vector with the QUIC-style variable-length
integer length prefix of RFC 9420 §2.1.2 (1, 2 or 4 bytes; the 8-byte form is
invalid, and the shortest form MUST be used). Fixed-width integers are big
endian. ``optional<T>`` is a presence octet (0 or 1) followed by T.

:class:`Reader` never reads past its buffer and never allocates more than the
input holds: every length is checked against the remaining bytes before it is
used, so a hostile length costs nothing. Any malformation raises
:class:`~mls.errors.DecodeError` and only that.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Protocol, Self, TypeVar

from .errors import DecodeError

T = TypeVar("T")

#: Largest length a MLS variable-length integer can carry (30 bits).
MAX_VARINT = (1 << 30) - 1


class Reader:
    """A cursor over immutable bytes that decodes TLS structures."""

    __slots__ = ("_buf", "_end", "_pos")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self._buf = data
        self._pos = start
        self._end = len(data) if end is None else end

    @property
    def position(self) -> int:
        return self._pos

    def remaining(self) -> int:
        return self._end - self._pos

    def at_end(self) -> bool:
        return self._pos >= self._end

    def finish(self, what: str = "structure") -> None:
        """Raise unless every byte was consumed (no trailing data allowed)."""
        if self._pos != self._end:
            raise DecodeError(f"{self._end - self._pos} trailing byte(s) after {what}")

    def read(self, n: int) -> bytes:
        if n < 0 or n > self._end - self._pos:
            raise DecodeError(
                f"truncated input: need {n} byte(s), {self._end - self._pos} left"
            )
        start = self._pos
        self._pos = start + n
        return self._buf[start : self._pos]

    def since(self, start: int) -> bytes:
        """The bytes consumed from ``start`` (an earlier :attr:`position`) up to now."""
        return self._buf[start : self._pos]

    def u8(self) -> int:
        if self._pos >= self._end:
            raise DecodeError("truncated input: need 1 byte(s), 0 left")
        v = self._buf[self._pos]
        self._pos += 1
        return v

    def u16(self) -> int:
        p = self._pos
        if p + 2 > self._end:
            raise DecodeError(f"truncated input: need 2 byte(s), {self._end - p} left")
        self._pos = p + 2
        buf = self._buf
        return (buf[p] << 8) | buf[p + 1]

    def u32(self) -> int:
        return int.from_bytes(self.read(4), "big")

    def u64(self) -> int:
        return int.from_bytes(self.read(8), "big")

    def u16_vector(self) -> tuple[int, ...]:
        """``uint16 items<V>`` in one pass (capabilities lists, §7.2)."""
        data = self.opaque()
        if len(data) & 1:
            raise DecodeError("truncated input: need 2 byte(s), 1 left")
        return struct.unpack(f">{len(data) >> 1}H", data)

    def varint(self) -> int:
        """Decode a RFC 9420 §2.1.2 variable-length integer (minimal form only)."""
        p = self._pos
        if p >= self._end:
            raise DecodeError("truncated input: need 1 byte(s), 0 left")
        first = self._buf[p]
        self._pos = p + 1
        prefix = first >> 6
        if prefix == 0:
            return first & 0x3F
        if prefix == 1:
            v = ((first & 0x3F) << 8) | self.u8()
            if v < 0x40:
                raise DecodeError("non-minimal variable-length integer encoding")
            return v
        if prefix == 2:
            v = ((first & 0x3F) << 24) | int.from_bytes(self.read(3), "big")
            if v < 0x4000:
                raise DecodeError("non-minimal variable-length integer encoding")
            return v
        raise DecodeError("invalid variable-length integer prefix 0b11")

    def opaque(self) -> bytes:
        """``opaque data<V>``: a varint length followed by that many bytes."""
        p = self._pos
        if p < self._end and self._buf[p] < 0x40:  # one-byte length: inline
            n = self._buf[p]
            start = p + 1
            if n > self._end - start:
                raise DecodeError(
                    f"truncated input: need {n} byte(s), {self._end - start} left")
            self._pos = start + n
            return self._buf[start : start + n]
        return self.read(self.varint())

    def sub(self) -> Reader:
        """Consume a varint-length-prefixed region and return a reader over it."""
        n = self.varint()
        if n > self._end - self._pos:
            left = self._end - self._pos
            raise DecodeError(f"truncated input: vector of {n} byte(s), {left} left")
        r = Reader(self._buf, self._pos, self._pos + n)
        self._pos += n
        return r

    def vector(self, item: Callable[[Reader], T]) -> list[T]:
        """``T items<V>``: decode items until the length-prefixed region is used up."""
        r = self.sub()
        out: list[T] = []
        while r._pos < r._end:
            out.append(item(r))
        return out

    def optional(self, item: Callable[[Reader], T]) -> T | None:
        """``optional<T>``: a presence octet, then T when present."""
        flag = self.u8()
        if flag == 0:
            return None
        if flag == 1:
            return item(self)
        raise DecodeError(f"invalid optional presence octet {flag}")

    def boolean(self) -> bool:
        flag = self.u8()
        if flag > 1:
            raise DecodeError(f"invalid boolean octet {flag}")
        return flag == 1

    def string(self) -> str:
        try:
            return self.opaque().decode("utf-8")
        except UnicodeDecodeError as e:
            raise DecodeError("invalid UTF-8 in string") from e


class Writer:
    """Accumulates a TLS encoding."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def getvalue(self) -> bytes:
        return bytes(self._buf)

    def write(self, data: bytes) -> None:
        self._buf += data

    def u8(self, v: int) -> None:
        self._buf.append(v)

    def u16(self, v: int) -> None:
        self._buf += v.to_bytes(2, "big")

    def u32(self, v: int) -> None:
        self._buf += v.to_bytes(4, "big")

    def u64(self, v: int) -> None:
        self._buf += v.to_bytes(8, "big")

    def varint(self, v: int) -> None:
        self._buf += encode_varint(v)

    def opaque(self, data: bytes | bytearray) -> None:
        n = len(data)
        if n < 0x40:  # one-byte length, the common case: no call
            self._buf.append(n)
        else:
            self._buf += encode_varint(n)
        self._buf += data

    def vector(self, items: Iterable[T], item: Callable[[Writer, T], None]) -> None:
        inner = Writer()
        for x in items:
            item(inner, x)
        self.opaque(inner._buf)

    def optional(self, value: T | None, item: Callable[[Writer, T], None]) -> None:
        if value is None:
            self._buf.append(0)
        else:
            self._buf.append(1)
            item(self, value)

    def boolean(self, v: bool) -> None:
        self._buf.append(1 if v else 0)

    def string(self, s: str) -> None:
        self.opaque(s.encode("utf-8"))


def encode_varint(v: int) -> bytes:
    """Encode ``v`` in the shortest RFC 9420 §2.1.2 form."""
    if v < 0:
        raise ValueError("variable-length integers are unsigned")
    if v < 0x40:
        return bytes((v,))
    if v < 0x4000:
        return (v | 0x4000).to_bytes(2, "big")
    if v <= MAX_VARINT:
        return (v | 0x80000000).to_bytes(4, "big")
    raise ValueError(f"length {v} exceeds the 30-bit MLS varint range")


def opaque(data: bytes) -> bytes:
    """``opaque<V>`` encoding of ``data`` as bytes."""
    return encode_varint(len(data)) + data


class Encodable(Protocol):
    def encode(self, w: Writer) -> None: ...


class Struct:
    """Mixin for RFC structures: ``encode``/``decode`` plus whole-buffer helpers.

    Subclasses implement ``encode(w)`` and the classmethod ``decode(r)``.
    """

    __slots__ = ()

    def encode(self, w: Writer) -> None:
        raise NotImplementedError

    @classmethod
    def decode(cls, r: Reader) -> Self:
        raise NotImplementedError

    def serialize(self) -> bytes:
        w = Writer()
        self.encode(w)
        return w.getvalue()

    @classmethod
    def deserialize(cls, data: bytes) -> Self:
        """Decode exactly one ``cls`` from ``data``; trailing bytes are an error."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError(f"expected bytes, got {type(data).__name__}")
        r = Reader(bytes(data))
        try:
            value = cls.decode(r)
        except RecursionError as e:  # defence in depth: no RFC 9420 structure nests this deep
            raise DecodeError("structure nested too deeply") from e
        r.finish(cls.__name__)
        return value


def encode_list(w: Writer, items: Iterable[Encodable]) -> None:
    """Encode ``T items<V>`` for structures with an ``encode`` method."""
    inner = Writer()
    for x in items:
        x.encode(inner)
    w.opaque(inner.getvalue())


def keep_encoding(obj: object, slot: str, write: Callable[[Writer], None]) -> bytes:
    """What ``write`` writes, made once and kept in ``slot`` of the frozen ``obj``.

    For encodings that go into several hashes and signatures (a TBS, a tree hash
    input, the GroupContext of every FramedContentTBS): the slot is a non-compared
    dataclass field, so ``replace`` starts a copy without it. Callers test the slot
    first; this is the miss."""
    w = Writer()
    write(w)
    data = w.getvalue()
    object.__setattr__(obj, slot, data)
    return data


def write_opaque(w: Writer, data: bytes) -> None:
    """Item writer for ``opaque x<V>`` elements of vectors."""
    w.opaque(data)


def read_opaque(r: Reader) -> bytes:
    """Item reader for ``opaque x<V>`` elements of vectors."""
    return r.opaque()


def write_u16(w: Writer, v: int) -> None:
    w.u16(v)


def read_u16(r: Reader) -> int:
    return r.u16()


def write_u32(w: Writer, v: int) -> None:
    w.u32(v)


def read_u32(r: Reader) -> int:
    return r.u32()


__all__ = [
    "MAX_VARINT",
    "Reader",
    "Struct",
    "Writer",
    "encode_list",
    "encode_varint",
    "opaque",
    "read_opaque",
    "read_u16",
    "read_u32",
    "write_opaque",
    "write_u16",
    "write_u32",
]
