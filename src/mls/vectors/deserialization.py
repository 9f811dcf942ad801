"""Variable-length vector header vectors (RFC 9420 §2.1.2)."""

from __future__ import annotations

from ..codec import Reader, encode_varint
from ..crypto import CryptoProvider
from .registry import Case
from .util import expect, h


def check(case: Case, provider: CryptoProvider) -> None:
    header = h(case["vlbytes_header"])
    r = Reader(header)
    length = r.varint()
    r.finish("vlbytes header")
    expect("length", length, case["length"])
    expect("re-encoded header", encode_varint(length), header)
