"""Read queries shared by the HTTP API and the WebSocket push, and the event format.

What a device may read of a group is bounded by its membership rows
("windows"): a message is visible when, for some window, ``seq > joined_seq``,
``epoch >= joined_epoch`` and (``removed_seq`` is NULL or ``seq <= removed_seq``).
So a device added by a commit sees from the next message on (never older
epochs), and a removed device still sees the commit that removed it.

These queries serve every push and page of messages, so they are SQL text on
the asyncpg driver (see ``Database.raw_transaction``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg

from delivery.encoding import b64encode, encode_group_id


@dataclass(frozen=True, slots=True)
class Window:
    """One membership period of a device in a group."""

    joined_seq: int
    joined_epoch: int
    removed_seq: int | None

    def admits(self, seq: int, epoch: int) -> bool:
        """Whether a message at ``seq``/``epoch`` falls in this period."""
        return (
            seq > self.joined_seq
            and epoch >= self.joined_epoch
            and (self.removed_seq is None or seq <= self.removed_seq)
        )


def visible(windows: list[Window], seq: int, epoch: int) -> bool:
    """Whether any window admits the message."""
    return any(w.admits(seq, epoch) for w in windows)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message of a group's ordered stream, as pushed and paged."""

    group_pk: int
    group_id: bytes
    seq: int
    epoch: int
    content_type: str
    sender: str | None
    data: bytes
    created_at: str

    def event(self) -> dict[str, Any]:
        """The JSON event (``mls-message``) for the WebSocket and the paged API."""
        return {
            "type": "mls-message",
            "group_id": encode_group_id(self.group_id),
            "seq": self.seq,
            "epoch": self.epoch,
            "content_type": self.content_type,
            "sender": self.sender,
            "data": b64encode(self.data),
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class StoredWelcome:
    """A Welcome in a device's inbox."""

    welcome_seq: int
    group_pk: int
    group_id: bytes
    epoch: int
    sender: str | None
    data: bytes
    created_at: str

    def event(self) -> dict[str, Any]:
        """The JSON event (``mls-welcome``)."""
        return {
            "type": "mls-welcome",
            "welcome_seq": self.welcome_seq,
            "group_id": encode_group_id(self.group_id),
            "epoch": self.epoch,
            "sender": self.sender,
            "data": b64encode(self.data),
            "created_at": self.created_at,
        }


# The stubs make asyncpg.Connection generic; at run time it is not.
Conn: TypeAlias = "asyncpg.Connection[Any]"

# A page of a group's messages after a cursor, bounded by count and by bytes (rows are
# taken while the bytes before them are under the bound, so always at least one): a
# read never holds more in memory. {visible} narrows it to what one device may read.
_PAGE = """
    SELECT * FROM (
        SELECT m.group_id AS group_pk, g.group_id, m.seq, m.epoch, m.content_type, m.data,
               m.created_at, u.username, d.device_id,
               sum(octet_length(m.data)) OVER (ORDER BY m.seq) - octet_length(m.data) AS before
        FROM mls_messages m
        JOIN mls_groups g ON g.id = m.group_id
        LEFT JOIN devices d ON d.id = m.sender_device
        LEFT JOIN users u ON u.id = d.user_id
        WHERE m.group_id = $1 AND m.seq > $2 {visible}
        ORDER BY m.seq LIMIT $3
    ) page WHERE before < $4 ORDER BY seq
"""
_MESSAGES_AFTER = _PAGE.format(visible="")
_VISIBLE_MESSAGES_AFTER = _PAGE.format(visible="""
          AND EXISTS (
            SELECT 1 FROM mls_group_members w
            WHERE w.group_id = $1 AND w.device_id = $5
              AND m.seq > w.joined_seq AND m.epoch >= w.joined_epoch
              AND (w.removed_seq IS NULL OR m.seq <= w.removed_seq))""")
_WINDOWS = """
    SELECT device_id, joined_seq, joined_epoch, removed_seq FROM mls_group_members
    WHERE group_id = $1 AND device_id = ANY($2::bigint[]) ORDER BY id
"""
_GROUPS_OF_DEVICE = """
    SELECT DISTINCT g.id, g.group_id FROM mls_group_members m
    JOIN mls_groups g ON g.id = m.group_id
    WHERE m.device_id = $1
      AND ((m.removed_seq IS NULL AND m.welcomed) OR g.group_id = ANY($2::bytea[]))
      AND NOT EXISTS (SELECT 1 FROM mls_welcome_inbox i
                      WHERE i.device_id = $1 AND i.group_id = g.id AND i.inbox_seq > $3)
"""
_WELCOMES_AFTER = """
    SELECT * FROM (
        SELECT i.inbox_seq, i.group_id AS group_pk, g.group_id, m.epoch, m.data, i.created_at,
               u.username, d.device_id,
               sum(octet_length(m.data)) OVER (ORDER BY i.inbox_seq) - octet_length(m.data)
                 AS before
        FROM mls_welcome_inbox i
        JOIN mls_messages m ON m.id = i.message_id
        JOIN mls_groups g ON g.id = i.group_id
        LEFT JOIN devices d ON d.id = m.sender_device
        LEFT JOIN users u ON u.id = d.user_id
        WHERE i.device_id = $1 AND i.inbox_seq > $2
        ORDER BY i.inbox_seq LIMIT $3
    ) page WHERE before < $4 ORDER BY inbox_seq
"""


def _to_message(row: asyncpg.Record) -> StoredMessage:
    sender = None if row["device_id"] is None else f"{row['username']}/{row['device_id']}"
    return StoredMessage(
        group_pk=row["group_pk"],
        group_id=row["group_id"],
        seq=row["seq"],
        epoch=row["epoch"],
        content_type=row["content_type"],
        sender=sender,
        data=row["data"],
        created_at=row["created_at"].isoformat(),
    )


async def messages_after(
    conn: Conn, group_pk: int, after: int, limit: int, max_bytes: int
) -> list[StoredMessage]:
    """The group's messages with ``seq > after``, in order, unfiltered (for the hub): at
    most ``limit``, and no more after ``max_bytes`` of data (but at least one)."""
    rows = await conn.fetch(_MESSAGES_AFTER, group_pk, after, limit, max_bytes)
    return [_to_message(r) for r in rows]


async def visible_messages_after(
    conn: Conn, group_pk: int, device_pk: int, after: int, limit: int, max_bytes: int
) -> list[StoredMessage]:
    """The messages of the group after ``after`` that ``device_pk`` may read, in order
    (bounded like :func:`messages_after`)."""
    rows = await conn.fetch(_VISIBLE_MESSAGES_AFTER, group_pk, after, limit, max_bytes,
                            device_pk)
    return [_to_message(r) for r in rows]


async def windows_of_devices(
    conn: Conn, group_pk: int, device_pks: list[int]
) -> dict[int, list[Window]]:
    """Every membership period of each device in the group, oldest first."""
    out: dict[int, list[Window]] = {d: [] for d in device_pks}
    for r in await conn.fetch(_WINDOWS, group_pk, device_pks):
        out[r["device_id"]].append(Window(r["joined_seq"], r["joined_epoch"], r["removed_seq"]))
    return out


async def windows_of(conn: Conn, group_pk: int, device_pk: int) -> list[Window]:
    """Every membership period of ``device_pk`` in the group, oldest first."""
    return (await windows_of_devices(conn, group_pk, [device_pk]))[device_pk]


async def groups_of_device(
    conn: Conn, device_pk: int, also: list[bytes], welcome_after: int
) -> dict[int, bytes]:
    """Groups to stream to a device: those it is a member of and was welcomed to (or
    created, or joined by external commit), plus those in ``also`` (groups the client
    already knows) it ever was in; but not a group whose Welcome (after
    ``welcome_after``) the stream has yet to push: that one is subscribed when its
    Welcome goes out, so its messages never overtake its Welcome."""
    rows = await conn.fetch(_GROUPS_OF_DEVICE, device_pk, also, welcome_after)
    return {r["id"]: r["group_id"] for r in rows}


async def welcomes_after(
    conn: Conn, device_pk: int, after: int, limit: int, max_bytes: int = 2**62
) -> list[StoredWelcome]:
    """The device's Welcomes with ``welcome_seq > after``, in order (bounded like
    :func:`messages_after`)."""
    return [
        StoredWelcome(
            welcome_seq=r["inbox_seq"],
            group_pk=r["group_pk"],
            group_id=r["group_id"],
            epoch=r["epoch"],
            sender=None if r["device_id"] is None else f"{r['username']}/{r['device_id']}",
            data=r["data"],
            created_at=r["created_at"].isoformat(),
        )
        for r in await conn.fetch(_WELCOMES_AFTER, device_pk, after, limit, max_bytes)
    ]
