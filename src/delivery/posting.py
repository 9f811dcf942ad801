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
import hmac
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from delivery.access import access_of, refuse_non_member, unknown_group
from delivery.db import Database
from delivery.encoding import encode_group_id
from delivery.errors import APIError, BadRequest, Conflict, Forbidden
from delivery.hub import Hub
from delivery.membership import CommitPlan, Member, parse_identity, plan_commit
from delivery.mlsparse import (
    MessageSummary,
    ProposalSummary,
    PublicGroup,
    WelcomeSummary,
    check_group_info_follows,
    parse_group_info,
    parse_group_message,
    parse_welcome,
    peek_group_id,
    verify_external_join,
    verify_member_signature,
)
from delivery.principal import DevicePrincipal
from delivery.suites import usable_suites

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
    SELECT m.id, m.device_id, m.leaf_index, m.user_id, d.retired_at IS NOT NULL AS retired,
           u.username, d.device_id AS public_device_id, d.signature_key
    FROM mls_group_members m
    JOIN devices d ON d.id = m.device_id
    JOIN users u ON u.id = d.user_id
    WHERE m.group_id = $1 AND m.removed_seq IS NULL
"""
_DEVICES = """
    SELECT d.id, d.user_id, u.username, d.device_id, d.signature_key, d.cipher_suite,
           d.retired_at IS NOT NULL AS retired
    FROM devices d JOIN users u ON u.id = d.user_id WHERE u.username = ANY($1::text[])
"""
_REMOVE_MEMBER = """
    UPDATE mls_group_members SET removed_seq = $2, removed_retired = $3 WHERE id = $1
"""
_GROUP_SUITE = "SELECT cipher_suite FROM mls_groups WHERE group_id = $1"
_SUITE_CACHE_MAX = 100_000
_STORED_GROUP_INFO = "SELECT epoch, data FROM mls_group_infos WHERE group_id = $1"
_SAVE_GROUP_INFO = """
    INSERT INTO mls_group_infos (group_id, epoch, data) VALUES ($1, $2, $3)
    ON CONFLICT (group_id) DO UPDATE SET epoch = EXCLUDED.epoch, data = EXCLUDED.data,
                                         updated_at = now()
"""
# A user who gains a device in the group no longer needs the invitations they hold.
_CONSUME_INVITATIONS = """
    UPDATE mls_invitations SET consumed_at = now(), consumed_by_device = $3
    WHERE group_id = $1 AND user_id = $2 AND consumed_at IS NULL AND revoked_at IS NULL
"""
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
           g.group_id AS group_bytes, u.username, d.device_id AS public_device_id,
           EXISTS (SELECT 1 FROM mls_group_members p
                   WHERE p.group_id = m.group_id AND p.device_id = $2
                     AND p.removed_seq IS NULL) AS poster_member
    FROM mls_group_members m
    JOIN mls_groups g ON g.id = m.group_id
    JOIN devices d ON d.id = m.device_id
    JOIN users u ON u.id = d.user_id
    WHERE m.key_package_ref = ANY($1::bytea[]) AND m.removed_seq IS NULL
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
    seated_users: list[int] = field(default_factory=list)  # users that gained a device

    def announce(self, hub: Hub) -> None:
        """Push to local streams and NOTIFY the other processes (after COMMIT only)."""
        if self.group_pk is not None and self.seq is not None:
            hub.message_committed(self.group_pk, self.seq)
        for device_pk, inbox_seq in self.welcomes:
            hub.welcome_committed(device_pk, inbox_seq)
        if self.joined_device is not None:
            hub.device_changed(self.joined_device)
        if self.group_pk is not None:
            for user_pk in self.seated_users:
                hub.announce_joinable(user_pk, self.group_pk)


@dataclass(frozen=True, slots=True)
class Submission:
    """One POSTed message, parsed, waiting for its group's next transaction."""

    device: DevicePrincipal
    data: bytes
    summary: MessageSummary
    digest: bytes
    welcome: WelcomeSummary | None
    welcome_data: bytes | None
    # A commit's GroupInfo of the epoch it creates, read and self-verified.
    group_info: PublicGroup | None = None
    group_info_data: bytes | None = None


class GroupInfoCache:
    """Parsed stored GroupInfos by group (LRU): a group's commits would otherwise
    parse and verify the same GroupInfo again each time."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._items: OrderedDict[int, tuple[bytes, PublicGroup]] = OrderedDict()

    def get(self, group_pk: int, data: bytes) -> PublicGroup:
        """The parsed GroupInfo ``data`` of the group (verified once)."""
        digest = hashlib.sha256(data).digest()
        hit = self._items.get(group_pk)
        if hit is not None and hmac.compare_digest(hit[0], digest):
            self._items.move_to_end(group_pk)
            return hit[1]
        group = parse_group_info(data)
        self._items[group_pk] = (digest, group)
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return group

    def put(self, group_pk: int, data: bytes, group: PublicGroup) -> None:
        """Remember a GroupInfo this process just verified and stored."""
        self._items[group_pk] = (hashlib.sha256(data).digest(), group)
        self._items.move_to_end(group_pk)
        if len(self._items) > self._size:
            self._items.popitem(last=False)


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


@dataclass(frozen=True, slots=True)
class _Device:
    """A registered device as the key directory knows it."""

    pk: int
    user_pk: int
    identity: bytes
    signature_key: bytes


async def _check_adds(
    conn: asyncpg.Connection[Any], adds: list[ProposalSummary], cipher_suite: int
) -> dict[bytes, _Device]:
    """The key-directory rule for Adds, as for uploads: each added KeyPackage names an
    active registered device (``<user_id>/<device_id>``) of the group's cipher suite and
    carries that device's registered signature key. Returns the devices by identity;
    any violation refuses the whole message (400)."""
    wanted: dict[bytes, tuple[str, str]] = {}
    for p in adds:
        if p.added_identity is None or p.added_key_package is None:
            raise BadRequest("an Add proposal without a basic credential", code="invalid_mls")
        wanted[p.added_identity] = parse_identity(p.added_identity)
    if not wanted:
        return {}
    rows = await conn.fetch(_DEVICES, sorted({u for u, _ in wanted.values()}))
    known = {(r["username"], r["device_id"]): r for r in rows}
    out: dict[bytes, _Device] = {}
    for p in adds:
        assert p.added_identity is not None and p.added_key_package is not None
        name = p.added_identity.decode()
        row = known.get(wanted[p.added_identity])
        if row is None:
            raise BadRequest(
                f"an Add proposal names {name!r}, which is not a registered device",
                code="unknown_device",
            )
        if row["retired"]:
            raise BadRequest(f"an Add proposal names {name!r}, a retired device",
                             code="retired_device")
        if not hmac.compare_digest(p.added_key_package.signature_key, row["signature_key"]):
            raise BadRequest(
                f"the KeyPackage added for {name!r} does not carry that device's registered "
                "signature key",
                code="key_mismatch",
            )
        if (cipher_suite not in usable_suites(row["cipher_suite"])
                or p.added_key_package.cipher_suite != cipher_suite):
            raise BadRequest(f"the KeyPackage added for {name!r} is not of the group's cipher "
                             f"suite {cipher_suite}", code="cipher_suite_mismatch")
        out[p.added_identity] = _Device(row["id"], row["user_id"], p.added_identity,
                                        row["signature_key"])
    return out


def check_tree_members(group_info: PublicGroup, expected: dict[int, tuple[bytes, bytes]]) -> None:
    """The GroupInfo's tree holds exactly the devices the server's membership says,
    each leaf with its device's identity and registered signature key."""
    tree = {m.leaf_index: m for m in group_info.members()}
    if set(tree) != set(expected):
        raise BadRequest(
            f"the GroupInfo's tree has members at leaves {sorted(tree)}, but after this "
            f"commit the group has members at leaves {sorted(expected)}",
            code="invalid_group_info",
        )
    for leaf, (identity, key) in expected.items():
        member = tree[leaf]
        if member.identity != identity or not hmac.compare_digest(member.signature_key, key):
            raise BadRequest(
                f"the GroupInfo's leaf {leaf} is not {identity.decode()!r} with its registered "
                "signature key",
                code="invalid_group_info",
            )


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


async def _stored_group_info(
    conn: asyncpg.Connection[Any], group: GroupState, cache: GroupInfoCache
) -> PublicGroup | None:
    """The stored GroupInfo of the group's current epoch, if there is one."""
    row = await conn.fetchrow(_STORED_GROUP_INFO, group.pk)
    if row is None or row["epoch"] != group.epoch:
        return None
    try:
        return cache.get(group.pk, row["data"])
    except BadRequest as exc:  # stored after verification: a library change broke it
        log.warning("stored GroupInfo of group %d no longer parses: %s", group.pk, exc.detail)
        return None


async def _refuse_outsider(
    conn: asyncpg.Connection[Any], group: GroupState, device: DevicePrincipal, joining: bool
) -> None:
    """For a device that holds no leaf: may it join (an external commit or a new-member
    proposal, by its user's seat or an invitation)? Raises if not."""
    access = await access_of(conn, group.pk, device.device_pk, device.user_pk)
    if not joining:
        raise refuse_non_member(access, group.group_id)
    if access.may_join:
        return
    if access.knows_group:
        raise Forbidden(
            "this device may not join the group: its user has no seat in it and no "
            "invitation",
            code="not_authorized",
        )
    raise unknown_group(group.group_id)


async def _accept_one(
    conn: asyncpg.Connection[Any], group: GroupState, sub: Submission, window: int,
    cache: GroupInfoCache,
) -> Outcome:
    """Validate and store one message. Everything that can refuse it runs before its
    first write, so a refused message leaves nothing behind in the batch's transaction."""
    device, summary = sub.device, sub.summary
    if group.cipher_suite not in usable_suites(device.cipher_suite):
        raise BadRequest(
            f"the group uses cipher suite {group.cipher_suite}, which this device's "
            f"signature key (suite {device.cipher_suite}) cannot sign in",
            code="cipher_suite_mismatch",
        )
    check = await conn.fetchrow(_CHECK, group.pk, device.device_pk, sub.digest)
    assert check is not None
    if check["dup_seq"] is not None:
        return await _duplicate(conn, group, check["dup_seq"], device)
    leaf = check["leaf"]
    joining = summary.sender_type in {"new_member_commit", "new_member_proposal"}
    if leaf is None:
        await _refuse_outsider(conn, group, device, joining)
    authorize(summary, leaf, group, window)
    plan: CommitPlan | None = None
    joiners: dict[bytes, _Device] = {}
    new_epoch, current = group.epoch, None
    if summary.content_type != "application":
        current = await _stored_group_info(conn, group, cache)
        if summary.sender_type == "member" and current is not None:
            verify_member_signature(current, sub.data)
    if summary.content_type == "proposal":
        # An Add is checked when proposed, and again when a commit includes it.
        joiners = await _check_adds(
            conn, [p for p in summary.proposals if p.proposal_type == "add"], group.cipher_suite
        )
        if summary.sender_type == "new_member_proposal" and device.identity not in joiners:
            raise BadRequest("a new-member proposal must add the posting device itself",
                             code="invalid_mls")
    elif summary.content_type == "commit":
        if summary.sender_type == "new_member_commit":
            # Authorized above; an invitation that was the reason is consumed below.
            if current is None:
                raise Conflict(
                    "the group has no GroupInfo of its current epoch to verify an external "
                    "commit against; a member's next commit provides one",
                    code="no_group_info",
                )
            joined = verify_external_join(current, sub.data)
            if joined.joiner.identity != device.identity or not hmac.compare_digest(
                joined.joiner.signature_key, device.signature_key
            ):
                raise BadRequest(
                    "the external commit's new leaf must be this device: credential "
                    f"{device.identity.decode()!r} with its registered signature key",
                    code="invalid_external_commit",
                )
            committer_leaf = joined.joiner.leaf_index
        else:
            assert summary.sender_leaf is not None
            committer_leaf = summary.sender_leaf
        proposals = await _commit_proposals(conn, group, sub)
        rows = await conn.fetch(_MEMBERS, group.pk)
        members = [Member(r["id"], r["device_id"], r["leaf_index"], r["user_id"], r["retired"])
                   for r in rows]
        plan = plan_commit(summary.sender_type, proposals, members, device.device_pk,
                           device.user_pk)
        joiners = await _check_adds(
            conn, [p for p in proposals if p.proposal_type == "add"], group.cipher_suite
        )
        staying = {m.device_pk for m in members} - {m.device_pk for m in plan.removed}
        for identity, joiner in joiners.items():
            if joiner.pk in staying:
                raise BadRequest(
                    f"the commit adds {identity.decode()!r}, which is already a member",
                    code="invalid_commit",
                )
        if plan.external_joiner_leaf is not None and plan.external_joiner_leaf != committer_leaf:
            raise BadRequest(
                f"the external commit's leaf {committer_leaf} is not the leftmost free leaf "
                f"{plan.external_joiner_leaf}",
                code="invalid_external_commit",
            )
        if sub.welcome is not None:
            _check_welcome(sub.welcome, group, plan)
        # The GroupInfo of the new epoch: it follows this commit and its tree holds
        # exactly the members the server now tracks, with their registered keys.
        assert sub.group_info is not None
        check_group_info_follows(current, sub.data, sub.group_info, committer_leaf)
        removed = {m.row_id for m in plan.removed}
        expected = {
            r["leaf_index"]: (f"{r['username']}/{r['public_device_id']}".encode(),
                              bytes(r["signature_key"]))
            for r in rows if r["id"] not in removed
        }
        for j in plan.added:
            expected[j.leaf_index] = (j.identity, joiners[j.identity].signature_key)
        if plan.external_joiner_leaf is not None:
            expected[plan.external_joiner_leaf] = (device.identity, device.signature_key)
        check_tree_members(sub.group_info, expected)
        new_epoch = group.epoch + 1

    # -- from here on nothing refuses the message: write it --
    seq = group.last_seq + 1
    await conn.execute(
        _STORE, group.pk, seq, new_epoch, device.device_pk, summary.sender_leaf,
        summary.content_type, sub.data, sub.digest, summary.epoch, summary.proposal_ref,
    )
    welcomed: list[str] = []
    deliveries: list[tuple[int, int]] = []
    seated: list[int] = []
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
        # Users who gained a device here: their invitations are spent, their other
        # devices may now join.
        gained = {joiners[j.identity].user_pk: joiners[j.identity].pk for j in plan.added}
        if plan.external_joiner_leaf is not None:
            gained[device.user_pk] = device.device_pk
        seated = sorted(gained)
        for user_pk, device_pk in gained.items():
            await conn.execute(_CONSUME_INVITATIONS, group.pk, user_pk, device_pk)
        assert sub.group_info is not None and sub.group_info_data is not None
        await conn.execute(_SAVE_GROUP_INFO, group.pk, new_epoch, sub.group_info_data)
        cache.put(group.pk, sub.group_info_data, sub.group_info)
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
    joined_device = device.device_pk if external else None
    return Outcome(accepted, group.pk, seq, deliveries, joined_device, seated)


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
    joiners: dict[bytes, _Device],
    device: DevicePrincipal,
    seq: int,
    new_epoch: int,
) -> dict[bytes, tuple[int, int, bytes]]:
    """Write the membership change; return the new rows by KeyPackageRef."""
    for member in plan.removed:
        await conn.execute(_REMOVE_MEMBER, member.row_id, seq, member.retired)
    by_ref: dict[bytes, tuple[int, int, bytes]] = {}
    for joiner in plan.added:
        added = joiners[joiner.identity]
        row_id = await conn.fetchval(
            _ADD_MEMBER, group.pk, added.user_pk, added.pk, joiner.leaf_index, new_epoch, seq,
            joiner.key_package_ref, False,
        )
        if joiner.key_package_ref is not None:
            by_ref[joiner.key_package_ref] = (row_id, added.pk, joiner.identity)
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

    def __init__(
        self, conn: asyncpg.Connection[Any], group: GroupState, window: int,
        cache: GroupInfoCache,
    ) -> None:
        self.conn = conn
        self.group = group
        self.window = window
        self.cache = cache
        self.leaves: dict[int, int] = {}
        self.seen: dict[bytes, tuple[int, int, str, int]] = {}  # digest -> seq, epoch, ...
        self.rows: list[tuple[Any, ...]] = []

    async def run(self, subs: list[Submission]) -> list[Outcome | APIError]:
        if len(subs) == 1:
            # Alone (the common case across many groups): two statements, not five.
            try:
                return [await _accept_one(self.conn, self.group, subs[0], self.window,
                                          self.cache)]
            except APIError as exc:
                return [exc]
        devices = sorted({s.device.device_pk for s in subs})
        await self._load_leaves(devices)
        for r in await self.conn.fetch(_KNOWN_DIGESTS, self.group.pk, [s.digest for s in subs]):
            self.seen[r["digest"]] = (r["seq"], r["epoch"], r["content_type"], r["sender_device"])
        results: list[Outcome | APIError] = []
        for sub in subs:
            try:
                if not self._plain(sub):
                    await self.flush()
                    outcome = await _accept_one(self.conn, self.group, sub, self.window,
                                                self.cache)
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

    def _plain(self, sub: Submission) -> bool:
        """Whether the fast path takes it: an application message of a member. Handshake
        messages are verified against the stored GroupInfo, and a non-member's post is
        answered according to what it may know of the group."""
        return (sub.summary.content_type == "application"
                and sub.device.device_pk in self.leaves)

    async def _load_leaves(self, devices: list[int]) -> None:
        rows = await self.conn.fetch(_LEAVES, self.group.pk, devices)
        self.leaves = {r["device_id"]: r["leaf_index"] for r in rows}

    def _accept_plain(self, sub: Submission) -> Outcome:
        group, device, summary = self.group, sub.device, sub.summary
        if group.cipher_suite not in usable_suites(device.cipher_suite):
            raise BadRequest(
                f"the group uses cipher suite {group.cipher_suite}, which this device's "
                f"signature key (suite {device.cipher_suite}) cannot sign in",
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
        self._group_infos = GroupInfoCache()
        # Group id -> cipher suite (it never changes), to parse messages before their
        # batch; bounded: cleared when full.
        self._suites: dict[bytes, int] = {}

    async def group_suite(self, group_id: bytes) -> int | None:
        """The cipher suite of a registered group (None: unknown group)."""
        suite = self._suites.get(group_id)
        if suite is None:
            suite = await self._db.raw_read(
                lambda conn: conn.fetchval(_GROUP_SUITE, group_id))
            if suite is not None:
                if len(self._suites) >= _SUITE_CACHE_MAX:
                    self._suites.clear()
                self._suites[group_id] = suite
        return suite

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
        window, cache = self._window, self._group_infos

        async def work(conn: asyncpg.Connection[Any]) -> list[Outcome | APIError]:
            row = await conn.fetchrow(_LOCK, key)
            if row is None:
                raise unknown_group(key)
            group = GroupState(row["id"], key, row["cipher_suite"], row["epoch"], row["last_seq"])
            return await _Batch(conn, group, window, cache).run([w.submission for w in batch])

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
    sequencer: Sequencer,
    device: DevicePrincipal,
    data: bytes,
    welcome_data: bytes | None,
    group_info_data: bytes | None,
) -> Accepted:
    """Parse, then accept one group message (and its Welcome and GroupInfo) in its
    group's next batch."""
    # Parsing needs the group's suite (a device may use several: delivery.suites); an
    # unknown group is parsed in the device's and refused by the transaction.
    gid = peek_group_id(data)
    suite = await sequencer.group_suite(gid) if gid is not None else None
    summary = parse_group_message(data, suite or device.cipher_suite, int(time.time()))
    welcome = parse_welcome(welcome_data) if welcome_data is not None else None
    if welcome is not None and summary.content_type != "commit":
        raise BadRequest("a Welcome can only accompany a commit", code="welcome_without_commit")
    group_info = None
    if summary.content_type == "commit":
        if group_info_data is None:
            raise BadRequest(
                "a commit must be posted with group_info, the GroupInfo of the epoch it "
                "creates (with the ratchet_tree and external_pub extensions)",
                code="group_info_required",
            )
        group_info = parse_group_info(group_info_data)
    elif group_info_data is not None:
        raise BadRequest("group_info belongs to commits only", code="group_info_unexpected")
    submission = Submission(
        device, data, summary, hashlib.sha256(data).digest(), welcome, welcome_data,
        group_info, group_info_data,
    )
    outcome = await sequencer.submit(submission)
    return outcome.accepted


def _welcome_group(
    rows: list[asyncpg.Record], refs: list[bytes], group_id: bytes | None
) -> list[asyncpg.Record]:
    """The membership rows of the one group a Welcome is for. A last-resort KeyPackage
    may be added to several groups, so its ref alone does not name the group: it is
    the group whose accepted commit added every new member of the Welcome, the poster
    being a member, not welcomed yet (or the one ``group_id`` names)."""
    by_group: dict[int, list[asyncpg.Record]] = {}
    for r in rows:
        if group_id is None or r["group_bytes"] == group_id:
            by_group.setdefault(r["group_id"], []).append(r)
    complete = {g: rs for g, rs in by_group.items()
                if {r["key_package_ref"] for r in rs} >= set(refs)}
    if not complete:
        found = {r["key_package_ref"] for r in rows}
        missing = [ref for ref in refs if ref not in found]
        if missing:
            raise Conflict(
                f"no accepted commit added KeyPackage {missing[0].hex()}: a Welcome is "
                "delivered only after its commit was accepted (or send them together)",
                code="commit_not_accepted",
            )
        raise BadRequest("the Welcome's new members were not added by one commit of one group",
                         code="welcome_mismatch")
    mine = {g: rs for g, rs in complete.items() if rs[0]["poster_member"]}
    if not mine:
        raise Forbidden("this device is not a member of the group", code="not_a_member")
    pending = {g: rs for g, rs in mine.items() if not any(r["welcomed"] for r in rs)}
    if not pending:
        raise Conflict("a Welcome was already delivered to these members",
                       code="already_welcomed")
    if len(pending) > 1:
        raise BadRequest(
            "these KeyPackages were added to several of your groups: say which one with "
            "group_id", code="ambiguous_welcome")
    chosen = next(iter(pending.values()))
    return [next(r for r in chosen if r["key_package_ref"] == ref) for ref in refs]


async def post_welcome(
    db: Database, hub: Hub, device: DevicePrincipal, welcome_data: bytes,
    group_id: bytes | None = None,
) -> tuple[str, list[str]]:
    """Route a Welcome to the devices that accepted commits added with its KeyPackages;
    returns the group id and the identities it went to."""
    welcome = parse_welcome(welcome_data)
    refs = list(dict.fromkeys(welcome.new_member_refs))
    if not refs:
        raise BadRequest("the Welcome names no new members", code="invalid_mls")

    async def work(conn: asyncpg.Connection[Any]) -> tuple[str, list[str], list[tuple[int, int]]]:
        rows = _welcome_group(
            await conn.fetch(_WELCOME_TARGETS, refs, device.device_pk), refs, group_id)
        locked = await conn.fetchrow(_LOCK, rows[0]["group_bytes"])
        assert locked is not None
        if welcome.cipher_suite != locked["cipher_suite"]:
            raise BadRequest(
                f"the Welcome's cipher suite {welcome.cipher_suite} is not the group's "
                f"({locked['cipher_suite']})",
                code="cipher_suite_mismatch",
            )
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

    group_id_text, names, deliveries = await db.raw_transaction(work)
    for device_pk, inbox_seq in deliveries:
        hub.welcome_committed(device_pk, inbox_seq)
    return group_id_text, names
