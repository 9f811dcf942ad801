"""Pure parts of the delivery service, without a database: membership planning,
rate limiting, encodings, settings."""

from __future__ import annotations

import asyncio

import pytest

from delivery.config import Rate, Settings
from delivery.encoding import decode_group_id, encode_group_id
from delivery.errors import BadRequest, ConfigError, TooManyRequests
from delivery.membership import Member, parse_identity, plan_commit
from delivery.ratelimit import MemoryRateLimiter
from delivery.store import Window, visible
from mls.inspect import ProposalSummary


def _add(identity: bytes, ref: bytes = b"r") -> ProposalSummary:
    return ProposalSummary("add", added_identity=identity, added_key_package_ref=ref)


def _remove(leaf: int) -> ProposalSummary:
    return ProposalSummary("remove", removed_leaf=leaf)


# Devices 100..104 of users 1000..1004; user 1001 also has device 105 (not a member).
MEMBERS = [Member(row_id=10 + i, device_pk=100 + i, leaf_index=i, user_pk=1000 + i)
           for i in (0, 1, 2, 4)]


def test_adds_fill_leftmost_blank_leaves_then_append() -> None:
    plan = plan_commit("member", [_add(b"a/1"), _add(b"b/1"), _add(b"c/1")], MEMBERS, 100)
    assert [j.leaf_index for j in plan.added] == [3, 5, 6]


def test_removes_apply_before_adds_whatever_their_order() -> None:
    plan = plan_commit("member", [_add(b"a/1"), _remove(1), _add(b"b/1")], MEMBERS, 100)
    assert [m.leaf_index for m in plan.removed] == [1]
    assert [j.leaf_index for j in plan.added] == [1, 3]  # the freed leaf is reused first


def test_updates_change_nothing() -> None:
    plan = plan_commit("member", [ProposalSummary("update")], MEMBERS, 100)
    assert plan.removed == [] and plan.added == []


@pytest.mark.parametrize(
    ("proposals", "message"),
    [
        ([_remove(3)], "blank"),
        ([_remove(1), _remove(1)], "twice"),
        ([_remove(0)], "committer"),
        ([_add(b"a/1"), _add(b"a/1")], "added twice"),
        ([ProposalSummary("add")], "identity"),
    ],
)
def test_invalid_commits(proposals: list[ProposalSummary], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        plan_commit("member", proposals, MEMBERS, 100)


def test_external_commit_takes_leftmost_blank_after_removing_own_old_leaf() -> None:
    plan = plan_commit("new_member_commit", [ProposalSummary("external_init")], MEMBERS, 999)
    assert plan.external_joiner_leaf == 3
    resync = plan_commit("new_member_commit", [_remove(1)], MEMBERS, 101, 1001)
    assert resync.external_joiner_leaf == 1
    # A new device of the same user replaces the old one's leaf.
    successor = plan_commit("new_member_commit", [_remove(1)], MEMBERS, 105, 1001)
    assert successor.external_joiner_leaf == 1 and successor.removed == [MEMBERS[1]]
    with pytest.raises(BadRequest, match="own user"):
        plan_commit("new_member_commit", [_remove(2)], MEMBERS, 101, 1001)  # another user's
    with pytest.raises(BadRequest, match="already a member"):
        plan_commit("new_member_commit", [], MEMBERS, 101, 1001)
    with pytest.raises(BadRequest):
        plan_commit("new_member_commit", [_add(b"x/1")], MEMBERS, 999)


@pytest.mark.parametrize("identity", [b"no-slash", b"/dev", b"user/", b"a/b/c", b"\xff/x"])
def test_identity_format(identity: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_identity(identity)


def test_parse_identity() -> None:
    assert parse_identity(b"alice/ab12cd34") == ("alice", "ab12cd34")


def test_visibility_windows() -> None:
    windows = [Window(joined_seq=5, joined_epoch=2, removed_seq=9), Window(20, 6, None)]
    assert [s for s in range(1, 25) if visible(windows, s, 6 if s >= 20 else 2)] == [
        6, 7, 8, 9, 21, 22, 23, 24
    ]
    assert not visible(windows, 21, 5)  # an older epoch than the device joined at


def test_memory_rate_limiter() -> None:
    limiter = MemoryRateLimiter()
    rate = Rate(3, 60.0)
    for _ in range(3):
        limiter.check("k", rate, what="things")
    with pytest.raises(TooManyRequests) as info:
        limiter.check("k", rate, what="things")
    assert 15 <= info.value.extra["retry_after"] <= 21
    limiter.check("other", rate, what="things")  # buckets are per key


def test_group_id_encoding() -> None:
    for raw in (b"\x00", b"\xfb\xff" * 10, bytes(range(64))):
        assert decode_group_id(encode_group_id(raw), 256) == raw
    assert "=" not in encode_group_id(b"ab")
    with pytest.raises(BadRequest):
        decode_group_id("", 256)
    with pytest.raises(BadRequest):
        decode_group_id("a+b/", 256)


def test_settings_from_env() -> None:
    s = Settings.from_env({"DATABASE_URL": "postgresql://x@h/db", "DS_RATE_LOGIN": "7/30",
                           "DS_APP_MESSAGE_EPOCH_WINDOW": "0"})
    assert s.database_url == "postgresql://x@h/db"
    assert s.rate_limits.login == Rate(7, 30.0)
    assert s.app_message_epoch_window == 0
    with pytest.raises(ConfigError):
        Settings.from_env({"DS_RATE_LOGIN": "lots"})
    with pytest.raises(ConfigError):
        Settings.from_env({"DS_ARGON2_MEMORY_KIB": "1024"})  # below the OWASP minimum


async def test_outbox_bounds_bytes_per_socket_and_per_process() -> None:
    from delivery.outbox import BufferBudget, Outbox

    budget = BufferBudget(1000)
    a, b = Outbox(budget, 600), Outbox(budget, 600)
    assert a.has_room(900)  # an empty outbox takes any one frame within the budget
    a.put("x" * 500)
    assert not a.has_room(200)  # its own limit
    assert b.has_room(400) and not b.has_room(600)  # the process budget, though b is empty
    waiting = asyncio.ensure_future(b.wait_room(600))
    await asyncio.sleep(0)
    assert not waiting.done()
    frame = await a.get()
    assert frame is not None and budget.used == 500  # counted until sent
    a.sent(frame)
    await asyncio.wait_for(waiting, 5)
    assert budget.used == 0 and a.queued == 0
    b.put("y" * 300)
    b.close(drop=True)
    assert budget.used == 0 and await b.get() is None


async def test_a_socket_that_takes_no_frame_is_closed_as_slow() -> None:
    from delivery.hub import SLOW_CONSUMER, ClientStream, Hub
    from delivery.outbox import Outbox
    from delivery.principal import DevicePrincipal
    from delivery.ws import _send_loop

    class Stuck:
        async def send_text(self, text: str) -> None:
            await asyncio.Event().wait()  # a client that never reads

    hub = Hub(db=None)  # type: ignore[arg-type]  # the database is never reached here
    device = DevicePrincipal(1, 1, "u", 1, "d", 1, b"k")
    stream = ClientStream(hub, device, Outbox(hub.budget, 1 << 20))
    stream.push('{"type":"ready"}')
    await asyncio.wait_for(_send_loop(Stuck(), stream, 0.2), 5)  # type: ignore[arg-type]
    assert stream.close_reason is not None and stream.close_reason[0] == SLOW_CONSUMER
    assert hub.budget.used == 0
    # Control frames that pile up beyond the limit close it too (a ping flood, unread).
    stream = ClientStream(hub, device, Outbox(hub.budget, 100))
    for _ in range(10):
        stream.push('{"type":"pong"}')
    assert stream.close_reason is not None and stream.close_reason[0] == SLOW_CONSUMER
