"""The TLS codec rejects every malformation with DecodeError and nothing else
(RFC 9420 §2.1)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mls.codec import MAX_VARINT, Reader, Writer, encode_varint
from mls.commit import Commit
from mls.credentials import Credential
from mls.errors import DecodeError
from mls.framing import WireFormat
from mls.group_info import GroupInfo
from mls.key_package import KeyPackage
from mls.leaf_node import LeafNode
from mls.message import MLSMessage
from mls.ratchet_tree import RatchetTree
from mls.welcome import GroupSecrets, Welcome

from ..conftest import examples, vectors_dir

MESSAGES = json.loads((vectors_dir() / "messages.json").read_text())
SAMPLES = [bytes.fromhex(MESSAGES[i][k]) for i in range(0, 300, 37)
           for k in ("mls_welcome", "mls_group_info", "mls_key_package", "public_message_commit",
                     "public_message_proposal", "private_message")]


def decode_varint(data: bytes) -> int:
    r = Reader(data)
    v = r.varint()
    r.finish()
    return v


@pytest.mark.parametrize("value", [0, 1, 63, 64, 16383, 16384, MAX_VARINT])
def test_varint_round_trip(value: int) -> None:
    assert decode_varint(encode_varint(value)) == value


@pytest.mark.parametrize("encoded", ["4001", "403f", "80000001", "80003fff"])
def test_non_minimal_varint_is_rejected(encoded: str) -> None:
    with pytest.raises(DecodeError, match="non-minimal"):
        decode_varint(bytes.fromhex(encoded))


def test_eight_byte_varint_prefix_is_invalid() -> None:
    with pytest.raises(DecodeError, match="0b11"):
        decode_varint(bytes.fromhex("c000000000000001"))


def test_varint_above_30_bits_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="30-bit"):
        encode_varint(MAX_VARINT + 1)


@pytest.mark.parametrize("data", ["", "40", "80ff"])
def test_truncated_varint(data: str) -> None:
    with pytest.raises(DecodeError, match="truncated"):
        decode_varint(bytes.fromhex(data))


def test_overlong_vector_length_allocates_nothing() -> None:
    # A 1 GiB length claim over 3 bytes of input fails before any allocation.
    with pytest.raises(DecodeError, match="truncated"):
        Reader(bytes.fromhex("bfffffff") + b"abc").opaque()


def test_trailing_bytes_are_rejected() -> None:
    data = SAMPLES[0] + b"\x00"
    with pytest.raises(DecodeError, match="trailing"):
        MLSMessage.deserialize(data)


def test_invalid_optional_and_boolean_octets() -> None:
    with pytest.raises(DecodeError, match="optional"):
        Reader(b"\x02").optional(Reader.u8)
    with pytest.raises(DecodeError, match="boolean"):
        Reader(b"\x07").boolean()


def test_unknown_enum_values_are_rejected() -> None:
    with pytest.raises(DecodeError, match="protocol version"):
        MLSMessage.deserialize(b"\x00\x02\x00\x01")
    with pytest.raises(DecodeError, match="wire_format"):
        MLSMessage.deserialize(b"\x00\x01\x00\x09")
    with pytest.raises(DecodeError, match="credential type"):
        Credential.deserialize(b"\x00\x07\x00")
    # A PrivateMessage with content_type 9.
    w = Writer()
    w.u16(1)
    w.u16(WireFormat.PRIVATE_MESSAGE)
    w.opaque(b"g")
    w.u64(0)
    w.u8(9)
    with pytest.raises(DecodeError, match="content_type"):
        MLSMessage.deserialize(w.getvalue())


def test_unknown_proposal_type_in_commit() -> None:
    w = Writer()
    inner = Writer()
    inner.u8(1)  # ProposalOrRef: by value
    inner.u16(0x0A0A)
    w.opaque(inner.getvalue())
    w.u8(0)
    with pytest.raises(DecodeError, match="proposal type"):
        Commit.deserialize(w.getvalue())


def test_non_bytes_input_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        MLSMessage.deserialize("not bytes")  # type: ignore[arg-type]


def test_every_truncation_of_real_messages_fails_cleanly() -> None:
    for data in SAMPLES[:6]:
        for cut in range(len(data)):
            with pytest.raises(DecodeError):
                MLSMessage.deserialize(data[:cut])


STRUCTS = [MLSMessage, KeyPackage, LeafNode, GroupInfo, Welcome, GroupSecrets, Commit]


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), st.sampled_from(STRUCTS))
def test_random_bytes_only_raise_decode_error(data: bytes, cls: type) -> None:
    try:
        obj = cls.deserialize(data)
    except DecodeError:
        return
    assert obj.serialize() == data  # whatever decodes re-encodes identically


@settings(max_examples=examples(600), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.integers(min_value=0), st.integers(min_value=0, max_value=255),
       st.booleans())
def test_mutated_messages_only_raise_decode_error(data: bytes, pos: int, byte: int,
                                                  insert: bool) -> None:
    i = pos % len(data)
    mutated = data[:i] + bytes([byte]) + (data[i:] if insert else data[i + 1:])
    with contextlib.suppress(DecodeError):
        MLSMessage.deserialize(mutated)


def test_ratchet_tree_shape_errors(tmp_path: Path) -> None:
    from mls.crypto import CipherSuite, default_provider
    from mls.errors import ValidationError

    cs = CipherSuite(1, default_provider())
    with pytest.raises(DecodeError):
        RatchetTree.decode(cs, b"\x00")
    with pytest.raises(ValidationError, match="blank"):
        RatchetTree.decode(cs, b"\x01\x00")
    del tmp_path
