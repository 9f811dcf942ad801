"""What a conversation shows: its lines and their delivery state, as plain data.

Everything here is JSON-friendly (``dataclasses.asdict``), so the UI can get it
across a worker boundary unchanged.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from typing import Any

# Delivery states of a line (issue 11 §3): ours are "sending" until the delivery
# service accepted them, then "sent", or "failed" with a reason (retry possible);
# everyone else's are "received".
SENDING, SENT, FAILED, RECEIVED = "sending", "sent", "failed", "received"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def gid_str(group_id: bytes) -> str:
    """A group id as the API spells it: base64url without padding."""
    return base64.urlsafe_b64encode(group_id).rstrip(b"=").decode()


def gid_bytes(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def user_of(identity: str) -> str:
    """``"alice/3f2a"`` -> ``"alice"``."""
    return identity.rpartition("/")[0]


def device_of(identity: str) -> str:
    """``"alice/3f2a"`` -> ``"3f2a"``."""
    return identity.rpartition("/")[2]


@dataclass
class ChatMessage:
    """One line of a conversation: a text or a system event.

    ``sender`` is the sending device's identity ``"user/device"`` ("" for system
    lines) and ``user`` its user: a line is attributed to the user whichever of
    their devices sent it. ``own`` is true for lines of our own user, from this
    device or another one. ``index`` is the line's place in the conversation's
    history (its record in the vault); ``seq`` its place in the delivery
    service's stream once known. ``reason`` says why a line is "failed".
    """

    local_id: str
    sender: str
    text: str
    ts: float
    kind: str = "text"  # "text" | "system"
    own: bool = False
    state: str = RECEIVED  # "sending" | "sent" | "failed" | "received"
    seq: int | None = None
    epoch: int = 0
    index: int = -1
    user: str = ""
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ChatMessage:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in obj.items() if k in known})


@dataclass
class Conversation:
    """A conversation and the window of its history that is loaded.

    ``messages`` holds the lines ``first .. count-1`` (the latest page, plus the
    pages loaded with :meth:`Messenger.load_older`); ``count`` is the number of
    lines in the whole history.
    """

    group_id: bytes
    name: str
    messages: list[ChatMessage] = field(default_factory=list)
    unread: int = 0
    active: bool = True
    count: int = 0
    first: int = 0
    # Set when this device joined a conversation that existed before it: MLS gives
    # a new device none of the earlier messages.
    joined_late: bool = False
    # After a crash, lines up to this stream position are already in the history
    # (written after the last saved state): re-processing them adds nothing.
    replay_until: int = 0

    @property
    def id(self) -> str:
        return gid_str(self.group_id)

    @property
    def has_older(self) -> bool:
        return self.first > 0

    def find(self, local_id: str) -> ChatMessage | None:
        return next((m for m in self.messages if m.local_id == local_id), None)

    def summary(self) -> dict[str, Any]:
        """Plain data for a conversation list (no messages)."""
        return {"conversation": self.id, "name": self.name, "unread": self.unread,
                "active": self.active, "count": self.count, "has_older": self.has_older,
                "joined_late": self.joined_late}

    def to_json(self) -> dict[str, Any]:
        return {**self.summary(), "group_id": self.id,
                "messages": [m.to_json() for m in self.messages]}
