"""Joining by external commit: GroupInfo download, joinable groups, invitations.

Who may join is decided in :mod:`delivery.access`; the external commit itself is
verified when it is posted (:mod:`delivery.posting`). A new or wiped device
asks ``GET /api/mls/groups/joinable`` at start and after reconnecting (and on a
``joinable`` push), fetches each group's GroupInfo and posts its external commit
with the GroupInfo of the epoch it creates.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from delivery.access import ACTIVE_INVITATION, SEATED, access_of, refuse_non_member, unknown_group
from delivery.auth import current_device
from delivery.encoding import b64encode, decode_group_id, encode_group_id
from delivery.errors import Conflict, NotFound
from delivery.principal import DevicePrincipal
from delivery.security import normalize_username
from delivery.services import Services, get_services
from delivery.store import Conn

router = APIRouter(prefix="/api/mls", tags=["joining"])
ServicesDep = Annotated[Services, Depends(get_services)]
DeviceDep = Annotated[DevicePrincipal, Depends(current_device)]

MAX_ACTIVE_INVITATIONS = 100

_GROUP = "SELECT id, cipher_suite, epoch FROM mls_groups WHERE group_id = $1"
_GROUP_INFO = "SELECT epoch, data FROM mls_group_infos WHERE group_id = $1"
# Composed of the constant fragments of delivery.access only.
_JOINABLE = f"""
    SELECT g.group_id, g.cipher_suite, g.epoch,
           CASE WHEN {SEATED.format(g="g.id", u="$1")} THEN 'user_member'
                ELSE 'invitation' END AS reason
    FROM mls_groups g
    JOIN mls_group_infos gi ON gi.group_id = g.id AND gi.epoch = g.epoch
    -- A device joins groups of its registered suite, and of every suite it offers
    -- (has published KeyPackages in; delivery.suites).
    WHERE (g.cipher_suite = $3
           OR g.cipher_suite = ANY(SELECT unnest(d.cipher_suites) FROM devices d
                                   WHERE d.id = $2))
      AND g.id IN (SELECT m.group_id FROM mls_group_members m WHERE m.user_id = $1
                   UNION
                   SELECT i.group_id FROM mls_invitations i WHERE i.user_id = $1)
      AND NOT EXISTS (SELECT 1 FROM mls_group_members m
                      WHERE m.group_id = g.id AND m.device_id = $2 AND m.removed_seq IS NULL)
      AND ({SEATED.format(g="g.id", u="$1")}
           OR EXISTS (SELECT 1 FROM mls_invitations i
                      WHERE i.group_id = g.id AND i.user_id = $1 AND {ACTIVE_INVITATION}))
    ORDER BY g.id
"""  # noqa: S608
_USER = "SELECT id FROM users WHERE username = $1"
_ACTIVE_COUNT = f"""
    SELECT count(*) FROM mls_invitations i WHERE i.group_id = $1 AND {ACTIVE_INVITATION}
"""  # noqa: S608
_CREATE = """
    INSERT INTO mls_invitations (invitation_id, group_id, user_id, created_by_user,
                                 created_by_device, expires_at)
    VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
    RETURNING expires_at, created_at
"""
_LIST = f"""
    SELECT i.invitation_id, u.username, i.expires_at, i.created_at,
           cu.username AS by_user, cd.device_id AS by_device
    FROM mls_invitations i
    JOIN users u ON u.id = i.user_id
    JOIN users cu ON cu.id = i.created_by_user
    LEFT JOIN devices cd ON cd.id = i.created_by_device
    WHERE i.group_id = $1 AND {ACTIVE_INVITATION}
    ORDER BY i.id
"""  # noqa: S608
_REVOKE = """
    UPDATE mls_invitations SET revoked_at = now()
    WHERE group_id = $1 AND invitation_id = $2 AND revoked_at IS NULL AND consumed_at IS NULL
    RETURNING id
"""


class JoinableGroup(BaseModel):
    """A group this device may join by external commit."""

    group_id: str
    cipher_suite: int
    epoch: int
    reason: str = Field(description='"user_member": another device of your user is a member '
                        '(or was, until it was retired); "invitation": your user was invited')


class JoinableList(BaseModel):
    """The groups this device may join by external commit."""

    groups: list[JoinableGroup]


class GroupInfoOut(BaseModel):
    """The stored GroupInfo of the group's current epoch."""

    group_id: str
    epoch: int
    group_info: str = Field(description="MLSMessage(GroupInfo), standard base64, with the "
                            "ratchet_tree and external_pub extensions")


class InvitationRequest(BaseModel):
    """Invite a user who has no device in the group to join it by external commit."""

    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(max_length=64)
    expires_in_seconds: int | None = Field(
        default=None, ge=60, description="default 7 days, at most 30 days"
    )


class Invitation(BaseModel):
    """An active invitation."""

    invitation_id: str
    group_id: str
    user_id: str
    expires_at: datetime
    created_at: datetime
    created_by: str | None = Field(description='"<user_id>/<device_id>" of the inviting device')


class InvitationList(BaseModel):
    """The group's active invitations."""

    invitations: list[Invitation]


async def _member_group(conn: Conn, gid: bytes, device: DevicePrincipal) -> Any:
    """The group row, if the caller's device is a member (else the refusal it may see)."""
    group = await conn.fetchrow(_GROUP, gid)
    if group is None:
        raise unknown_group(gid)
    access = await access_of(conn, group["id"], device.device_pk, device.user_pk)
    if not access.member:
        raise refuse_non_member(access, gid)
    return group


@router.get("/groups/joinable", response_model=JoinableList)
async def joinable_groups(device: DeviceDep, services: ServicesDep) -> JoinableList:
    """Groups this device is not in but may join by external commit (its user holds a
    seat in them, or an invitation), of its cipher suite or one it publishes KeyPackages
    in, with a GroupInfo to join from."""
    services.local_limits.check(f"read:{device.user_pk}", services.settings.rate_limits.read,
                                what="reads")

    async def fetch(conn: Conn) -> JoinableList:
        rows = await conn.fetch(_JOINABLE, device.user_pk, device.device_pk, device.cipher_suite)
        return JoinableList(groups=[
            JoinableGroup(group_id=encode_group_id(r["group_id"]), cipher_suite=r["cipher_suite"],
                          epoch=r["epoch"], reason=r["reason"])
            for r in rows
        ])

    return await services.db.raw_read(fetch)


@router.get("/groups/{group_id}/group-info", response_model=GroupInfoOut)
async def group_info(group_id: str, device: DeviceDep, services: ServicesDep) -> GroupInfoOut:
    """The GroupInfo of the group's current epoch, for a member device or a device that
    may join (its user's seat, or an invitation). Anyone else, former members included,
    gets the same 404 as for a group that does not exist."""
    services.local_limits.check(f"read:{device.user_pk}", services.settings.rate_limits.read,
                                what="reads")
    gid = decode_group_id(group_id, services.settings.max_group_id_bytes)

    async def fetch(conn: Conn) -> GroupInfoOut:
        group = await conn.fetchrow(_GROUP, gid)
        if group is None:
            raise unknown_group(gid)
        access = await access_of(conn, group["id"], device.device_pk, device.user_pk)
        if not access.may_join:
            raise unknown_group(gid)
        row = await conn.fetchrow(_GROUP_INFO, group["id"])
        if row is None or row["epoch"] != group["epoch"]:
            raise NotFound(
                "no GroupInfo of the group's current epoch yet: the next commit of a member "
                "brings one",
                code="no_group_info",
            )
        return GroupInfoOut(group_id=encode_group_id(gid), epoch=row["epoch"],
                            group_info=b64encode(row["data"]))

    return await services.db.raw_read(fetch)


@router.post("/groups/{group_id}/invitations", status_code=201, response_model=Invitation)
async def create_invitation(
    group_id: str, body: InvitationRequest, device: DeviceDep, services: ServicesDep
) -> Invitation:
    """Invite a user with no device in the group (members only). The user's devices may
    then join by external commit until the invitation expires (default 7 days, at most
    30), is revoked, is consumed by the user's first join, or the inviting user leaves."""
    settings = services.settings
    services.local_limits.check(f"invite:{device.user_pk}", settings.rate_limits.group_create,
                                what="invitations")
    gid = decode_group_id(group_id, settings.max_group_id_bytes)
    username = normalize_username(body.user_id)
    seconds = min(body.expires_in_seconds or settings.invitation_default_seconds,
                  settings.invitation_max_seconds)

    async def create(conn: Conn) -> tuple[Invitation, int, int]:
        group = await _member_group(conn, gid, device)
        # Serialise invitations of one group (the cap below holds under concurrency).
        await conn.execute("SELECT 1 FROM mls_groups WHERE id = $1 FOR UPDATE", group["id"])
        user_pk = await conn.fetchval(_USER, username)
        if user_pk is None:
            raise NotFound(f"no user {username!r}", code="unknown_user")
        invited = await access_of(conn, group["id"], 0, user_pk)
        if invited.seated:
            raise Conflict(f"{username!r} already has a device in the group (or a seat kept "
                           "for a retired one): their devices may join without an invitation",
                           code="already_member")
        if await conn.fetchval(_ACTIVE_COUNT, group["id"]) >= MAX_ACTIVE_INVITATIONS:
            raise Conflict(f"a group may have at most {MAX_ACTIVE_INVITATIONS} active "
                           "invitations; revoke some", code="too_many_invitations")
        invitation_id = secrets.token_urlsafe(16)
        row = await conn.fetchrow(_CREATE, invitation_id, group["id"], user_pk, device.user_pk,
                                  device.device_pk, float(seconds))
        assert row is not None
        return Invitation(
            invitation_id=invitation_id, group_id=encode_group_id(gid), user_id=username,
            expires_at=row["expires_at"], created_at=row["created_at"],
            created_by=device.identity.decode(),
        ), user_pk, group["id"]

    invitation, user_pk, group_pk = await services.db.raw_transaction(create)
    services.hub.announce_joinable(user_pk, group_pk)
    return invitation


@router.get("/groups/{group_id}/invitations", response_model=InvitationList)
async def list_invitations(group_id: str, device: DeviceDep, services: ServicesDep
                           ) -> InvitationList:
    """The group's active invitations (members only)."""
    gid = decode_group_id(group_id, services.settings.max_group_id_bytes)

    async def fetch(conn: Conn) -> InvitationList:
        group = await _member_group(conn, gid, device)
        rows = await conn.fetch(_LIST, group["id"])
        return InvitationList(invitations=[
            Invitation(
                invitation_id=r["invitation_id"], group_id=encode_group_id(gid),
                user_id=r["username"], expires_at=r["expires_at"], created_at=r["created_at"],
                created_by=(f"{r['by_user']}/{r['by_device']}" if r["by_device"] is not None
                            else None),
            )
            for r in rows
        ])

    return await services.db.raw_read(fetch)


@router.delete("/groups/{group_id}/invitations/{invitation_id}", status_code=204,
               response_class=Response)
async def revoke_invitation(
    group_id: str, invitation_id: str, device: DeviceDep, services: ServicesDep
) -> Response:
    """Revoke an active invitation (members only)."""
    gid = decode_group_id(group_id, services.settings.max_group_id_bytes)

    async def revoke(conn: Conn) -> None:
        group = await _member_group(conn, gid, device)
        if await conn.fetchval(_REVOKE, group["id"], invitation_id[:64]) is None:
            raise NotFound("no active invitation with this id in the group",
                           code="unknown_invitation")

    await services.db.raw_transaction(revoke)
    return Response(status_code=204)
