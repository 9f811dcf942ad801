"""Rate limiting with GCRA (the generic cell rate algorithm, a token bucket in one number).

A bucket of ``capacity`` requests refilled over ``period`` seconds is kept as its
"theoretical arrival time" (TAT): a request at time ``now`` is allowed when
``max(TAT, now) + interval - now <= period`` (``interval = period / capacity``),
and then TAT becomes ``max(TAT, now) + interval``.

Two stores:

* :class:`MemoryRateLimiter`, per process, for hot paths (message posts, reads):
  no extra database write per request; behind N processes a client can get up
  to N times the budget, which is acceptable for flood control.
* :class:`DatabaseRateLimiter`, shared through PostgreSQL, for what guards
  secrets or scarce resources (logins, registrations, KeyPackage claims): one
  atomic ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` per request, in its own
  transaction, so a failed login still counts.
"""

from __future__ import annotations

import random
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from delivery.config import Rate
from delivery.db import Database
from delivery.errors import TooManyRequests

_MEMORY_PRUNE_AT = 100_000


class MemoryRateLimiter:
    """Per-process GCRA buckets keyed by strings."""

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}

    def check(self, key: str, rate: Rate, *, what: str) -> None:
        """Consume one request from ``key``'s bucket or raise :class:`TooManyRequests`."""
        now = time.monotonic()
        interval = rate.period / rate.capacity
        tat = max(self._tat.get(key, now), now) + interval
        if tat - now > rate.period:
            raise TooManyRequests(
                f"too many {what}; slow down", retry_after=tat - now - rate.period
            )
        self._tat[key] = tat
        if len(self._tat) > _MEMORY_PRUNE_AT:
            # Buckets whose TAT has passed are full again: forgetting them changes nothing.
            self._tat = {k: v for k, v in self._tat.items() if v > now}


_GCRA_SQL = text(
    """
    WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now)
    INSERT INTO rate_limits AS r (key, tat)
    SELECT :key, clock.now + :interval FROM clock
    ON CONFLICT (key) DO UPDATE
        SET tat = GREATEST(r.tat, (SELECT now FROM clock)) + :interval
        WHERE GREATEST(r.tat, (SELECT now FROM clock)) + :interval - (SELECT now FROM clock)
              <= :period
    RETURNING r.tat
    """
)
_RETRY_SQL = text(
    "SELECT tat - extract(epoch FROM clock_timestamp())::float8 FROM rate_limits WHERE key = :key"
)
_PRUNE_SQL = text(
    "DELETE FROM rate_limits WHERE tat < extract(epoch FROM clock_timestamp())::float8 - 60"
)


class DatabaseRateLimiter:
    """GCRA buckets in the ``rate_limits`` table, shared by every server process."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def check(self, key: str, rate: Rate, *, what: str) -> None:
        """Consume one request from ``key``'s bucket or raise :class:`TooManyRequests`."""
        interval = rate.period / rate.capacity

        async def consume(conn: AsyncConnection) -> float | None:
            row = (
                await conn.execute(
                    _GCRA_SQL, {"key": key, "interval": interval, "period": rate.period}
                )
            ).first()
            if row is not None:
                if random.random() < 0.001:  # noqa: S311 - not security-relevant sampling
                    await conn.execute(_PRUNE_SQL)
                return None
            ahead = (await conn.execute(_RETRY_SQL, {"key": key})).scalar_one()
            return float(ahead) + interval - rate.period

        retry_after = await self._db.transaction(consume)
        if retry_after is not None:
            raise TooManyRequests(f"too many {what}; slow down", retry_after=retry_after)
