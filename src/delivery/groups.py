"""The Delivery Service's HTTP API: groups, posting, the ordered stream, Welcomes.

The rules of accepting a message (ordering, epochs, membership) live in
:mod:`delivery.posting`; this module maps HTTP to them and serves the reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from delivery import posting
from delivery.access import access_of, refuse_non_member, unknown_group
from delivery.auth import current_device
from delivery.encoding import b64decode, decode_group_id, encode_group_id
from delivery.errors import BadRequest, Conflict
from delivery.mlsparse import parse_group_info
from delivery.principal import DevicePrincipal
from delivery.schema import mls_group_infos, mls_group_members, mls_groups
from delivery.services import Services, get_services
from delivery.store import Conn, visible_messages_after, welcomes_after, windows_of
from delivery.suites import check_usable

_GROUP_BY_ID = "SELECT id, cipher_suite, epoch, last_seq FROM mls_groups WHERE group_id = $1"
MAX_CURSOR = 2**63 - 1  # sequence numbers are PostgreSQL bigints

router = APIRouter(prefix="/api/mls", tags=["delivery"])
ServicesDep = Annotated[Services, Depends(get_services)]
DeviceDep = Annotated[DevicePrincipal, Depends(current_device)]


# ---------------------------------------------------------------------------- models


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateGroupRequest(_Strict):
    """Register a new group; the caller's device is its creator at leaf 0, epoch 0."""

    group_id: str = Field(description="the MLS group id, base64url without padding")
    cipher_suite: int | None = Field(
        default=None, ge=1, le=0xFFFF, description="defaults to the device's cipher suite"
    )
    group_info: str = Field(
        max_length=4 * 1024 * 1024,
        description="MLSMessage(GroupInfo) of epoch 0, signed by the creator's leaf 0, with "
        "the ratchet_tree and external_pub extensions; standard base64",
    )


class MemberInfo(BaseModel):
    """A current member device and its leaf."""

    user_id: str
    device_id: str
    identity: str
    leaf_index: int
    retired: bool = Field(
        default=False,
        description="the device was retired: the next commit of any member removes its leaf",
    )


class GroupView(BaseModel):
    """A group's state as the delivery service tracks it."""

    group_id: str
    cipher_suite: int
    epoch: int
    last_seq: int
    members: list[MemberInfo]


class GroupSummary(BaseModel):
    """One of the caller's groups."""

    group_id: str
    cipher_suite: int
    epoch: int
    last_seq: int
    leaf_index: int
    joined_seq: int


class GroupList(BaseModel):
    """The groups the caller's device is a member of."""

    groups: list[GroupSummary]


class PostMessageRequest(_Strict):
    """A commit, proposal or application message; a commit with its GroupInfo and
    optionally its Welcome."""

    message: str = Field(description="MLSMessage (PublicMessage or PrivateMessage), base64")
    welcome: str | None = Field(
        default=None,
        description="MLSMessage(Welcome) for the members this commit adds, base64; "
        "stored and routed only if the commit is accepted",
    )
    group_info: str | None = Field(
        default=None,
        description="required for a commit, refused otherwise: MLSMessage(GroupInfo) of the "
        "epoch the commit creates, signed by the committer's leaf, with the ratchet_tree and "
        "external_pub extensions; base64",
    )


class PostMessageResponse(BaseModel):
    """Where the message landed in the group's order."""

    group_id: str
    seq: int
    epoch: int = Field(description="the message's epoch")
    content_type: str
    group_epoch: int = Field(description="the group's epoch after this message")
    duplicate: bool = Field(description="true if these exact bytes were already accepted")
    welcomed: list[str] = Field(default_factory=list, description="identities sent the Welcome")


class PostWelcomeRequest(_Strict):
    """A Welcome for members an accepted commit added."""

    welcome: str = Field(description="MLSMessage(Welcome), base64")
    group_id: str | None = Field(
        default=None,
        description="the group, base64url; needed only when the Welcome's KeyPackages (a "
        "last-resort one) were added to several of the caller's groups and not yet welcomed",
    )


class PostWelcomeResponse(BaseModel):
    """Who the Welcome was routed to."""

    group_id: str
    welcomed: list[str]


class MessageOut(BaseModel):
    """A message of a group's stream (same shape as the WebSocket ``mls-message`` event)."""

    type: str = "mls-message"
    group_id: str
    seq: int
    epoch: int
    content_type: str
    sender: str | None = Field(description='"<user_id>/<device_id>" of the posting device')
    data: str = Field(description="MLSMessage, base64")
    created_at: str


class MessagePage(BaseModel):
    """A page of messages after a cursor."""

    group_id: str
    messages: list[MessageOut]
    next_after: int = Field(description="pass as ?after= to continue")
    has_more: bool
    group_epoch: int
    last_seq: int


class WelcomeOut(BaseModel):
    """A Welcome in the caller's inbox (same shape as the ``mls-welcome`` event)."""

    type: str = "mls-welcome"
    welcome_seq: int
    group_id: str
    epoch: int
    sender: str | None
    data: str
    created_at: str


class WelcomePage(BaseModel):
    """The caller's Welcomes after a cursor."""

    welcomes: list[WelcomeOut]
    next_after: int
    has_more: bool


# ---------------------------------------------------------------------------- helpers

@dataclass(frozen=True, slots=True)
class _Group:
    pk: int
    group_id: bytes
    cipher_suite: int
    epoch: int
    last_seq: int


# ---------------------------------------------------------------------------- routes


@router.post("/groups", status_code=201, response_model=GroupSummary)
async def create_group(
    body: CreateGroupRequest, device: DeviceDep, services: ServicesDep
) -> GroupSummary:
    """Register a group the caller's device just created (leaf 0, epoch 0)."""
    settings = services.settings
    group_id = decode_group_id(body.group_id, settings.max_group_id_bytes)
    suite = body.cipher_suite if body.cipher_suite is not None else device.cipher_suite
    check_usable(device.cipher_suite, suite, "the group")
    services.local_limits.check(
        f"group-create:{device.user_pk}", settings.rate_limits.group_create, what="new groups"
    )
    group_info_data = b64decode(body.group_info, "group_info")
    group_info = parse_group_info(group_info_data)
    ctx = group_info.context
    if ctx.group_id != group_id or ctx.epoch != 0 or ctx.cipher_suite != suite:
        raise BadRequest(
            "group_info must be the GroupInfo of this group's epoch 0 in its cipher suite",
            code="invalid_group_info",
        )
    if group_info.group_info.signer != 0:
        raise BadRequest("the epoch-0 GroupInfo is signed by leaf 0, the creator",
                         code="invalid_group_info")
    posting.check_tree_members(group_info, {0: (device.identity, device.signature_key)})

    async def create(conn: AsyncConnection) -> tuple[GroupSummary, int]:
        exists = (
            await conn.execute(select(mls_groups.c.id).where(mls_groups.c.group_id == group_id))
        ).first()
        if exists is not None:
            raise Conflict("a group with this id already exists", code="group_exists")
        pk = (
            await conn.execute(
                insert(mls_groups)
                .values(group_id=group_id, cipher_suite=suite, created_by=device.device_pk)
                .returning(mls_groups.c.id)
            )
        ).scalar_one()
        await conn.execute(
            insert(mls_group_members).values(
                group_id=pk,
                user_id=device.user_pk,
                device_id=device.device_pk,
                leaf_index=0,
                joined_epoch=0,
                joined_seq=0,
                welcomed=True,
            )
        )
        await conn.execute(
            insert(mls_group_infos).values(group_id=pk, epoch=0, data=group_info_data)
        )
        return GroupSummary(
            group_id=encode_group_id(group_id),
            cipher_suite=suite,
            epoch=0,
            last_seq=0,
            leaf_index=0,
            joined_seq=0,
        ), pk

    created, pk = await services.db.transaction(create)
    # Open WebSockets of this device (in any process) start following the new group,
    # and the user's other devices learn that they may join it.
    services.hub.device_changed(device.device_pk)
    services.hub.announce_joinable(device.user_pk, pk)
    return created


@router.get("/groups", response_model=GroupList)
async def list_groups(device: DeviceDep, services: ServicesDep) -> GroupList:
    """The groups the caller's device is currently a member of."""

    async def fetch(conn: AsyncConnection) -> GroupList:
        rows = await conn.execute(
            select(
                mls_groups.c.group_id,
                mls_groups.c.cipher_suite,
                mls_groups.c.epoch,
                mls_groups.c.last_seq,
                mls_group_members.c.leaf_index,
                mls_group_members.c.joined_seq,
            )
            .select_from(
                mls_group_members.join(mls_groups, mls_groups.c.id == mls_group_members.c.group_id)
            )
            .where(
                mls_group_members.c.device_id == device.device_pk,
                mls_group_members.c.removed_seq.is_(None),
            )
            .order_by(mls_groups.c.id)
        )
        return GroupList(
            groups=[
                GroupSummary(
                    group_id=encode_group_id(r.group_id),
                    cipher_suite=r.cipher_suite,
                    epoch=r.epoch,
                    last_seq=r.last_seq,
                    leaf_index=r.leaf_index,
                    joined_seq=r.joined_seq,
                )
                for r in rows
            ]
        )

    return await services.db.read(fetch)


_MEMBER_VIEW = """
    SELECT u.username, d.device_id, d.id AS device_pk, m.leaf_index,
           d.retired_at IS NOT NULL AS retired
    FROM mls_group_members m
    JOIN devices d ON d.id = m.device_id
    JOIN users u ON u.id = d.user_id
    WHERE m.group_id = $1 AND m.removed_seq IS NULL
    ORDER BY m.leaf_index
"""


@router.get("/groups/{group_id}", response_model=GroupView)
async def group_view(group_id: str, device: DeviceDep, services: ServicesDep) -> GroupView:
    """The group's epoch, head sequence number and current members, retired devices
    marked (members only; others get the same 404 as for an unknown group, or 403 if
    they were members)."""
    gid = decode_group_id(group_id, services.settings.max_group_id_bytes)

    async def fetch(conn: Conn) -> GroupView:
        row = await conn.fetchrow(_GROUP_BY_ID, gid)
        if row is None:
            raise unknown_group(gid)
        rows = await conn.fetch(_MEMBER_VIEW, row["id"])
        if device.device_pk not in {r["device_pk"] for r in rows}:
            raise refuse_non_member(
                await access_of(conn, row["id"], device.device_pk, device.user_pk), gid)
        return GroupView(
            group_id=encode_group_id(gid),
            cipher_suite=row["cipher_suite"],
            epoch=row["epoch"],
            last_seq=row["last_seq"],
            members=[
                MemberInfo(
                    user_id=r["username"],
                    device_id=r["device_id"],
                    identity=f"{r['username']}/{r['device_id']}",
                    leaf_index=r["leaf_index"],
                    retired=r["retired"],
                )
                for r in rows
            ],
        )

    return await services.db.raw_read(fetch)


@router.post(
    "/messages/group",
    status_code=201,
    response_model=PostMessageResponse,
    responses={
        400: {"description": "malformed or invalid MLS message"},
        403: {"description": "not a member, or not the sender's leaf"},
        404: {"description": "unknown group"},
        409: {"description": "stale epoch (body has current_epoch)"},
    },
)
async def post_group_message(
    body: PostMessageRequest, device: DeviceDep, services: ServicesDep
) -> PostMessageResponse:
    """Post a commit, proposal or application message to its group.

    Group id, epoch, content type, sender and proposals are read from the MLSMessage
    itself. The message gets the group's next sequence number; a commit also advances
    the epoch and updates membership from its Add/Remove proposals. An accompanying
    Welcome is routed to the added devices in the same transaction.
    """
    services.local_limits.check(
        f"post:{device.user_pk}", services.settings.rate_limits.message_post, what="messages"
    )
    data = b64decode(body.message, "message")
    welcome = b64decode(body.welcome, "welcome") if body.welcome is not None else None
    group_info = (b64decode(body.group_info, "group_info") if body.group_info is not None
                  else None)
    accepted = await posting.post_message(services.sequencer, device, data, welcome, group_info)
    return PostMessageResponse(
        group_id=accepted.group_id,
        seq=accepted.seq,
        epoch=accepted.epoch,
        content_type=accepted.content_type,
        group_epoch=accepted.group_epoch,
        duplicate=accepted.duplicate,
        welcomed=accepted.welcomed,
    )


@router.post("/messages/welcome", status_code=201, response_model=PostWelcomeResponse)
async def post_welcome_message(
    body: PostWelcomeRequest, device: DeviceDep, services: ServicesDep
) -> PostWelcomeResponse:
    """Route a Welcome to the devices it invites.

    The recipients are found by the KeyPackageRefs in the Welcome, which must be those
    of Add proposals in a commit of this group that was already accepted (409
    otherwise). The caller must be a current member of that group.
    """
    services.local_limits.check(
        f"post:{device.user_pk}", services.settings.rate_limits.message_post, what="messages"
    )
    gid = (decode_group_id(body.group_id, services.settings.max_group_id_bytes)
           if body.group_id is not None else None)
    group_id, welcomed = await posting.post_welcome(
        services.db, services.hub, device, b64decode(body.welcome, "welcome"), gid
    )
    return PostWelcomeResponse(group_id=group_id, welcomed=welcomed)


@router.get("/messages/{group_id}", response_model=MessagePage)
async def get_messages(
    group_id: str,
    device: DeviceDep,
    services: ServicesDep,
    after: Annotated[
        int, Query(ge=0, le=MAX_CURSOR, description="last sequence number seen")
    ] = 0,
    limit: Annotated[int | None, Query(ge=1, le=MAX_CURSOR)] = None,
) -> MessagePage:
    """The group's messages after ``after`` that this device may read, in order.

    A device sees messages from the one after the commit that added it (its joining
    epoch) up to the commit that removed it.
    """
    settings = services.settings
    services.local_limits.check(f"read:{device.user_pk}", settings.rate_limits.read, what="reads")
    gid = decode_group_id(group_id, settings.max_group_id_bytes)
    size = min(limit or settings.page_size_default, settings.page_size_max)

    async def fetch(conn: Conn) -> MessagePage:
        row = await conn.fetchrow(_GROUP_BY_ID, gid)
        if row is None:
            raise unknown_group(gid)
        group = _Group(row["id"], gid, row["cipher_suite"], row["epoch"], row["last_seq"])
        if not await windows_of(conn, group.pk, device.device_pk):
            raise refuse_non_member(
                await access_of(conn, group.pk, device.device_pk, device.user_pk), gid)
        messages = await visible_messages_after(conn, group.pk, device.device_pk, after,
                                                size + 1, settings.page_max_bytes)
        # Cut by the byte bound: there may be more.
        has_more = len(messages) > size or (
            sum(len(m.data) for m in messages) >= settings.page_max_bytes)
        messages = messages[:size]
        return MessagePage(
            group_id=encode_group_id(gid),
            messages=[MessageOut(**m.event()) for m in messages],
            next_after=messages[-1].seq if messages else after,
            has_more=has_more,
            group_epoch=group.epoch,
            last_seq=group.last_seq,
        )

    return await services.db.raw_read(fetch)


@router.get("/welcomes", response_model=WelcomePage)
async def get_welcomes(
    device: DeviceDep,
    services: ServicesDep,
    after: Annotated[int, Query(ge=0, le=MAX_CURSOR, description="last welcome_seq seen")] = 0,
    limit: Annotated[int | None, Query(ge=1, le=MAX_CURSOR)] = None,
) -> WelcomePage:
    """The caller's Welcome inbox after ``after``, in order."""
    settings = services.settings
    services.local_limits.check(f"read:{device.user_pk}", settings.rate_limits.read, what="reads")
    size = min(limit or settings.page_size_default, settings.page_size_max)

    async def fetch(conn: Conn) -> WelcomePage:
        items = await welcomes_after(conn, device.device_pk, after, size + 1,
                                     settings.page_max_bytes)
        has_more = len(items) > size or sum(len(w.data) for w in items) >= settings.page_max_bytes
        items = items[:size]
        return WelcomePage(
            welcomes=[WelcomeOut(**w.event()) for w in items],
            next_after=items[-1].welcome_seq if items else after,
            has_more=has_more,
        )

    return await services.db.raw_read(fetch)

