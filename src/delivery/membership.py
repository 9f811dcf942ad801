"""Membership tracking from commits, without decrypting anything.

The server keeps, per group, which device holds which leaf. When a commit
(always a PublicMessage) is accepted for the group's current epoch, its
proposals are applied in RFC 9420 §12.3 order: Updates (no membership change),
then Removes (the leaf becomes blank and its device leaves), then Adds in the
order they appear, each into the leftmost blank leaf or appended at the right
edge. An external commit's joiner then takes the leftmost blank leaf.

"Leftmost blank leaf, else append" is the same as "the smallest leaf index no
current member holds": if there is a blank leaf inside the tree the smallest
free index is it; otherwise it is the index one past the rightmost member,
which is where an append lands (after RFC 9420 §7.7 truncation of trailing
blank leaves, which the server therefore need not track).

This module is pure: it plans the change from the current members and the
commit's summary; :mod:`delivery.groups` applies the plan in the posting
transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from delivery.errors import BadRequest
from delivery.mlsparse import ProposalSummary


@dataclass(frozen=True, slots=True)
class Member:
    """A current member: its membership row, device, leaf and user."""

    row_id: int
    device_pk: int
    leaf_index: int
    user_pk: int = 0
    retired: bool = False  # the device was retired: any member may remove its leaf


@dataclass(frozen=True, slots=True)
class Joiner:
    """A device the commit brings in, and the leaf it gets."""

    identity: bytes
    leaf_index: int
    key_package_ref: bytes | None


@dataclass(slots=True)
class CommitPlan:
    """What an accepted commit does to the membership."""

    removed: list[Member] = field(default_factory=list)
    added: list[Joiner] = field(default_factory=list)
    # For an external commit: the leaf the committing device takes.
    external_joiner_leaf: int | None = None


def parse_identity(identity: bytes) -> tuple[str, str]:
    """Split a credential identity ``b"<user_id>/<device_id>"``."""
    try:
        text = identity.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(
            "an Add proposal's credential identity is not UTF-8", code="invalid_identity"
        ) from None
    user_id, sep, device_id = text.partition("/")
    if not sep or not user_id or not device_id or "/" in device_id:
        raise BadRequest(
            f"an Add proposal's credential identity {text!r} is not '<user_id>/<device_id>'",
            code="invalid_identity",
        )
    return user_id, device_id


def _smallest_free(occupied: set[int]) -> int:
    leaf = 0
    while leaf in occupied:
        leaf += 1
    return leaf


def plan_commit(
    sender_type: str | None,
    proposals: Sequence[ProposalSummary],
    members: Iterable[Member],
    committer_device_pk: int,
    committer_user_pk: int = 0,
) -> CommitPlan:
    """Plan the membership change of an accepted commit.

    ``proposals`` are all the commit's proposals in the commit's order, those
    included by reference already resolved. Raises :class:`BadRequest` for a
    commit the server cannot apply (a Remove of a blank leaf, an Add of a present
    device, ...): members would reject it too, and the server's view must never
    drift from theirs. An external commit may remove one leaf of its own user
    (the device it replaces).
    """
    current = {m.leaf_index: m for m in members}
    external = sender_type == "new_member_commit"
    committer = next((m for m in current.values() if m.device_pk == committer_device_pk), None)
    plan = CommitPlan()

    for p in proposals:
        if p.proposal_type != "remove":
            continue
        if p.removed_leaf is None:
            raise BadRequest("a Remove proposal without a leaf index", code="invalid_mls")
        target = current.get(p.removed_leaf)
        if target is None:
            raise BadRequest(
                f"Remove of leaf {p.removed_leaf}, which is blank", code="invalid_commit"
            )
        if target in plan.removed:
            raise BadRequest(
                f"leaf {p.removed_leaf} is removed twice", code="invalid_commit"
            )
        if not external and target.device_pk == committer_device_pk:
            raise BadRequest("a commit must not remove its committer", code="invalid_commit")
        if external and target.user_pk != committer_user_pk:
            raise BadRequest(
                "an external commit may only remove a leaf of the joiner's own user "
                "(a resync after a wipe or a device change)",
                code="invalid_commit",
            )
        plan.removed.append(target)

    occupied = set(current) - {m.leaf_index for m in plan.removed}
    seen: set[bytes] = set()
    for p in proposals:
        if p.proposal_type != "add":
            continue
        if external:
            raise BadRequest("an external commit must not add members", code="invalid_commit")
        if p.added_identity is None:
            raise BadRequest("an Add proposal without a credential identity", code="invalid_mls")
        if p.added_identity in seen:
            raise BadRequest(
                f"{p.added_identity.decode(errors='replace')!r} is added twice",
                code="invalid_commit",
            )
        seen.add(p.added_identity)
        leaf = _smallest_free(occupied)
        occupied.add(leaf)
        plan.added.append(Joiner(p.added_identity, leaf, p.added_key_package_ref))

    if external:
        if committer is not None and committer not in plan.removed:
            raise BadRequest(
                "this device is already a member; an external commit to rejoin must remove "
                "its old leaf",
                code="invalid_commit",
            )
        plan.external_joiner_leaf = _smallest_free(occupied)
    return plan
