"""Message vectors: every structure decodes and re-encodes byte for byte
(RFC 9420 §6, §7, §10, §12)."""

from __future__ import annotations

from collections.abc import Callable

from ..codec import Reader, Struct, Writer
from ..commit import Commit
from ..crypto import CryptoProvider
from ..errors import DecodeError
from ..framing import ContentType, WireFormat
from ..message import MLSMessage
from ..nodes import decode_tree_nodes, encode_tree_nodes
from ..proposals import (
    Add,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    ReInit,
    Remove,
    Update,
)
from ..public_message import PublicMessage
from ..welcome import GroupSecrets
from .registry import Case, VectorMismatch
from .util import expect, expect_rejected, h


def _roundtrip_struct(name: str, cls: type[Struct], data: bytes) -> object:
    obj = cls.deserialize(data)
    expect(f"{name} re-encoding", obj.serialize(), data)
    return obj


def _mls_message(name: str, data: bytes, wire_format: WireFormat) -> MLSMessage:
    msg = MLSMessage.deserialize(data)
    expect(f"{name} wire_format", msg.wire_format, wire_format)
    expect(f"{name} re-encoding", msg.serialize(), data)
    return msg


def _ratchet_tree(data: bytes) -> None:
    r = Reader(data)
    nodes = decode_tree_nodes(r)
    r.finish("ratchet_tree")
    w = Writer()
    w.write(encode_tree_nodes(nodes))
    expect("ratchet_tree re-encoding", w.getvalue(), data)


def _public(name: str, data: bytes, content_type: ContentType) -> None:
    msg = _mls_message(name, data, WireFormat.PUBLIC_MESSAGE)
    assert isinstance(msg.body, PublicMessage)
    expect(f"{name} content_type", msg.body.content.content_type, content_type)


STRUCTS: dict[str, type[Struct]] = {
    "group_secrets": GroupSecrets,
    "add_proposal": Add,
    "update_proposal": Update,
    "remove_proposal": Remove,
    "pre_shared_key_proposal": PreSharedKey,
    "re_init_proposal": ReInit,
    "external_init_proposal": ExternalInit,
    "group_context_extensions_proposal": GroupContextExtensions,
    "commit": Commit,
}

MESSAGES: dict[str, Callable[[str, bytes], object]] = {
    "mls_welcome": lambda n, d: _mls_message(n, d, WireFormat.WELCOME),
    "mls_group_info": lambda n, d: _mls_message(n, d, WireFormat.GROUP_INFO),
    "mls_key_package": lambda n, d: _mls_message(n, d, WireFormat.KEY_PACKAGE),
    "public_message_application": lambda n, d: _public(n, d, ContentType.APPLICATION),
    "public_message_proposal": lambda n, d: _public(n, d, ContentType.PROPOSAL),
    "public_message_commit": lambda n, d: _public(n, d, ContentType.COMMIT),
    "private_message": lambda n, d: _mls_message(n, d, WireFormat.PRIVATE_MESSAGE),
    "ratchet_tree": lambda n, d: _ratchet_tree(d),
}


def check(case: Case, provider: CryptoProvider) -> None:
    """Every field of the format must be present: a null or missing one fails."""
    for name in (*STRUCTS, *MESSAGES):
        if case.get(name) is None:
            raise VectorMismatch(f"{name} is missing or null")
    for name, cls in STRUCTS.items():
        data = h(case[name])
        _roundtrip_struct(name, cls, data)
        # Corrupted variant: one byte short.
        expect_rejected(f"{name} truncated", DecodeError,
                        lambda c=cls, d=data: c.deserialize(d[:-1]))  # type: ignore[misc]
    for name, fn in MESSAGES.items():
        fn(name, h(case[name]))
