"""Who should be in a group: users as sets of devices (issue 11 §2).

Pure functions over identities ``"user/device"``, so the rules are easy to test:
which devices of a user are missing from a group, which leaves belong to retired
devices, which member commits a removal nobody else is making.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .chat import device_of, user_of


@dataclass
class AddOutcome:
    """What adding one user did: the devices added, those already present, those
    that could not be added (no KeyPackage on the server), or why nothing was."""

    user: str
    added: list[str] = field(default_factory=list)  # device ids
    present: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    # Devices that publish no KeyPackage in the group's cipher suite (e.g. an app
    # without the post-quantum suites): they cannot be added to this conversation.
    unsupported: list[str] = field(default_factory=list)
    invited: bool = False  # none could be added now: their devices may join by themselves
    error: str = ""

    def describe(self, *, me: str) -> str:
        you = self.user == me
        if self.error:
            return f"{self.user} could not be added: {self.error}."
        parts = []
        if self.added:
            n = len(self.added)
            if you:
                parts.append(f"Added your other device{'s' if n > 1 else ''} "
                             f"({', '.join(self.added)}).")
            elif self.present:
                parts.append(f"Added {n} more device{'s' if n > 1 else ''} of {self.user} "
                             f"({', '.join(self.added)}).")
            else:
                parts.append(f"Added {self.user}"
                             + (f" ({n} devices)." if n > 1 else "."))
        if self.unavailable:
            owner = "Your" if you else f"{self.user}'s"
            plural = "s" if len(self.unavailable) > 1 else ""
            parts.append(f"{owner} device{plural} {', '.join(self.unavailable)} could not be "
                         "added (no KeyPackage available; it can join by itself when online).")
        if self.unsupported:
            owner = "Your" if you else f"{self.user}'s"
            plural = "s" if len(self.unsupported) > 1 else ""
            parts.append(f"{owner} device{plural} {', '.join(self.unsupported)} cannot be "
                         "added: no KeyPackage in this conversation's cipher suite.")
        if self.invited and not self.added:
            parts.append(f"{self.user} has no device that can be added right now; they are "
                         "invited and join when one of their devices comes online.")
        if not parts:
            if you:
                return ""
            n = len(self.present)
            parts.append(f"{self.user} is already in this conversation"
                         + (f" on all {n} devices." if n > 1 else "."))
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AddReport:
    """The result of :meth:`Messenger.add_members`, one outcome per user."""

    outcomes: list[AddOutcome]
    me: str

    @property
    def added(self) -> list[str]:
        """Identities added."""
        return [f"{o.user}/{d}" for o in self.outcomes for d in o.added]

    @property
    def failed(self) -> bool:
        """Nothing was added and something could not be."""
        return not self.added and any(o.error or (o.unavailable and not o.invited)
                                      or o.unsupported for o in self.outcomes)

    @property
    def summary(self) -> str:
        return " ".join(t for o in self.outcomes if (t := o.describe(me=self.me)))

    def to_json(self) -> dict[str, Any]:
        return {"added": self.added, "summary": self.summary,
                "outcomes": [o.to_json() for o in self.outcomes]}


def devices_of(members: Iterable[str], user: str) -> set[str]:
    """Device ids of ``user`` among the member identities."""
    return {device_of(i) for i in members if user_of(i) == user}


def missing_devices(members: Iterable[str], user: str, active: Iterable[str],
                    *, exclude: str = "") -> tuple[list[str], list[str]]:
    """(device ids of ``user`` that are active but not members, those already members),
    leaving out ``exclude`` (our own device when adding our own user)."""
    present = devices_of(members, user)
    active_set = set(active) - {exclude}
    return sorted(active_set - present), sorted(active_set & present)


def retired_members(members: Iterable[str], retired: Iterable[str]) -> list[str]:
    """Member identities of retired devices (``retired`` is identities)."""
    gone = set(retired)
    return [i for i in members if i in gone]


def designated_committer(members: Sequence[str], retired: Iterable[str]) -> str | None:
    """The member that commits a removal nobody asked a specific member for (a
    leave proposal, a retired device): the lowest leaf that is not retired.
    ``members`` is in leaf order."""
    gone = set(retired)
    return next((i for i in members if i not in gone), None)
