"""Accepting group messages: validation, ordering, membership, Welcomes, batching.

Ordering. Every accepted message of a group takes ``mls_groups.last_seq + 1``
while its transaction holds the group's row lock (``SELECT ... FOR UPDATE``),
held until COMMIT. So sequence numbers are gap-free (a rolled-back transaction
rolls the counter back too), unique (the index ``(group_id, seq)`` would refuse
a duplicate anyway), and commit in sequence order: once a reader sees
``seq = n``, every ``seq < n`` is already visible. The WebSocket push relies on
that last property.

Batching (group commit). Holding the row lock across COMMIT means one group
can take at most one transaction per WAL flush. So each process queues the
posts that arrive for a group while a transaction for it is running and
accepts the queued ones together in the next transaction: one lock, one flush,
many messages. Each message is still validated on its own against the state the
previous ones left (a commit advances the epoch for the next), is stored only
if valid (nothing is written for a refused one before its refusal), and is
acknowledged only after the COMMIT that stored it returned. If a batch fails
in the database, its messages are retried one transaction each, so one bad
message cannot take others down with it.

Epochs. A commit or proposal is accepted only for the group's current epoch:
the first commit wins and advances it, later ones get 409 with the current
epoch. Application messages are accepted for the current epoch and a
configurable number of epochs before it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from delivery.db import Database
from delivery.encoding import encode_group_id
from delivery.errors import APIError, BadRequest, Conflict, Forbidden, NotFound
from delivery.hub import Hub
from delivery.membership import CommitPlan, Member, parse_identity, plan_commit
from delivery.mlsparse import (
    MessageSummary,
    ProposalSummary,
    WelcomeSummary,
    parse_group_message,
    parse_welcome,
)
from delivery.principal import DevicePrincipal

log = logging.getLogger("delivery.posting")

MAX_BATCH = 64

# -- SQL (asyncpg; see Database.raw_transaction for why not SQLAlchemy Core) --------------

_LOCK = """
    SELECT id, cipher_suite, epoch, last_seq FROM mls_groups WHERE group_id = $1 FOR UPDATE
"""
# Run after the lock was granted, as its own statement: under READ COMMITTED a
# statement sees what committed before it started, so this sees the previous lock
# holder's writes (a subquery inside the locking statement would not).
_CHECK = """
    SELECT (SELECT leaf_index FROM mls_group_members
            WHERE group_id = $1 AND device_id = $2 AND removed_seq IS NULL) AS leaf,
           (SELECT seq FROM mls_messages WHERE group_id = $1 AND digest = $3) AS dup_seq
"""
_DUPLICATE = """
    SELECT epoch, content_type, sender_device FROM mls_messages WHERE group_id = $1 AND seq = $2
"""
_STORE = """
    WITH bumped AS (
        UPDATE mls_groups SET last_seq = $2, epoch = $3, updated_at = now() WHERE id = $1
        RETURNING id
    )
    INSERT INTO mls_messages (group_id, seq, sender_device, sender_leaf, content_type, data,
                              digest, epoch, proposal_ref)
    SELECT id, $2, $4, $5, $6, $7, $8, $9, $10 FROM bumped
"""
_PROPOSALS = """
    SELECT proposal_ref, data FROM mls_messages
    WHERE group_id = $1 AND epoch = $2 AND content_type = 'proposal'
      AND proposal_ref = ANY($3::bytea[])
"""
_MEMBERS = """
    SELECT id, device_id, leaf_index FROM mls_group_members
    WHERE group_id = $1 AND removed_seq IS NULL
"""
_DEVICES = """
    SELECT d.id, d.user_id, u.username, d.device_id FROM devices d
    JOIN users u ON u.id = d.user_id WHERE u.username = ANY($1::text[])
"""
_REMOVE_MEMBER = "UPDATE mls_group_members SET removed_seq = $2 WHERE id = $1"
_ADD_MEMBER = """
    INSERT INTO mls_group_members (group_id, user_id, device_id, leaf_index, joined_epoch,
                                   joined_seq, key_package_ref, welcomed)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id
"""
_STORE_WELCOME = """
    INSERT INTO mls_messages (group_id, seq, sender_device, content_type, data, digest, epoch)
    VALUES ($1, NULL, $2, 'welcome', $3, $4, $5) RETURNING id
"""
_BUMP_INBOX = "UPDATE devices SET welcome_seq = welcome_seq + 1 WHERE id = $1 RETURNING welcome_seq"
_INBOX = """
    INSERT INTO mls_welcome_inbox (device_id, inbox_seq, message_id, group_id)
    VALUES ($1, $2, $3, $4)
"""
_MARK_WELCOMED = "UPDATE mls_group_members SET welcomed = true WHERE id = $1"
# The batch fast path: everything an application message or proposal needs, for a
# whole batch at once, and one multi-row insert for them.
_LEAVES = """
    SELECT device_id, leaf_index FROM mls_group_members
    WHERE group_id = $1 AND device_id = ANY($2::bigint[]) AND removed_seq IS NULL
"""
_KNOWN_DIGESTS = """
    SELECT digest, seq, epoch, content_type, sender_device FROM mls_messages
    WHERE group_id = $1 AND digest = ANY($2::bytea[])
"""
_STORE_MANY = """
    INSERT INTO mls_messages (group_id, seq, sender_device, sender_leaf, content_type, data,
                              digest, epoch, proposal_ref)
    SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::int[], $5::text[], $6::bytea[],
                             $7::bytea[], $8::bigint[], $9::bytea[])
"""
_SET_HEAD = "UPDATE mls_groups SET last_seq = $2, epoch = $3, updated_at = now() WHERE id = $1"
_WELCOME_TARGETS = """
    SELECT m.id, m.group_id, m.device_id, m.joined_epoch, m.key_package_ref, m.welcomed,
           g.group_id AS group_bytes, u.username, d.device_id AS public_device_id
    FROM mls_group_members m
    JOIN mls_groups g ON g.id = m.group_id
    JOIN devices d ON d.id = m.device_id
    JOIN users u ON u.id = d.user_id
    WHERE m.key_package_ref = ANY($1::bytea[]) AND m.removed_seq IS NULL
"""
_LEAF_OF = """
    SELECT leaf_index FROM mls_group_members
    WHERE group_id = $1 AND device_id = $2 AND removed_seq IS NULL
"""
_WELCOMED_COUNT = """
    SELECT count(*) FROM mls_group_members WHERE id = ANY($1::bigint[]) AND welcomed
"""


@dataclass(slots=True)
class GroupState:
    """The locked group row, kept current across the messages of one batch."""

    pk: int
    group_id: bytes
    cipher_suite: int
    epoch: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class Accepted:
    """What the client is told about an accepted (or already accepted) message."""

    group_id: str
    seq: int
    epoch: int
    content_type: str
    group_epoch: int
    duplicate: bool
    welcomed: list[str]


@dataclass(slots=True)
class Outcome:
    """An accepted message, and what to announce once its transaction committed."""

    accepted: Accepted
    group_pk: int | None = None
    seq: int | None = None
    welcomes: list[tuple[int, int]] = field(default_factory=list)  # (device pk, inbox seq)
    joined_device: int | None = None  # a device that joined by external commit

    def announce(self, hub: Hub) -> None:
        """Push to local streams and NOTIFY the other processes (after COMMIT only)."""
        if self.group_pk is not None and self.seq is not None:
            hub.message_committed(self.group_pk, self.seq)
        for device_pk, inbox_seq in self.welcomes:
            hub.welcome_committed(device_pk, inbox_seq)
        if self.joined_device is not None:
            hub.device_changed(self.joined_device)


@dataclass(frozen=True, slots=True)
class Submission:
    """One POSTed message, parsed, waiting for its group's next transaction."""

    device: DevicePrincipal
    data: bytes
    summary: MessageSummary
    digest: bytes
    welcome: WelcomeSummary | None
    welcome_data: bytes | None


# -- authorization --------------------------------------------------------------------


def authorize(summary: MessageSummary, leaf: int | None, group: GroupState, window: int) -> None:
    """Who may post what, and for which epoch (raises, or returns if acceptable)."""
    if summary.wire_format == "private_message":
        if summary.content_type != "application":
            raise BadRequest(
                "handshake messages (proposals and commits) must be sent as PublicMessage: "
                "the delivery service reads their proposals to track group membership",
                code="encrypted_handshake",
            )
    elif summary.content_type == "application":
        raise BadRequest(
            "application messages must be PrivateMessage (RFC 9420 §6)", code="invalid_mls"
        )
    sender = summary.sender_type
    if summary.wire_format == "private_message" or sender == "member":
        if leaf is None:
            raise Forbidden("this device is not a member of the group", code="not_a_member")
        if sender == "member" and summary.sender_leaf != leaf:
            raise Forbidden(
                f"the message is from leaf {summary.sender_leaf}, but this device holds "
                f"leaf {leaf}",
                code="not_your_leaf",
            )
    elif sender == "new_member_commit":
        if summary.content_type != "commit":
            raise BadRequest("new_member_commit sender on a non-commit", code="invalid_mls")
    elif sender == "new_member_proposal":
        kinds = [p.proposal_type for p in summary.proposals]
        if summary.content_type != "proposal" or kinds != ["add"]:
            raise BadRequest("a new_member_proposal must be an Add proposal", code="invalid_mls")
    else:
        raise BadRequest(
            f"sender type {sender!r} is not supported by this delivery service",
            code="unsupported_sender",
        )

    if summary.epoch > group.epoch:
        raise BadRequest(
            f"epoch {summary.epoch} is ahead of the group's epoch {group.epoch}",
            code="future_epoch",
        )
    if summary.content_type == "application":
        if summary.epoch < group.epoch - window:
            raise Conflict(
                f"epoch {summary.epoch} is too old: the group is at epoch {group.epoch} and "
                f"application messages are accepted for {window} epochs back",
                code="stale_epoch",
                current_epoch=group.epoch,
                last_seq=group.last_seq,
            )
    elif summary.epoch != group.epoch:
        raise Conflict(
            f"{summary.content_type} for epoch {summary.epoch}, but the group is at epoch "
            f"{group.epoch}: process the newer messages and retry",
            code="stale_epoch",
            current_epoch=group.epoch,
            last_seq=group.last_seq,
        )


# -- one message inside a transaction ----------------------------------------------------


async def _commit_proposals(
    conn: asyncpg.Connection[Any], group: GroupState, sub: Submission
) -> list[ProposalSummary]:
    """All proposals of a commit in its order: by-value ones from the summary, and
    by-reference ones resolved through the stored PublicMessage proposals of this
    group and epoch (re-read from their stored bytes)."""
    summary = sub.summary
    resolved: dict[bytes, ProposalSummary] = {}
    if summary.proposal_refs:
        for row in await conn.fetch(_PROPOSALS, group.pk, group.epoch, summary.proposal_refs):
            stored = parse_group_message(row["data"], group.cipher_suite)
            resolved[row["proposal_ref"]] = stored.proposals[0]
    values = iter(summary.proposals)
    refs = iter(summary.proposal_refs)
    ordered: list[ProposalSummary] = []
    for is_ref in summary.by_reference:
        if not is_ref:
            ordered.append(next(values))
            continue
        ref = next(refs)
        if ref not in resolved:
            raise BadRequest(
                f"the commit references proposal {ref.hex()}, which was not sent to this "
                f"group in epoch {group.epoch}",
                code="unknown_proposal",
            )
        ordered.append(resolved[ref])
    return ordered


async def _resolve_devices(
    conn: asyncpg.Connection[Any], identities: list[bytes]
) -> dict[bytes, tuple[int, int]]:
    """Map credential identities to (device pk, user pk); unknown ones are a 400."""
    wanted = {ident: parse_identity(ident) for ident in identities}
    if not wanted:
        return {}
    rows = await conn.fetch(_DEVICES, sorted({u for u, _ in wanted.values()}))
    known = {(r["username"], r["device_id"]): (r["id"], r["user_id"]) for r in rows}
    out: dict[bytes, tuple[int, int]] = {}
    for ident, key in wanted.items():
        if key not in known:
            raise BadRequest(
                f"an Add proposal names {ident.decode()!r}, which is not a registered device",
                code="unknown_device",
            )
        out[ident] = known[key]
    return out


def _check_welcome(welcome: WelcomeSummary, group: GroupState, plan: CommitPlan) -> None:
    """A Welcome sent with a commit must name only KeyPackages that commit adds."""
    if welcome.cipher_suite != group.cipher_suite:
        raise BadRequest(
            f"the Welcome's cipher suite {welcome.cipher_suite} is not the group's "
            f"({group.cipher_suite})",
            code="cipher_suite_mismatch",
        )
    added = {j.key_package_ref for j in plan.added}
    unknown = [r for r in welcome.new_member_refs if r not in added]
    if unknown or not welcome.new_member_refs:
        what = unknown[0].hex() if unknown else "none"
        raise BadRequest(
            f"the Welcome names KeyPackage {what}, which this commit does not add",
            code="welcome_mismatch",
        )


async def deliver_welcome(
    conn: asyncpg.Connection[Any],
    group_pk: int,
    welcome_data: bytes,
    recipients: list[tuple[int, int, int]],  # (membership row id, device pk, joined epoch)
    sender_device: int,
) -> list[tuple[int, int]]:
    """Store one Welcome and put it in each recipient device's inbox, in inbox order.

    Returns (device pk, inbox seq) of each delivery, to announce after COMMIT.
    """
    epoch = max(r[2] for r in recipients)
    message_id = await conn.fetchval(
        _STORE_WELCOME, group_pk, sender_device, welcome_data,
        hashlib.sha256(welcome_data).digest(), epoch,
    )
    delivered: list[tuple[int, int]] = []
    # Lock recipient devices in a fixed order: two Welcomes to overlapping devices
    # cannot deadlock, and each device's inbox counter stays gap-free.
    for row_id, device_pk, _ in sorted(recipients, key=lambda r: r[1]):
        inbox_seq = await conn.fetchval(_BUMP_INBOX, device_pk)
        await conn.execute(_INBOX, device_pk, inbox_seq, message_id, group_pk)
        await conn.execute(_MARK_WELCOMED, row_id)
        delivered.append((device_pk, inbox_seq))
    return delivered


async def _accept_one(
    conn: asyncpg.Connection[Any], group: GroupState, sub: Submission, window: int
) -> Outcome:
    """Validate and store one message. Everything that can refuse it runs before its
    first write, so a refused message leaves nothing behind in the batch's transaction."""
    device, summary = sub.device, sub.summary
    if group.cipher_suite != device.cipher_suite:
        raise BadRequest(
            f"the group uses cipher suite {group.cipher_suite}, this device "
            f"{device.cipher_suite}",
            code="cipher_suite_mismatch",
        )
    check = await conn.fetchrow(_CHECK, group.pk, device.device_pk, sub.digest)
    assert check is not None
    if check["dup_seq"] is not None:
        return await _duplicate(conn, group, check["dup_seq"], device)
    authorize(summary, check["leaf"], group, window)

    seq = group.last_seq + 1
    new_epoch = group.epoch
    plan: CommitPlan | None = None
    joiners: dict[bytes, tuple[int, int]] = {}
    if summary.content_type == "commit":
        proposals = await _commit_proposals(conn, group, sub)
        members = [
            Member(r["id"], r["device_id"], r["leaf_index"])
            for r in await conn.fetch(_MEMBERS, group.pk)
        ]
        plan = plan_commit(summary.sender_type, proposals, members, device.device_pk)
        joiners = await _resolve_devices(conn, [j.identity for j in plan.added])
        staying = {m.device_pk for m in members} - {m.device_pk for m in plan.removed}
        for identity, (joiner_pk, _) in joiners.items():
            if joiner_pk in staying:
                raise BadRequest(
                    f"the commit adds {identity.decode()!r}, which is already a member",
                    code="invalid_commit",
                )
        if sub.welcome is not None:
            _check_welcome(sub.welcome, group, plan)
        new_epoch = group.epoch + 1

    # -- from here on nothing refuses the message: write it --
    await conn.execute(
        _STORE, group.pk, seq, new_epoch, device.device_pk, summary.sender_leaf,
        summary.content_type, sub.data, sub.digest, summary.epoch, summary.proposal_ref,
    )
    welcomed: list[str] = []
    deliveries: list[tuple[int, int]] = []
    if plan is not None:
        rows_by_ref = await _apply_plan(conn, group, plan, joiners, device, seq, new_epoch)
        if sub.welcome is not None and sub.welcome_data is not None:
            recipients = []
            for ref in sub.welcome.new_member_refs:
                row_id, device_pk, identity = rows_by_ref[ref]
                recipients.append((row_id, device_pk, new_epoch))
                welcomed.append(identity.decode())
            deliveries = await deliver_welcome(
                conn, group.pk, sub.welcome_data, recipients, device.device_pk
            )
    group.last_seq, group.epoch = seq, new_epoch
    accepted = Accepted(
        group_id=encode_group_id(group.group_id),
        seq=seq,
        epoch=summary.epoch,
        content_type=summary.content_type,
        group_epoch=new_epoch,
        duplicate=False,
        welcomed=welcomed,
    )
    external = plan is not None and plan.external_joiner_leaf is not None
    joined = device.device_pk if external else None
    return Outcome(accepted, group.pk, seq, deliveries, joined)


async def _duplicate(
    conn: asyncpg.Connection[Any], group: GroupState, seq: int, device: DevicePrincipal
) -> Outcome:
    """A retried POST of bytes already accepted: answer as the first time, store nothing."""
    row = await conn.fetchrow(_DUPLICATE, group.pk, seq)
    assert row is not None
    if row["sender_device"] != device.device_pk:
        raise Conflict(
            "this exact message was already posted by another device", code="duplicate_message"
        )
    return Outcome(
        Accepted(
            group_id=encode_group_id(group.group_id),
            seq=seq,
            epoch=row["epoch"],
            content_type=row["content_type"],
            group_epoch=group.epoch,
            duplicate=True,
            welcomed=[],
        )
    )


async def _apply_plan(
    conn: asyncpg.Connection[Any],
    group: GroupState,
    plan: CommitPlan,
    joiners: dict[bytes, tuple[int, int]],
    device: DevicePrincipal,
    seq: int,
    new_epoch: int,
) -> dict[bytes, tuple[int, int, bytes]]:
    """Write the membership change; return the new rows by KeyPackageRef."""
    for member in plan.removed:
        await conn.execute(_REMOVE_MEMBER, member.row_id, seq)
    by_ref: dict[bytes, tuple[int, int, bytes]] = {}
    for joiner in plan.added:
        device_pk, user_pk = joiners[joiner.identity]
        row_id = await conn.fetchval(
            _ADD_MEMBER, group.pk, user_pk, device_pk, joiner.leaf_index, new_epoch, seq,
            joiner.key_package_ref, False,
        )
        if joiner.key_package_ref is not None:
            by_ref[joiner.key_package_ref] = (row_id, device_pk, joiner.identity)
    if plan.external_joiner_leaf is not None:
        # An external joiner built the group state itself: no Welcome is coming.
        await conn.execute(
            _ADD_MEMBER, group.pk, device.user_pk, device.device_pk, plan.external_joiner_leaf,
            new_epoch, seq, None, True,
        )
    return by_ref


class _Batch:
    """Accepts a batch's messages in order with as few round trips as possible.

    Application messages and proposals (the bulk) are checked against membership
    and digests read once per batch, and stored by one multi-row insert. A commit
    goes through :func:`_accept_one` after the pending rows are written (it reads
    the proposals and membership they may change), and membership is re-read
    after it.
    """

    def __init__(self, conn: asyncpg.Connection[Any], group: GroupState, window: int) -> None:
        self.conn = conn
        self.group = group
        self.window = window
        self.leaves: dict[int, int] = {}
        self.seen: dict[bytes, tuple[int, int, str, int]] = {}  # digest -> seq, epoch, ...
        self.rows: list[tuple[Any, ...]] = []

    async def run(self, subs: list[Submission]) -> list[Outcome | APIError]:
        if len(subs) == 1:
            # Alone (the common case across many groups): two statements, not five.
            try:
                return [await _accept_one(self.conn, self.group, subs[0], self.window)]
            except APIError as exc:
                return [exc]
        devices = sorted({s.device.device_pk for s in subs})
        await self._load_leaves(devices)
        for r in await self.conn.fetch(_KNOWN_DIGESTS, self.group.pk, [s.digest for s in subs]):
            self.seen[r["digest"]] = (r["seq"], r["epoch"], r["content_type"], r["sender_device"])
        results: list[Outcome | APIError] = []
        for sub in subs:
            try:
                if sub.summary.content_type == "commit":
                    await self.flush()
                    outcome = await _accept_one(self.conn, self.group, sub, self.window)
                    if not outcome.accepted.duplicate:
                        a = outcome.accepted
                        self.seen[sub.digest] = (a.seq, a.epoch, a.content_type,
                                                 sub.device.device_pk)
                        await self._load_leaves(devices)
                    results.append(outcome)
                else:
                    results.append(self._accept_plain(sub))
            except APIError as exc:
                results.append(exc)
        await self.flush()
        return results

    async def _load_leaves(self, devices: list[int]) -> None:
        rows = await self.conn.fetch(_LEAVES, self.group.pk, devices)
        self.leaves = {r["device_id"]: r["leaf_index"] for r in rows}

    def _accept_plain(self, sub: Submission) -> Outcome:
        group, device, summary = self.group, sub.device, sub.summary
        if group.cipher_suite != device.cipher_suite:
            raise BadRequest(
                f"the group uses cipher suite {group.cipher_suite}, this device "
                f"{device.cipher_suite}",
                code="cipher_suite_mismatch",
            )
        seen = self.seen.get(sub.digest)
        if seen is not None:
            seq, epoch, content_type, sender = seen
            if sender != device.device_pk:
                raise Conflict("this exact message was already posted by another device",
                               code="duplicate_message")
            return Outcome(Accepted(encode_group_id(group.group_id), seq, epoch, content_type,
                                    group.epoch, True, []))
        authorize(summary, self.leaves.get(device.device_pk), group, self.window)
        seq = group.last_seq + 1
        group.last_seq = seq
        self.rows.append((seq, device.device_pk, summary.sender_leaf, summary.content_type,
                          sub.data, sub.digest, summary.epoch, summary.proposal_ref))
        self.seen[sub.digest] = (seq, summary.epoch, summary.content_type, device.device_pk)
        accepted = Accepted(encode_group_id(group.group_id), seq, summary.epoch,
                            summary.content_type, group.epoch, False, [])
        return Outcome(accepted, group.pk, seq)

    async def flush(self) -> None:
        """Write the pending rows and the group's new head."""
        if not self.rows:
            return
        columns = list(zip(*self.rows, strict=True))
        await self.conn.execute(_STORE_MANY, self.group.pk, *columns)
        await self.conn.execute(_SET_HEAD, self.group.pk, self.group.last_seq, self.group.epoch)
        self.rows = []


# -- batching -------------------------------------------------------------------------


@dataclass(slots=True)
class _Waiting:
    submission: Submission
    future: asyncio.Future[Outcome]


class Sequencer:
    """Per process: accepts the posts of each group in batches, one transaction each."""

    def __init__(self, db: Database, hub: Hub, epoch_window: int) -> None:
        self._db = db
        self._hub = hub
        self._window = epoch_window
        self._queues: dict[bytes, list[_Waiting]] = {}
        self._runners: set[asyncio.Task[None]] = set()

    async def submit(self, submission: Submission) -> Outcome:
        """Queue a message for its group's next transaction; wait until it committed."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(submission, loop.create_future())
        key = submission.summary.group_id
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(waiting)  # a runner is active for this group and will take it
        else:
            self._queues[key] = [waiting]
            task = loop.create_task(self._run(key))
            self._runners.add(task)
            task.add_done_callback(self._runners.discard)
        # Shielded: a client that disconnects does not cancel the batch; its message
        # may still be stored (a retry then finds it as a duplicate).
        return await asyncio.shield(waiting.future)

    async def _run(self, key: bytes) -> None:
        queue = self._queues[key]
        batch: list[_Waiting] = []
        try:
            while queue:
                batch = queue[:MAX_BATCH]
                del queue[:MAX_BATCH]
                await self._run_batch(key, batch)
        finally:
            del self._queues[key]
            # Only if this task was cancelled (shutdown): nobody may wait forever.
            gone = APIError("the server is shutting down", code="unavailable", status=503)
            for waiting in [*batch, *queue]:
                _settle(waiting, gone)

    async def _run_batch(self, key: bytes, batch: list[_Waiting]) -> None:
        window = self._window

        async def work(conn: asyncpg.Connection[Any]) -> list[Outcome | APIError]:
            row = await conn.fetchrow(_LOCK, key)
            if row is None:
                raise NotFound(f"no group {encode_group_id(key)}", code="unknown_group")
            group = GroupState(row["id"], key, row["cipher_suite"], row["epoch"], row["last_seq"])
            return await _Batch(conn, group, window).run([w.submission for w in batch])

        try:
            results = await self._db.raw_transaction(work)
        except APIError as exc:
            from_database = exc.__cause__ is not None and exc.status != 503
            if not (from_database and len(batch) > 1):
                # Concerns the whole batch: unknown group, database unavailable.
                for waiting in batch:
                    _settle(waiting, exc)
                return
            error: BaseException = exc
        except Exception as exc:  # noqa: BLE001 - every waiting client must get an answer
            error = exc
        else:
            for waiting, result in zip(batch, results, strict=True):
                if isinstance(result, Outcome):
                    result.announce(self._hub)
                _settle(waiting, result)
            return
        if len(batch) > 1:
            # One message broke the transaction: give each its own, so the others pass.
            log.warning("batch of %d failed (%s); retrying singly", len(batch),
                        type(error).__name__)
            for waiting in batch:
                await self._run_batch(key, [waiting])
            return
        log.error("storing a message failed", exc_info=error)
        _settle(batch[0], APIError("internal error", code="internal", status=500))


def _settle(waiting: _Waiting, result: Outcome | APIError) -> None:
    if waiting.future.done():
        return
    if isinstance(result, APIError):
        waiting.future.set_exception(result)
    else:
        waiting.future.set_result(result)


async def post_message(
    sequencer: Sequencer, device: DevicePrincipal, data: bytes, welcome_data: bytes | None
) -> Accepted:
    """Parse, then accept one group message (and its Welcome) in its group's next batch."""
    # Parsing needs the suite before the group is known; a device only joins groups of
    # its own suite, which the transaction checks.
    summary = parse_group_message(data, device.cipher_suite)
    welcome = parse_welcome(welcome_data) if welcome_data is not None else None
    if welcome is not None and summary.content_type != "commit":
        raise BadRequest("a Welcome can only accompany a commit", code="welcome_without_commit")
    submission = Submission(
        device, data, summary, hashlib.sha256(data).digest(), welcome, welcome_data
    )
    outcome = await sequencer.submit(submission)
    return outcome.accepted


async def post_welcome(
    db: Database, hub: Hub, device: DevicePrincipal, welcome_data: bytes
) -> tuple[str, list[str]]:
    """Route a Welcome to the devices that accepted commits added with its KeyPackages;
    returns the group id and the identities it went to."""
    welcome = parse_welcome(welcome_data)
    if not welcome.new_member_refs:
        raise BadRequest("the Welcome names no new members", code="invalid_mls")

    async def work(conn: asyncpg.Connection[Any]) -> tuple[str, list[str], list[tuple[int, int]]]:
        rows = await conn.fetch(_WELCOME_TARGETS, welcome.new_member_refs)
        found = {r["key_package_ref"]: r for r in rows}
        missing = [r for r in welcome.new_member_refs if r not in found]
        if missing:
            raise Conflict(
                f"no accepted commit added KeyPackage {missing[0].hex()}: a Welcome is "
                "delivered only after its commit was accepted (or send them together)",
                code="commit_not_accepted",
            )
        if len({r["group_id"] for r in rows}) != 1:
            raise BadRequest(
                "the Welcome's new members belong to different groups", code="welcome_mismatch"
            )
        locked = await conn.fetchrow(_LOCK, rows[0]["group_bytes"])
        assert locked is not None
        if welcome.cipher_suite != locked["cipher_suite"]:
            raise BadRequest(
                f"the Welcome's cipher suite {welcome.cipher_suite} is not the group's "
                f"({locked['cipher_suite']})",
                code="cipher_suite_mismatch",
            )
        if await conn.fetchval(_LEAF_OF, locked["id"], device.device_pk) is None:
            raise Forbidden("this device is not a member of the group", code="not_a_member")
        # Re-read under the group lock: a concurrent Welcome may have been routed first.
        if await conn.fetchval(_WELCOMED_COUNT, [r["id"] for r in rows]):
            raise Conflict(
                "a Welcome was already delivered to these members", code="already_welcomed"
            )
        deliveries = await deliver_welcome(
            conn,
            locked["id"],
            welcome_data,
            [(r["id"], r["device_id"], r["joined_epoch"]) for r in rows],
            device.device_pk,
        )
        names = [f"{r['username']}/{r['public_device_id']}" for r in rows]
        return encode_group_id(rows[0]["group_bytes"]), names, deliveries

    group_id, names, deliveries = await db.raw_transaction(work)
    for device_pk, inbox_seq in deliveries:
        hub.welcome_committed(device_pk, inbox_seq)
    return group_id, names
