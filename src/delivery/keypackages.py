"""KeyPackage directory: upload (verified), count, and atomic one-per-device claims."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from delivery.auth import current_device
from delivery.encoding import b64decode, b64encode
from delivery.errors import BadRequest, Conflict, Forbidden, NotFound
from delivery.mlsparse import KeyPackageSummary, parse_key_package
from delivery.principal import DevicePrincipal
from delivery.schema import devices, mls_key_packages, users
from delivery.security import normalize_username
from delivery.services import Services, get_services
from delivery.suites import check_usable, require_supported

router = APIRouter(prefix="/api/mls", tags=["key packages"])
_MAX_BIGINT = 2**63 - 1
ServicesDep = Annotated[Services, Depends(get_services)]
DeviceDep = Annotated[DevicePrincipal, Depends(current_device)]


class UploadRequest(BaseModel):
    """A batch of KeyPackages of the caller's device; at most one last-resort one."""

    model_config = ConfigDict(extra="forbid")
    key_packages: list[str] = Field(
        min_length=1, description="MLSMessage(KeyPackage) each, standard base64"
    )


class CountResponse(BaseModel):
    """The caller's device's stock in one cipher suite."""

    cipher_suite: int
    count: int
    last_resort: bool


class UploadResponse(BaseModel):
    """What the batch changed."""

    accepted: int = Field(description="newly stored KeyPackages")
    duplicates: int = Field(description="KeyPackages already stored (a retried upload)")
    count: int = Field(description="unclaimed regular KeyPackages of this device now, in "
                                   "the cipher suite of the batch's first KeyPackage")
    last_resort: bool = Field(description="whether the device has a last-resort KeyPackage "
                                          "in that suite")
    stock: list[CountResponse] = Field(description="the device's stock per cipher suite "
                                                   "of the batch")


class ClaimedKeyPackage(BaseModel):
    """One claimed KeyPackage."""

    device_id: str
    identity: str
    key_package: str = Field(description="MLSMessage(KeyPackage), standard base64")
    last_resort: bool


class ClaimResponse(BaseModel):
    """One KeyPackage per device of the user, and the devices that had none."""

    user_id: str
    key_packages: list[ClaimedKeyPackage]
    devices_without_key_packages: list[str]


def _check_ownership(kp: KeyPackageSummary, device: DevicePrincipal, now: int) -> None:
    if kp.identity != device.identity:
        raise Forbidden(
            f"KeyPackage credential identity {kp.identity!r} is not this device "
            f"({device.identity.decode()!r})",
            code="not_your_device",
        )
    if kp.signature_key != device.signature_key:
        raise Forbidden(
            "KeyPackage signature key is not this device's registered identity key",
            code="not_your_device",
        )
    check_usable(device.cipher_suite, kp.cipher_suite, "the KeyPackage")
    if kp.not_after <= now:
        raise BadRequest("KeyPackage lifetime has already ended", code="expired_key_package")


async def _stock(
    conn: AsyncConnection, device_pk: int, cipher_suite: int | None = None
) -> tuple[int, bool]:
    """(unclaimed regular KeyPackages, has a last-resort one) of a device, in one suite
    or (None) in all."""
    query = select(
        func.count().filter(~mls_key_packages.c.last_resort),
        func.count().filter(mls_key_packages.c.last_resort),
    ).where(
        mls_key_packages.c.device_id == device_pk,
        mls_key_packages.c.not_after > func.extract("epoch", func.now()),
    )
    if cipher_suite is not None:
        query = query.where(mls_key_packages.c.cipher_suite == cipher_suite)
    row = (await conn.execute(query)).one()
    return int(row[0]), bool(row[1])


@router.post("/key-packages", status_code=201, response_model=UploadResponse)
async def upload_key_packages(
    body: UploadRequest, device: DeviceDep, services: ServicesDep
) -> UploadResponse:
    """Store a batch of KeyPackages of the caller's device.

    Each must parse, verify (both signatures, lifetime), carry the caller's credential
    identity and registered signature key, and use a supported cipher suite whose
    signature scheme is that of the device's registered suite (a device keeps a stock
    per suite it offers, e.g. suite 1 and 0x004F). One per suite may carry the
    last_resort extension; it replaces the device's previous last-resort one of that
    suite. The batch is stored all-or-nothing.
    """
    settings = services.settings
    if len(body.key_packages) > settings.max_key_packages_per_upload:
        raise BadRequest(
            f"at most {settings.max_key_packages_per_upload} KeyPackages per upload",
            code="too_many_key_packages",
        )
    services.local_limits.check(
        f"kp-upload:{device.user_pk}", settings.rate_limits.key_package_upload,
        what="KeyPackage uploads",
    )
    raw = [b64decode(v, f"key_packages[{i}]") for i, v in enumerate(body.key_packages)]

    def verify_all() -> list[KeyPackageSummary]:
        out: list[KeyPackageSummary] = []
        for i, data in enumerate(raw):
            try:
                out.append(parse_key_package(data))
            except BadRequest as exc:
                exc.detail = f"key_packages[{i}]: {exc.detail}"
                raise
        return out

    # Signature checks are CPU work: keep them off the event loop for big batches.
    summaries = verify_all() if len(raw) <= 4 else await asyncio.to_thread(verify_all)
    now = int(time.time())
    refs: set[bytes] = set()
    for i, kp in enumerate(summaries):
        try:
            _check_ownership(kp, device, now)
        except (BadRequest, Forbidden) as exc:
            exc.detail = f"key_packages[{i}]: {exc.detail}"
            raise
        if kp.ref in refs:
            raise BadRequest(f"key_packages[{i}] repeats an earlier one", code="duplicate_in_batch")
        refs.add(kp.ref)
    suites = list(dict.fromkeys(kp.cipher_suite for kp in summaries))
    if any(sum(kp.last_resort for kp in summaries if kp.cipher_suite == s) > 1 for s in suites):
        raise BadRequest("at most one KeyPackage per cipher suite and upload may be last-resort",
                         code="too_many_last_resort")

    async def store(conn: AsyncConnection) -> UploadResponse:
        # Serialise uploads of one device so the stock limit holds under concurrency.
        await conn.execute(
            select(devices.c.id).where(devices.c.id == device.device_pk).with_for_update()
        )
        count, _ = await _stock(conn, device.device_pk)
        regular = sum(not kp.last_resort for kp in summaries)
        # The device offers these suites from now on (key directory, joinable groups).
        await conn.execute(
            text("UPDATE devices SET cipher_suites = ARRAY(SELECT DISTINCT s FROM "
                 "unnest(cipher_suites || CAST(:suites AS integer[])) AS s ORDER BY s) "
                 "WHERE id = :id AND NOT (cipher_suites @> CAST(:suites AS integer[]))"),
            {"id": device.device_pk, "suites": suites},
        )
        if count + regular > settings.max_key_packages_per_device:
            raise Conflict(
                f"a device may hold at most {settings.max_key_packages_per_device} unclaimed "
                f"KeyPackages; it has {count}",
                code="too_many_key_packages",
            )
        for last in (kp for kp in summaries if kp.last_resort):
            await conn.execute(
                delete(mls_key_packages).where(
                    mls_key_packages.c.device_id == device.device_pk,
                    mls_key_packages.c.cipher_suite == last.cipher_suite,
                    mls_key_packages.c.last_resort,
                    mls_key_packages.c.hash != last.ref,
                )
            )
        result = await conn.execute(
            pg_insert(mls_key_packages)
            .values(
                [
                    {
                        "user_id": device.user_pk,
                        "device_id": device.device_pk,
                        "cipher_suite": kp.cipher_suite,
                        "key_package_data": data,
                        "hash": kp.ref,
                        # An unbounded lifetime (2^64 - 1) does not fit a bigint.
                        "not_after": min(kp.not_after, _MAX_BIGINT),
                        "last_resort": kp.last_resort,
                    }
                    for kp, data in zip(summaries, raw, strict=True)
                ]
            )
            .on_conflict_do_nothing(index_elements=["hash"])
            .returning(mls_key_packages.c.id)
        )
        accepted = len(result.all())
        stock = []
        for suite in suites:
            count, has_last_resort = await _stock(conn, device.device_pk, suite)
            stock.append(CountResponse(cipher_suite=suite, count=count,
                                       last_resort=has_last_resort))
        return UploadResponse(
            accepted=accepted,
            duplicates=len(summaries) - accepted,
            count=stock[0].count,
            last_resort=stock[0].last_resort,
            stock=stock,
        )

    return await services.db.transaction(store)


@router.get("/key-packages/count", response_model=CountResponse)
async def count_key_packages(
    device: DeviceDep,
    services: ServicesDep,
    cipher_suite: Annotated[int | None, Query(ge=1, le=0xFFFF)] = None,
) -> CountResponse:
    """How many unclaimed, unexpired regular KeyPackages the caller's device has left in
    ``cipher_suite`` (default: the device's registered suite), and whether it has a
    last-resort one there."""
    suite = device.cipher_suite if cipher_suite is None else cipher_suite
    check_usable(device.cipher_suite, suite, "the query")

    async def fetch(conn: AsyncConnection) -> CountResponse:
        count, last_resort = await _stock(conn, device.device_pk, suite)
        return CountResponse(cipher_suite=suite, count=count, last_resort=last_resort)

    return await services.db.read(fetch)


class DeleteResponse(BaseModel):
    """How many KeyPackages were deleted."""

    deleted: int


@router.delete("/key-packages", response_model=DeleteResponse)
async def delete_key_packages(device: DeviceDep, services: ServicesDep) -> DeleteResponse:
    """Delete every KeyPackage of the caller's device, the last-resort one included
    (a device that is wiped or retired must not be added to new groups)."""

    async def wipe(conn: AsyncConnection) -> DeleteResponse:
        result = await conn.execute(
            delete(mls_key_packages).where(mls_key_packages.c.device_id == device.device_pk)
        )
        return DeleteResponse(deleted=result.rowcount)

    return await services.db.transaction(wipe)


# Take the oldest unexpired regular KeyPackage of one device; rows another transaction
# is claiming are skipped, so two concurrent claims can never return the same one.
_CLAIM_SQL = text(
    """
    DELETE FROM mls_key_packages
    WHERE id = (
        SELECT id FROM mls_key_packages
        WHERE device_id = :device AND NOT last_resort
          AND not_after > extract(epoch FROM now())
          AND cipher_suite = :suite
        ORDER BY id
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    )
    RETURNING key_package_data
    """
)


@router.get("/key-packages/{user_id}", response_model=ClaimResponse)
async def claim_key_packages(
    user_id: str,
    device: DeviceDep,
    services: ServicesDep,
    cipher_suite: Annotated[int | None, Query(ge=1, le=0xFFFF)] = None,
    device_id: Annotated[list[str] | None, Query(max_length=100)] = None,
) -> ClaimResponse:
    """Claim one KeyPackage for each device of ``user_id`` (except the caller's own),
    or only for the devices named by ``device_id`` (repeatable): adding a user who is
    partly in a group must not use up the KeyPackages of the devices already there.
    Named devices that are unknown, retired or the caller's own are listed as missing.

    Only KeyPackages of ``cipher_suite`` are handed out (default: each device's
    registered suite); a device with none in it is listed as missing (it does not offer
    that suite). A regular KeyPackage is handed out once and deleted; when a device has
    none left, its last-resort KeyPackage is returned and kept. Atomic under concurrency
    (``FOR UPDATE SKIP LOCKED``) and rate-limited per claiming user.
    """
    username = normalize_username(user_id)
    if cipher_suite is not None:
        require_supported(cipher_suite)
    await services.shared_limits.check(
        f"kp-claim:{device.user_pk}", services.settings.rate_limits.key_package_claim,
        what="KeyPackage claims",
    )

    async def claim(conn: AsyncConnection) -> ClaimResponse:
        user_pk = (
            await conn.execute(select(users.c.id).where(users.c.username == username))
        ).scalar()
        if user_pk is None:
            raise NotFound(f"no user {username!r}", code="unknown_user")
        targets = (
            await conn.execute(
                select(devices.c.id, devices.c.device_id, devices.c.cipher_suite)
                .where(and_(devices.c.user_id == user_pk, devices.c.id != device.device_pk,
                            devices.c.retired_at.is_(None)))
                .order_by(devices.c.id)
            )
        ).all()
        claimed: list[ClaimedKeyPackage] = []
        missing: list[str] = []
        if device_id is not None:
            wanted = set(device_id)
            missing = sorted(wanted - {t.device_id for t in targets})
            targets = [t for t in targets if t.device_id in wanted]
        for target in targets:
            identity = f"{username}/{target.device_id}"
            suite = target.cipher_suite if cipher_suite is None else cipher_suite
            data = (
                await conn.execute(_CLAIM_SQL, {"device": target.id, "suite": suite})
            ).scalar()
            last_resort = False
            if data is None:
                query = select(mls_key_packages.c.key_package_data).where(
                    mls_key_packages.c.device_id == target.id,
                    mls_key_packages.c.last_resort,
                    mls_key_packages.c.cipher_suite == suite,
                    mls_key_packages.c.not_after > func.extract("epoch", func.now()),
                )
                data = (await conn.execute(query)).scalar()
                last_resort = data is not None
            if data is None:
                missing.append(target.device_id)
                continue
            claimed.append(
                ClaimedKeyPackage(
                    device_id=target.device_id,
                    identity=identity,
                    key_package=b64encode(data),
                    last_resort=last_resort,
                )
            )
        return ClaimResponse(
            user_id=username, key_packages=claimed, devices_without_key_packages=missing
        )

    return await services.db.transaction(claim)
