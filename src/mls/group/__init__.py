"""The MLS group state machine (RFC 9420 §11-§14)."""

from __future__ import annotations

from .config import GroupConfig
from .group import Group
from .identity import KeyPackageBundle, Signer, create_key_package, default_capabilities
from .join import ExternalJoin, join_external, join_from_welcome
from .results import (
    ApplicationMessage,
    CommitMessage,
    CommitOutput,
    OwnMessage,
    Processed,
    ProposalMessage,
)
from .state import GroupState, Status

__all__ = [
    "ApplicationMessage",
    "CommitMessage",
    "CommitOutput",
    "ExternalJoin",
    "Group",
    "GroupConfig",
    "GroupState",
    "KeyPackageBundle",
    "OwnMessage",
    "Processed",
    "ProposalMessage",
    "Signer",
    "Status",
    "create_key_package",
    "default_capabilities",
    "join_external",
    "join_from_welcome",
]
