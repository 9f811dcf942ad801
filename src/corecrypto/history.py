"""How the messenger lays its state out in the store (the vault in the browser).

Storage scales with the work, not with the history (issue 12 §3):

``account``
    JSON: user, device, session token, Welcome cursor, the conversations, and
    ``layout`` (the version of this layout).
``identity``
    The device's signature key and unused KeyPackage keys (CoreCrypto without
    groups): written when KeyPackages are made.
``trust``
    Verification state of contacts.
``chat:<group id>``
    One conversation: a JSON header (name, unread count, number of lines, stream
    cursor, lines not yet delivered, whether an external join awaits the delivery
    service) followed by the MLS group state. Written once per processed batch
    of incoming messages, per epoch change, and before a message leaves when the
    saved state no longer reserves its sender generation
    (:meth:`CoreCrypto.save_group_state`).
``msg:<group id>:<n>``
    Line ``n`` of the conversation (0, 1, 2, ...), written when it is added and
    when its delivery state changes. An undelivered line of ours also holds its
    ciphertext, so that a retry re-sends the identical bytes (the delivery service
    acknowledges a repeat as a duplicate: never two copies).

So a message sent or received costs one line record plus, amortised, a share of
one ``chat`` record, whatever the length of the history; history is read a page
at a time from the end.

Crash safety without a write of the header per line: lines are written before
the header that counts them, so on load the lines beyond the saved count are
found by probing ``msg:<gid>:<count>``, ``<count+1>``, ... The saved cursor is
that of the saved MLS state, so messages after it are processed again; the lines
they would add are already there (up to :attr:`Conversation.replay_until`) and
are not added twice.

Every record is AAD-bound to its name by the vault (:mod:`corecrypto.vault.core`):
a line moved to another index or conversation fails authentication. Record names
are not secret; they reveal the number of lines per conversation, as the
previous layout's record sizes did.

Layout 1 (before this module) kept each conversation's whole history in one
``conv:<gid>`` record and the group state in ``group:<gid>``, both rewritten per
message; :func:`migrate` converts it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from .chat import (
    FAILED,
    SENDING,
    ChatMessage,
    Conversation,
    b64,
    gid_bytes,
    gid_str,
    unb64,
    user_of,
)
from .transport import Store
from .vault.interfaces import TamperedRecordError

LAYOUT = 2
PAGE_SIZE = 50
MAX_PROBE = 100_000  # a safety bound: a conversation never has this many unsaved lines

ACCOUNT = "account"
IDENTITY = "identity"
TRUST = "trust"


class HistoryError(ValueError):
    """A record of the messenger's layout is malformed."""


def chat_name(gid: bytes) -> str:
    return f"chat:{gid_str(gid)}"


def line_name(gid: bytes, index: int) -> str:
    return f"msg:{gid_str(gid)}:{index}"


@dataclass
class ChatRecord:
    """The ``chat:<gid>`` record: a conversation's header and its MLS state."""

    name: str
    unread: int = 0
    active: bool = True
    count: int = 0
    cursor: int = 0
    outbox: list[int] = field(default_factory=list)  # lines that were not delivered
    joining: bool = False  # the state is an external join the DS has not confirmed
    joined_late: bool = False
    state: bytes = b""

    def encode(self) -> bytes:
        head = json.dumps({"v": 1, "name": self.name, "unread": self.unread,
                           "active": self.active, "count": self.count, "cursor": self.cursor,
                           "outbox": self.outbox, "joining": self.joining,
                           "joined_late": self.joined_late},
                          separators=(",", ":")).encode()
        return len(head).to_bytes(4, "big") + head + self.state

    @classmethod
    def decode(cls, data: bytes) -> ChatRecord:
        try:
            n = int.from_bytes(data[:4], "big")
            head = json.loads(data[4:4 + n])
            if head.get("v") != 1:
                raise HistoryError(f"unsupported conversation record version {head.get('v')}")
            return cls(str(head["name"]), int(head["unread"]), bool(head["active"]),
                       int(head["count"]), int(head["cursor"]),
                       [int(i) for i in head["outbox"]], bool(head["joining"]),
                       bool(head.get("joined_late", False)), bytes(data[4 + n:]))
        except (ValueError, KeyError, TypeError) as e:
            raise HistoryError(f"malformed conversation record: {e}") from None


def encode_line(msg: ChatMessage, ciphertext: bytes | None = None) -> bytes:
    obj = msg.to_json()
    if ciphertext is not None:
        obj["ct"] = b64(ciphertext)
    return json.dumps(obj, separators=(",", ":")).encode()


def decode_line(data: bytes) -> tuple[ChatMessage, bytes | None]:
    try:
        obj = json.loads(data)
        ct = obj.pop("ct", None)
        return ChatMessage.from_json(obj), unb64(ct) if ct is not None else None
    except (ValueError, TypeError) as e:
        raise HistoryError(f"malformed message record: {e}") from None


class History:
    """Reads and writes the records above through a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def write_line(self, gid: bytes, msg: ChatMessage,
                         ciphertext: bytes | None = None) -> None:
        if msg.index < 0:
            raise HistoryError("a line needs its index before it is stored")
        await self.store.put(line_name(gid, msg.index), encode_line(msg, ciphertext))

    async def read_line(self, gid: bytes, index: int) -> tuple[ChatMessage, bytes | None] | None:
        data = await self.store.get(line_name(gid, index))
        return None if data is None else decode_line(data)

    async def read_lines(self, gid: bytes, start: int, end: int
                         ) -> list[tuple[ChatMessage, bytes | None]]:
        """Lines ``start .. end-1`` (missing ones are skipped; one that fails its
        integrity check is replaced by a system line saying so, rather than making
        the whole conversation unreadable)."""

        async def one(i: int) -> tuple[ChatMessage, bytes | None] | None:
            try:
                return await self.read_line(gid, i)
            except (TamperedRecordError, HistoryError):
                return ChatMessage(f"damaged-{i}", "", "A stored line failed its integrity "
                                   "check and is not shown.", 0.0, kind="system",
                                   index=i), None

        found = await asyncio.gather(*(one(i) for i in range(max(0, start), end)))
        return [f for f in found if f is not None]

    async def probe(self, gid: bytes, count: int) -> list[tuple[ChatMessage, bytes | None]]:
        """Lines stored after the header that counted ``count`` was saved."""
        out = []
        for i in range(count, count + MAX_PROBE):
            line = await self.read_line(gid, i)
            if line is None:
                break
            out.append(line)
        return out

    async def write_chat(self, gid: bytes, record: ChatRecord) -> None:
        await self.store.put(chat_name(gid), record.encode())

    async def read_chat(self, gid: bytes) -> ChatRecord | None:
        data = await self.store.get(chat_name(gid))
        return None if data is None else ChatRecord.decode(data)

    async def delete_chat_state(self, gid: bytes, conv: Conversation, cursor: int) -> None:
        """Keep the conversation, drop its MLS state (we left or were removed)."""
        await self.write_chat(gid, ChatRecord(conv.name, conv.unread, conv.active,
                                              conv.count, cursor, joined_late=conv.joined_late))


async def migrate(store: Store, account: dict[str, Any]) -> dict[str, Any]:
    """Convert layout 1 to this layout; returns the new account record.

    Idempotent and crash-safe: the old records are only deleted after the new
    account record (which marks the layout) is written, and a rerun converts
    from the old records again."""
    history = History(store)
    for g in account.get("groups", []):
        gid = gid_bytes(g)
        old_conv = await store.get(f"conv:{g}")
        old_group = await store.get(f"group:{g}")
        conv_obj: dict[str, Any] = json.loads(old_conv) if old_conv is not None else {}
        lines = conv_obj.get("messages", [])
        for i, obj in enumerate(lines):
            msg = ChatMessage.from_json(obj)
            msg.index = i
            msg.user = user_of(msg.sender)
            if msg.state == SENDING:
                # Layout 1 kept no ciphertext: whether it left is unknown; a retry
                # encrypts it again.
                msg.state, msg.reason = FAILED, "interrupted before the server confirmed it"
            await history.write_line(gid, msg)
        record = ChatRecord(str(conv_obj.get("name", "Conversation")),
                            int(conv_obj.get("unread", 0)), bool(conv_obj.get("active", True)),
                            len(lines))
        if old_group is not None:
            n = int.from_bytes(old_group[:4], "big")
            record.cursor = int(json.loads(old_group[4:4 + n])["cursor"])
            record.state = bytes(old_group[4 + n:])
        await history.write_chat(gid, record)
    account = {**account, "layout": LAYOUT}
    await store.put(ACCOUNT, json.dumps(account).encode())
    for g in account.get("groups", []):
        await store.delete(f"conv:{g}")
        await store.delete(f"group:{g}")
    return account
