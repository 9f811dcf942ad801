"""The Authentication Service: accounts, sessions, devices and the key directory.

Identities: a user's public id is the username; a device's public id is a short
random string the server assigns at registration. An MLS client's
BasicCredential identity is the UTF-8 string ``"<user_id>/<device_id>"``, and
its leaf signature key must be the identity key registered for that device.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Header, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from delivery.encoding import b64decode, b64encode
from delivery.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from delivery.principal import DevicePrincipal, Principal
from delivery.schema import devices, sessions, users
from delivery.security import (
    DEVICE_ID_RE,
    check_password_policy,
    digests_equal,
    new_device_id,
    new_token,
    normalize_username,
    token_digest,
)
from delivery.services import Services, client_address, get_services
from delivery.suites import validate_signature_key

MAX_DEVICES_PER_USER = 32
# last_used_at is refreshed at most this often (or a quarter of the idle timeout if
# that is shorter): idle expiry is coarse by this much, and a busy session does not
# turn every read into a write.
_TOUCH_INTERVAL_SECONDS = 60

_SESSION_SQL = """
    SELECT s.id, s.token_hash, s.user_id, u.username, s.device_pk, d.device_id,
           d.cipher_suite, d.signature_key,
           s.last_used_at <= now() - make_interval(secs => $3) AS stale
    FROM sessions s
    JOIN users u ON u.id = s.user_id
    LEFT JOIN devices d ON d.id = s.device_pk
    WHERE s.token_hash = $1 AND s.expires_at > now()
      AND s.last_used_at > now() - make_interval(secs => $2)
      AND d.retired_at IS NULL
"""
_TOUCH_SQL = "UPDATE sessions SET last_used_at = now() WHERE id = $1"


async def authenticate(services: Services, token: str) -> Principal:
    """Resolve a bearer token to its live session, or raise :class:`Unauthorized`.

    Runs on every request, hence raw asyncpg (see ``Database.raw_transaction``).
    """
    if not token or len(token) > 256:
        raise Unauthorized("invalid or expired token")
    digest = token_digest(token)
    idle = float(services.settings.session_idle_seconds)
    touch = float(min(_TOUCH_INTERVAL_SECONDS, services.settings.session_idle_seconds // 4))

    async def lookup(conn: asyncpg.Connection[Any]) -> Principal:
        row = await conn.fetchrow(_SESSION_SQL, digest, idle, touch)
        if row is None or not digests_equal(row["token_hash"], digest):
            raise Unauthorized("invalid or expired token")
        if row["stale"]:
            await conn.execute(_TOUCH_SQL, row["id"])
        return Principal(
            session_id=row["id"],
            user_pk=row["user_id"],
            user_id=row["username"],
            device_pk=row["device_pk"],
            device_id=row["device_id"],
            cipher_suite=row["cipher_suite"],
            signature_key=row["signature_key"],
        )

    return await services.db.raw_read(lookup)


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if authorization is None:
        raise Unauthorized("missing Authorization: Bearer <token> header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return token.strip()


async def current_principal(
    services: Annotated[Services, Depends(get_services)],
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    """FastAPI dependency: the authenticated caller (401 otherwise)."""
    return await authenticate(services, bearer_token(authorization))


def require_device(principal: Principal) -> DevicePrincipal:
    """The caller's device, or 403 if the session has not registered one."""
    if (
        principal.device_pk is None
        or principal.device_id is None
        or principal.cipher_suite is None
        or principal.signature_key is None
    ):
        raise Forbidden(
            "this session has no device: register one (POST /api/auth/devices) "
            "or log in with device_id",
            code="no_device",
        )
    return DevicePrincipal(
        session_id=principal.session_id,
        user_pk=principal.user_pk,
        user_id=principal.user_id,
        device_pk=principal.device_pk,
        device_id=principal.device_id,
        cipher_suite=principal.cipher_suite,
        signature_key=principal.signature_key,
    )


async def current_device(
    principal: Annotated[Principal, Depends(current_principal)],
) -> DevicePrincipal:
    """FastAPI dependency: the authenticated caller's device (401 / 403 otherwise)."""
    return require_device(principal)


# ---------------------------------------------------------------------------- API models


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(_Strict):
    """A new account."""

    username: str = Field(max_length=64, examples=["alice"])
    password: str = Field(max_length=1024)


class RegisterResponse(BaseModel):
    """The created account's public id (the canonical username)."""

    user_id: str


class LoginRequest(_Strict):
    """Credentials, and optionally the device this session acts for."""

    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    device_id: str | None = Field(default=None, max_length=64)


class LoginResponse(BaseModel):
    """A bearer token for ``Authorization: Bearer <token>`` and its limits."""

    token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type name, not a secret
    user_id: str
    device_id: str | None
    expires_at: datetime
    idle_timeout_seconds: int


class SessionInfo(BaseModel):
    """The caller's session."""

    user_id: str
    device_id: str | None
    identity: str | None


class DeviceRequest(_Strict):
    """A device's identity: its MLS signature public key (raw, base64) and cipher suite."""

    signature_key: str = Field(max_length=1024, description="raw public key, standard base64")
    cipher_suite: int = Field(ge=1, le=0xFFFF, examples=[1])
    name: str = Field(default="", max_length=64)
    device_id: str | None = Field(
        default=None,
        max_length=32,
        description="optional client-chosen id (1-32 of a-z, 0-9, '_', '-'), unique per user; "
        "assigned by the server if omitted. A client whose MLS credential must exist before "
        "registration picks it itself.",
    )


class DeviceInfo(BaseModel):
    """One device of the key directory."""

    device_id: str
    identity: str = Field(description='the MLS credential identity, "<user_id>/<device_id>"')
    name: str
    cipher_suite: int = Field(description="the suite the signature key is registered in")
    cipher_suites: list[int] = Field(
        description="the suites the device can be added in: its registered one and those "
        "it has published KeyPackages in (same signature scheme)")
    signature_key: str = Field(description="raw signature public key, standard base64")
    created_at: datetime


class DeviceDirectory(BaseModel):
    """All devices of a user with their identity keys."""

    user_id: str
    devices: list[DeviceInfo]


# ---------------------------------------------------------------------------- routes

router = APIRouter(prefix="/api", tags=["auth"])
ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]


@router.post("/auth/register", status_code=201, response_model=RegisterResponse)
async def register(
    body: RegisterRequest, services: ServicesDep, conn_info: Annotated[str, Depends(client_address)]
) -> RegisterResponse:
    """Create an account. Passwords: 8-128 characters, not a common one (OWASP ASVS §2.1)."""
    username = normalize_username(body.username)
    check_password_policy(body.password, username)
    await services.shared_limits.check(
        f"register:{conn_info}", services.settings.rate_limits.register, what="registrations"
    )
    password_hash = await services.passwords.hash(body.password)

    async def create(conn: AsyncConnection) -> None:
        taken = (
            await conn.execute(select(users.c.id).where(users.c.username == username))
        ).first()
        if taken is not None:
            raise Conflict("username is taken", code="username_taken")
        await conn.execute(insert(users).values(username=username, password_hash=password_hash))

    await services.db.transaction(create)
    return RegisterResponse(user_id=username)


async def check_password(
    services: Services, address: str, username: str, password: str
) -> int:
    """Verify ``username``'s password under the login throttle (:mod:`delivery.throttle`);
    return the user's pk. Unknown users cost the same as wrong passwords and answer the
    same 401."""

    async def fetch(conn: AsyncConnection) -> tuple[int, str] | None:
        row = (
            await conn.execute(
                select(users.c.id, users.c.password_hash).where(users.c.username == username)
            )
        ).first()
        return None if row is None else (row.id, row.password_hash)

    found = await services.db.read(fetch)
    throttle = services.login_throttle
    trusted = await throttle.check(address, username, found[0] if found else None)
    ok = await services.passwords.verify(found[1] if found else None, password)
    if not ok or found is None:
        await throttle.failed(address, username, trusted)
        raise Unauthorized("invalid username or password")
    await throttle.succeeded(address, username, found[0])
    return found[0]


@router.post("/auth/login", response_model=LoginResponse)
async def login(
    body: LoginRequest, services: ServicesDep, conn_info: Annotated[str, Depends(client_address)]
) -> LoginResponse:
    """Exchange username and password for a bearer token (optionally bound to a device).

    Throttled per (address, account) with growing delays, and per account for addresses
    it never logged in from: an attacker elsewhere cannot lock the real user out."""
    limits = services.settings.rate_limits
    await services.shared_limits.check(f"login:ip:{conn_info}", limits.login, what="login attempts")
    try:
        username = normalize_username(body.username)
    except BadRequest:
        # Same cost and answer as a wrong password: no hint about what usernames exist.
        await services.passwords.verify(None, body.password)
        raise Unauthorized("invalid username or password") from None
    user_pk = await check_password(services, conn_info, username, body.password)
    token = new_token()
    settings = services.settings

    async def create_session(conn: AsyncConnection) -> tuple[datetime, str | None]:
        device_pk: int | None = None
        if body.device_id is not None:
            device = (
                await conn.execute(
                    select(devices.c.id, devices.c.retired_at).where(
                        devices.c.user_id == user_pk, devices.c.device_id == body.device_id
                    )
                )
            ).first()
            if device is None:
                raise Forbidden("device_id is not a device of this user", code="not_your_device")
            if device.retired_at is not None:
                raise Forbidden("this device was retired; register a new one",
                                code="device_retired")
            device_pk = device.id
        # Expired sessions of this user are garbage by now: clear them while we are here.
        await conn.execute(
            delete(sessions).where(
                sessions.c.user_id == user_pk,
                sessions.c.expires_at
                < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, settings.session_idle_seconds),
            )
        )
        expires_at = (
            await conn.execute(
                insert(sessions)
                .values(
                    token_hash=token_digest(token),
                    user_id=user_pk,
                    device_pk=device_pk,
                    expires_at=func.now()
                    + func.make_interval(0, 0, 0, 0, 0, 0, settings.session_absolute_seconds),
                )
                .returning(sessions.c.expires_at)
            )
        ).scalar_one()
        return expires_at, body.device_id

    expires_at, device_id = await services.db.transaction(create_session)
    return LoginResponse(
        token=token,
        user_id=username,
        device_id=device_id,
        expires_at=expires_at,
        idle_timeout_seconds=settings.session_idle_seconds,
    )


@router.post("/auth/logout", status_code=204, response_class=Response)
async def logout(principal: PrincipalDep, services: ServicesDep) -> Response:
    """Revoke the presented token at once (in every server process)."""

    async def revoke(conn: AsyncConnection) -> None:
        await conn.execute(delete(sessions).where(sessions.c.id == principal.session_id))

    await services.db.transaction(revoke)
    services.hub.session_revoked(principal.session_id)
    return Response(status_code=204)


@router.get("/auth/session", response_model=SessionInfo)
async def session_info(principal: PrincipalDep) -> SessionInfo:
    """Who the presented token belongs to."""
    identity = principal.identity
    return SessionInfo(
        user_id=principal.user_id,
        device_id=principal.device_id,
        identity=identity.decode() if identity is not None else None,
    )


@router.post("/auth/devices", status_code=201, response_model=DeviceInfo)
async def register_device(
    body: DeviceRequest, principal: PrincipalDep, services: ServicesDep
) -> DeviceInfo:
    """Register a device with its identity signature key and bind this session to it.

    The device id is assigned here; the client's MLS credential identity must then be
    ``"<user_id>/<device_id>"`` and its leaf signature key this key.
    """
    if principal.device_pk is not None:
        raise Conflict(
            f"this session already acts for device {principal.device_id}; "
            "log in again to register another device",
            code="session_has_device",
        )
    key = b64decode(body.signature_key, "signature_key")
    validate_signature_key(body.cipher_suite, key)
    if body.device_id is not None and not DEVICE_ID_RE.fullmatch(body.device_id):
        raise BadRequest(
            "device_id must be 1-32 characters of a-z, 0-9, '_', '-', starting with a letter "
            "or digit",
            code="invalid_device_id",
        )
    services.local_limits.check(
        f"device:{principal.user_pk}",
        services.settings.rate_limits.device_register,
        what="device registrations",
    )

    async def create(conn: AsyncConnection) -> DeviceInfo:
        count = (
            await conn.execute(
                select(func.count()).select_from(devices).where(
                    devices.c.user_id == principal.user_pk, devices.c.retired_at.is_(None)
                )
            )
        ).scalar_one()
        if count >= MAX_DEVICES_PER_USER:
            raise Conflict(f"a user may have at most {MAX_DEVICES_PER_USER} active devices; "
                           "retire one", code="too_many_devices")
        clash = (
            await conn.execute(select(devices.c.id).where(devices.c.signature_key == key))
        ).first()
        if clash is not None:
            raise Conflict("this signature key is already registered", code="duplicate_key")
        existing = set(
            (
                await conn.execute(
                    select(devices.c.device_id).where(devices.c.user_id == principal.user_pk)
                )
            ).scalars()
        )
        if body.device_id is not None:
            device_id = body.device_id
            if device_id in existing:
                raise Conflict(f"device {device_id!r} already exists", code="device_exists")
        else:
            device_id = new_device_id()
            while device_id in existing:
                device_id = new_device_id()
        row = (
            await conn.execute(
                insert(devices)
                .values(
                    user_id=principal.user_pk,
                    device_id=device_id,
                    name=body.name,
                    cipher_suite=body.cipher_suite,
                    signature_key=key,
                )
                .returning(devices.c.id, devices.c.created_at)
            )
        ).one()
        bound = await conn.execute(
            update(sessions)
            .where(and_(sessions.c.id == principal.session_id, sessions.c.device_pk.is_(None)))
            .values(device_pk=row.id)
        )
        if bound.rowcount != 1:
            # A concurrent request bound the session first; roll this device back.
            raise Conflict("this session already acts for a device", code="session_has_device")
        return DeviceInfo(
            device_id=device_id,
            identity=f"{principal.user_id}/{device_id}",
            name=body.name,
            cipher_suite=body.cipher_suite,
            cipher_suites=[body.cipher_suite],
            signature_key=b64encode(key),
            created_at=row.created_at,
        )

    return await services.db.transaction(create)


@router.get("/users/{user_id}/devices", response_model=DeviceDirectory, tags=["directory"])
async def key_directory(
    user_id: str, principal: PrincipalDep, services: ServicesDep
) -> DeviceDirectory:
    """The key directory: a user's active devices and identity keys, to check MLS
    credentials and compute safety numbers (retired devices are not listed)."""
    del principal  # any authenticated user may look up anyone's public keys
    username = normalize_username(user_id)

    async def fetch(conn: AsyncConnection) -> DeviceDirectory:
        user_pk = (
            await conn.execute(select(users.c.id).where(users.c.username == username))
        ).scalar()
        if user_pk is None:
            raise NotFound(f"no user {username!r}", code="unknown_user")
        rows = (
            await conn.execute(
                select(devices)
                .where(devices.c.user_id == user_pk, devices.c.retired_at.is_(None))
                .order_by(devices.c.id)
            )
        ).all()
        return DeviceDirectory(
            user_id=username,
            devices=[
                DeviceInfo(
                    device_id=r.device_id,
                    identity=f"{username}/{r.device_id}",
                    name=r.name,
                    cipher_suite=r.cipher_suite,
                    cipher_suites=sorted({r.cipher_suite, *r.cipher_suites}),
                    signature_key=b64encode(r.signature_key),
                    created_at=r.created_at,
                )
                for r in rows
            ],
        )

    return await services.db.read(fetch)
