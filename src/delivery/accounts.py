"""Managing an account: its devices, its sessions and its password.

* Retiring a device (``DELETE /api/auth/devices/{device_id}``): its KeyPackages
  are deleted, its sessions revoked and its sockets closed, it can never log in or
  be added again, and the members of every group that still holds its leaf are
  told (push ``device-retired``) so that their next commit removes it. A device
  retires itself without a password (the panic wipe's server cleanup); retiring
  another device of the user needs the password.
* Changing the password needs the old one and revokes every other session.
* Password checks here go through the same throttle as logins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from delivery.auth import check_password, current_principal
from delivery.encoding import b64encode, encode_group_id
from delivery.errors import BadRequest, Forbidden, NotFound, Unauthorized
from delivery.principal import Principal
from delivery.security import check_password_policy
from delivery.services import Services, client_address, get_services
from delivery.store import Conn

router = APIRouter(prefix="/api/auth", tags=["account"])
ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
AddressDep = Annotated[str, Depends(client_address)]

_DEVICES = """
    SELECT d.id, d.device_id, d.name, d.cipher_suite, d.signature_key, d.created_at,
           d.retired_at, (SELECT max(s.last_used_at) FROM sessions s WHERE s.device_pk = d.id)
             AS last_seen_at
    FROM devices d WHERE d.user_id = $1 ORDER BY d.id
"""
_DEVICE = "SELECT id, retired_at FROM devices WHERE user_id = $1 AND device_id = $2 FOR UPDATE"
_RETIRE = "UPDATE devices SET retired_at = now() WHERE id = $1 AND retired_at IS NULL"
_DROP_KEY_PACKAGES = "DELETE FROM mls_key_packages WHERE device_id = $1"
_DROP_SESSIONS = "DELETE FROM sessions WHERE device_pk = $1"
_LEAVES = """
    SELECT g.group_id FROM mls_group_members m JOIN mls_groups g ON g.id = m.group_id
    WHERE m.device_id = $1 AND m.removed_seq IS NULL ORDER BY g.id
"""
_RETIRED_AT = "SELECT retired_at FROM devices WHERE id = $1"
_SESSIONS = """
    SELECT s.id, d.device_id, s.created_at, s.last_used_at, s.expires_at
    FROM sessions s LEFT JOIN devices d ON d.id = s.device_pk
    WHERE s.user_id = $1 AND s.expires_at > now()
      AND s.last_used_at > now() - make_interval(secs => $2)
    ORDER BY s.id
"""
_DROP_SESSION = "DELETE FROM sessions WHERE id = $1 AND user_id = $2 RETURNING id"
_DROP_USER_SESSIONS = "DELETE FROM sessions WHERE user_id = $1 AND id <> $2"
_SET_PASSWORD = "UPDATE users SET password_hash = $2 WHERE id = $1"  # noqa: S105 - SQL


class OwnDevice(BaseModel):
    """One device of the caller's user."""

    device_id: str
    name: str
    cipher_suite: int
    signature_key: str = Field(description="raw signature public key, standard base64")
    created_at: datetime
    last_seen_at: datetime | None = Field(description="last use of one of its sessions")
    retired: bool
    retired_at: datetime | None
    current: bool = Field(description="the device of the calling session")


class OwnDevices(BaseModel):
    """The caller's user's devices, retired ones included."""

    devices: list[OwnDevice]


class RetireRequest(BaseModel):
    """The account password, needed to retire a device other than the caller's."""

    model_config = ConfigDict(extra="forbid")
    password: str | None = Field(default=None, max_length=1024)


class Retired(BaseModel):
    """A retired device and the groups that still hold its leaf (members remove it)."""

    device_id: str
    retired: bool = True
    retired_at: datetime
    group_ids: list[str]


class SessionOut(BaseModel):
    """One live session of the caller's user."""

    session_id: int
    device_id: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    current: bool


class SessionList(BaseModel):
    """The caller's user's live sessions."""

    sessions: list[SessionOut]


class PasswordChange(BaseModel):
    """The current password and the new one."""

    model_config = ConfigDict(extra="forbid")
    old_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


async def _reauthenticate(
    services: Services, address: str, principal: Principal, password: str | None
) -> None:
    """The session's user proves they know the password (throttled like a login)."""
    if password is None:
        raise BadRequest("this needs the account password", code="password_required")
    try:
        await check_password(services, address, principal.user_id, password)
    except Unauthorized:
        # 403, not 401: the session is fine, the password was wrong.
        raise Forbidden("wrong password", code="wrong_password") from None


@router.get("/devices", response_model=OwnDevices)
async def list_devices(principal: PrincipalDep, services: ServicesDep) -> OwnDevices:
    """The caller's user's devices, retired ones marked."""

    async def fetch(conn: Conn) -> OwnDevices:
        rows = await conn.fetch(_DEVICES, principal.user_pk)
        return OwnDevices(devices=[
            OwnDevice(
                device_id=r["device_id"], name=r["name"], cipher_suite=r["cipher_suite"],
                signature_key=b64encode(r["signature_key"]), created_at=r["created_at"],
                last_seen_at=r["last_seen_at"], retired=r["retired_at"] is not None,
                retired_at=r["retired_at"], current=r["id"] == principal.device_pk,
            )
            for r in rows
        ])

    return await services.db.raw_read(fetch)


@router.delete("/devices/{device_id}", response_model=Retired)
async def retire_device(
    device_id: str,
    principal: PrincipalDep,
    services: ServicesDep,
    address: AddressDep,
    body: Annotated[RetireRequest | None, Body()] = None,
) -> Retired:
    """Retire a device of the caller's user (see the module docstring). The caller's
    own device needs nothing more; another device needs ``{"password": ...}``.
    Retiring a retired device changes nothing and answers the same."""
    if device_id != principal.device_id:
        await _reauthenticate(services, address, principal,
                              body.password if body is not None else None)

    async def retire(conn: Conn) -> tuple[Retired, int]:
        row = await conn.fetchrow(_DEVICE, principal.user_pk, device_id[:64])
        if row is None:
            raise NotFound("no such device of this user", code="unknown_device")
        await conn.execute(_RETIRE, row["id"])
        await conn.execute(_DROP_KEY_PACKAGES, row["id"])
        await conn.execute(_DROP_SESSIONS, row["id"])
        groups = [encode_group_id(r["group_id"]) for r in await conn.fetch(_LEAVES, row["id"])]
        retired_at = await conn.fetchval(_RETIRED_AT, row["id"])
        return Retired(device_id=device_id, retired_at=retired_at, group_ids=groups), row["id"]

    retired, device_pk = await services.db.raw_transaction(retire)
    services.hub.device_retired(device_pk)
    return retired


@router.post("/password", status_code=204, response_class=Response)
async def change_password(
    body: PasswordChange, principal: PrincipalDep, services: ServicesDep, address: AddressDep
) -> Response:
    """Change the password (the old one re-authenticates); every other session of the
    user is revoked, the calling one stays."""
    check_password_policy(body.new_password, principal.user_id)
    if body.new_password == body.old_password:
        raise BadRequest("the new password is the old one", code="weak_password")
    await _reauthenticate(services, address, principal, body.old_password)
    password_hash = await services.passwords.hash(body.new_password)

    async def store(conn: Conn) -> None:
        await conn.execute(_SET_PASSWORD, principal.user_pk, password_hash)
        await conn.execute(_DROP_USER_SESSIONS, principal.user_pk, principal.session_id)

    await services.db.raw_transaction(store)
    services.hub.sessions_revoked(principal.user_pk, keep_session=principal.session_id)
    return Response(status_code=204)


@router.get("/sessions", response_model=SessionList)
async def list_sessions(principal: PrincipalDep, services: ServicesDep) -> SessionList:
    """The user's live sessions (tokens are never shown, only their metadata)."""
    idle = float(services.settings.session_idle_seconds)

    async def fetch(conn: Conn) -> SessionList:
        rows = await conn.fetch(_SESSIONS, principal.user_pk, idle)
        return SessionList(sessions=[
            SessionOut(session_id=r["id"], device_id=r["device_id"], created_at=r["created_at"],
                       last_used_at=r["last_used_at"], expires_at=r["expires_at"],
                       current=r["id"] == principal.session_id)
            for r in rows
        ])

    return await services.db.raw_read(fetch)


@router.delete("/sessions/{session_id}", status_code=204, response_class=Response)
async def revoke_session(
    session_id: int, principal: PrincipalDep, services: ServicesDep
) -> Response:
    """Revoke one session of the user (its sockets close at once)."""

    async def revoke(conn: Conn) -> Any:
        return await conn.fetchval(_DROP_SESSION, session_id, principal.user_pk)

    if not 0 < session_id < 2**63 or await services.db.raw_transaction(revoke) is None:
        raise NotFound("no such session of this user", code="unknown_session")
    services.hub.session_revoked(session_id)
    return Response(status_code=204)


@router.post("/logout-all", status_code=204, response_class=Response)
async def logout_everywhere(principal: PrincipalDep, services: ServicesDep) -> Response:
    """Revoke every session of the user, this one included; every socket closes."""

    async def revoke(conn: Conn) -> None:
        await conn.execute(_DROP_USER_SESSIONS, principal.user_pk, 0)

    await services.db.raw_transaction(revoke)
    services.hub.sessions_revoked(principal.user_pk)
    return Response(status_code=204)
