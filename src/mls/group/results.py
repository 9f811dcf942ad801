"""What :meth:`Group.process` returns: one type per kind of message."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..credentials import Credential
from ..framing import Sender
from ..proposals import Proposal


@dataclass(frozen=True)
class ApplicationMessage:
    """Decrypted application data from ``sender`` (a member leaf)."""

    sender: int
    credential: Credential
    data: bytes
    authenticated_data: bytes
    epoch: int


@dataclass(frozen=True)
class ProposalMessage:
    """A proposal stored for a later commit (by reference)."""

    sender: Sender
    credential: Credential | None
    proposal: Proposal
    ref: bytes
    own: bool = False


@dataclass(frozen=True)
class CommitMessage:
    """A commit that moved the group to ``epoch``."""

    sender: Sender
    credential: Credential | None
    epoch: int
    added: list[int] = field(default_factory=list)  # new leaf indices
    removed: list[tuple[int, Credential]] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)  # leaves with new keys (incl. committer)
    own: bool = False
    removed_self: bool = False
    reinit: bool = False


@dataclass(frozen=True)
class OwnMessage:
    """One of our own messages echoed by the delivery service (already handled)."""

    epoch: int
    content_type: str


Processed = ApplicationMessage | ProposalMessage | CommitMessage | OwnMessage


@dataclass(frozen=True)
class CommitOutput:
    """What creating a commit produces; the commit is pending until merged.
    (A GroupInfo for external joins comes from :meth:`Group.group_info` once merged.)"""

    commit: bytes
    welcome: bytes | None
    added: list[int] = field(default_factory=list)
