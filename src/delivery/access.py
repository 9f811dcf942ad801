"""Who may see a group, and who may join it by external commit.

A device may join a group by external commit (RFC 9420 §12.4.3.2) when its
*user* holds a seat in the group, or holds an invitation:

* A user holds a seat while one of their devices is a member, and keeps it when
  the leaves of their retired devices are removed (a wiped or replaced device
  does not make its user leave): only a removal of an active device, or a
  user's voluntary leave, ends the seat.
* An invitation is created by a member for one user; it expires, can be
  revoked, is consumed by the user's first accepted join, and lapses when no
  device of the inviting user is a member any more.

Everyone else learns nothing: a group they may not see answers exactly like a
group that does not exist (404 ``unknown_group``), so group ids cannot be
probed for existence or epoch. A device that was a member (and so knows the
group) gets 403 instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from delivery.encoding import encode_group_id
from delivery.errors import Forbidden, NotFound
from delivery.store import Conn

# SQL fragments over a group pk {g} and a user pk {u}.
SEATED = """(
    EXISTS (SELECT 1 FROM mls_group_members e
            WHERE e.group_id = {g} AND e.user_id = {u} AND e.removed_seq IS NULL)
    OR COALESCE((SELECT bool_and(e.removed_retired) FROM mls_group_members e
                 WHERE e.group_id = {g} AND e.user_id = {u}
                   AND e.removed_seq = (SELECT max(f.removed_seq) FROM mls_group_members f
                                        WHERE f.group_id = {g} AND f.user_id = {u})), false))"""
ACTIVE_INVITATION = """
    i.revoked_at IS NULL AND i.consumed_at IS NULL AND i.expires_at > now()
    AND EXISTS (SELECT 1 FROM mls_group_members c
                WHERE c.group_id = i.group_id AND c.user_id = i.created_by_user
                  AND c.removed_seq IS NULL)"""

# Composed of the constant fragments above only.
_ACCESS = f"""
    SELECT
      EXISTS (SELECT 1 FROM mls_group_members m
              WHERE m.group_id = $1 AND m.device_id = $2 AND m.removed_seq IS NULL) AS member,
      EXISTS (SELECT 1 FROM mls_group_members m
              WHERE m.group_id = $1 AND m.device_id = $2) AS ever_member,
      {SEATED.format(g="$1", u="$3")} AS seated,
      (SELECT i.id FROM mls_invitations i
       WHERE i.group_id = $1 AND i.user_id = $3 AND {ACTIVE_INVITATION}
       ORDER BY i.id LIMIT 1) AS invitation
"""  # noqa: S608


@dataclass(frozen=True, slots=True)
class Access:
    """What one device may do in one group."""

    member: bool  # the device holds a leaf now
    ever_member: bool  # the device held a leaf at some point (it knows the group)
    seated: bool  # its user holds a seat (see the module docstring)
    invitation: int | None  # an active invitation of its user (row id)

    @property
    def may_join(self) -> bool:
        """May fetch the GroupInfo and join by external commit."""
        return self.member or self.seated or self.invitation is not None

    @property
    def knows_group(self) -> bool:
        """May be told that the group exists."""
        return self.ever_member or self.may_join


async def access_of(conn: Conn, group_pk: int, device_pk: int, user_pk: int) -> Access:
    """The device's :class:`Access` to the group."""
    row = await conn.fetchrow(_ACCESS, group_pk, device_pk, user_pk)
    assert row is not None
    return Access(row["member"], row["ever_member"], row["seated"], row["invitation"])


def unknown_group(group_id: bytes) -> NotFound:
    """The answer for a group that does not exist, or that the caller may not see."""
    return NotFound(f"no group {encode_group_id(group_id)}", code="unknown_group")


def refuse_non_member(access: Access, group_id: bytes) -> Forbidden | NotFound:
    """The refusal for a device that is not a member: 403 if it may know the group
    exists, else the same 404 as for a group that does not exist."""
    if access.knows_group:
        return Forbidden("this device is not a member of the group", code="not_a_member")
    return unknown_group(group_id)
