"""Per-group policy knobs (none of them changes the wire protocol)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..credentials import Credential
from ..leaf_node import DEFAULT_LIFETIME, MAX_LIFETIME
from ..secret_tree import RatchetConfig


def system_clock() -> int:
    """The default clock: seconds since the Unix epoch. Inject another through
    :class:`GroupConfig` (or ``now=``) for deterministic runs."""
    return int(time.time())


def accept_any_credential(credential: Credential, signature_key: bytes) -> bool:
    """Default credential check: the application's Authentication Service
    (RFC 9420 §5.3.1) is consulted by the layer above, not here."""
    return True


def same_credential(old: Credential, new: Credential) -> bool:
    """Default resync rule (§12.4.3.2): an external commit may only remove a leaf
    holding the same credential as the joiner's new leaf."""
    return old == new


def config_now(config: GroupConfig) -> int:
    """The time new leaves start at."""
    return (config.clock or system_clock)()


@dataclass(frozen=True)
class GroupConfig:
    """Policy for one group member.

    * ``ratchet``: out-of-order tolerance and maximum forward distance (§9.2).
    * ``max_past_epochs``: how many previous epochs keep their application
      secrets so late messages still decrypt (0 = strict forward secrecy).
    * ``padding_block``: PrivateMessage content is padded with zeros to a
      multiple of this many bytes, hiding exact lengths (§6.3.1).
    * ``handshake_as_private``: send proposals and commits as PrivateMessage
      instead of PublicMessage.
    * ``ratchet_tree_extension``: put the tree in Welcome's GroupInfo.
    * ``clock``: seconds since the Unix epoch, for the lifetimes of the leaves
      this member creates (§7.2) and the check that received KeyPackages are
      current (§7.3); ``None`` skips that check (new leaves then use the system clock).
    * ``lifetime``: how long the leaves this member creates are valid (§7.2).
    * ``max_lifetime``: the longest lifetime accepted in received leaves (§7.2);
      ``None`` accepts any (only for old test vectors).
    * ``same_client``: whether an external commit's new credential may replace
      the removed leaf's credential (resync, §12.4.3.2).
    * ``psks``: external pre-shared keys by id (§8.4).
    * ``credential_validator``: the Authentication Service hook (§5.3.1).
    * ``max_resumption_psks``: how many epochs keep their resumption PSK.
    * ``resumption_psks``: resumption PSKs of *other* groups by (group_id,
      epoch), for the first commit of a reinitialized or branched group (§11).
    """

    ratchet: RatchetConfig = field(default_factory=RatchetConfig)
    max_past_epochs: int = 3
    padding_block: int = 32
    handshake_as_private: bool = False
    ratchet_tree_extension: bool = True
    clock: Callable[[], int] | None = system_clock
    lifetime: int = DEFAULT_LIFETIME
    max_lifetime: int | None = MAX_LIFETIME
    same_client: Callable[[Credential, Credential], bool] = same_credential
    psks: Mapping[bytes, bytes] = field(default_factory=dict)
    credential_validator: Callable[[Credential, bytes], bool] = accept_any_credential
    max_resumption_psks: int = 8
    resumption_psks: Mapping[tuple[bytes, int], bytes] = field(default_factory=dict)
