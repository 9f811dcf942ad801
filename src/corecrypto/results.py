"""What :meth:`CoreCrypto.process_message` reports, with identities as strings."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ApplicationReceived:
    """A decrypted application message."""

    sender: str
    plaintext: bytes
    epoch: int
    kind: str = "application"


@dataclass(frozen=True)
class ProposalReceived:
    """A proposal kept for the next commit."""

    sender: str | None
    proposal: str  # "add", "remove", "update", ...
    target: str | None = None  # the identity an add/remove is about
    kind: str = "proposal"


@dataclass(frozen=True)
class CommitReceived:
    """A commit that moved the group into ``epoch``."""

    sender: str | None
    epoch: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    self_removed: bool = False
    own: bool = False
    external: bool = False  # an external commit: ``sender`` joined by it (§12.4.3.2)
    kind: str = "commit"


@dataclass(frozen=True)
class OwnMessageEcho:
    """One of our own messages coming back from the delivery service."""

    content_type: str
    epoch: int
    kind: str = "own"


Received = ApplicationReceived | ProposalReceived | CommitReceived | OwnMessageEcho
