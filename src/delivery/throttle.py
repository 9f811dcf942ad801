"""Password-guessing throttle that does not lock the real user out (OWASP ASVS 2.2).

Throttling per account alone lets anyone lock a victim out with ten wrong
passwords; throttling per address alone lets a botnet guess forever. So, for
every password check (login, password change, retiring another device):

* **Per (address, account)**: the first ``FREE_FAILURES`` failures cost nothing,
  then each further failure blocks that pair for 1, 2, 4, ... seconds, at most
  ``MAX_BACKOFF_SECONDS``; a success clears it, a day without failures too. An
  attacker elsewhere does not slow the real user down.
* **Per account, from untrusted addresses**: at most ``ACCOUNT_FAILURES_PER_HOUR``
  failed attempts an hour from addresses the account never logged in from; beyond
  that, logins from such addresses wait for the hour to end. Addresses that logged
  in successfully in the last 90 days are trusted and not affected, so a
  distributed attack neither succeeds nor locks the user out where they usually
  log in.

IPv6 addresses count by their /64 (one subscriber's network), IPv4 ones whole.
The address is the peer's, or the one a configured proxy forwards
(``DS_FORWARDED_ALLOW_IPS``). Rows older than a day are pruned on the way.
"""

from __future__ import annotations

import ipaddress
import random
from datetime import timedelta
from typing import Any

from delivery.db import Database
from delivery.errors import TooManyRequests

FREE_FAILURES = 5
MAX_BACKOFF_SECONDS = 15 * 60
ACCOUNT_FAILURES_PER_HOUR = 100
TRUST_DAYS = 90

_STATE = """
    SELECT
      (SELECT extract(epoch FROM blocked_until - now())::float8 FROM login_attempts
       WHERE key = $1 AND blocked_until > now()) AS pair_wait,
      (SELECT extract(epoch FROM window_start + interval '1 hour' - now())::float8
       FROM login_attempts
       WHERE key = $2 AND failures >= $3 AND window_start > now() - interval '1 hour')
        AS account_wait,
      EXISTS (SELECT 1 FROM login_trusted
              WHERE user_id = $4 AND address = $5
                AND last_success_at > now() - make_interval(days => $6)) AS trusted
"""
_LOCK = "SELECT failures, window_start < now() - $2::interval AS stale FROM login_attempts " \
        "WHERE key = $1 FOR UPDATE"
_UPSERT = """
    INSERT INTO login_attempts (key, failures, window_start, blocked_until)
    VALUES ($1, $2, now(), CASE WHEN $3 > 0 THEN now() + make_interval(secs => $3) END)
    ON CONFLICT (key) DO UPDATE SET
        failures = $2,
        window_start = CASE WHEN $4 THEN now() ELSE login_attempts.window_start END,
        blocked_until = EXCLUDED.blocked_until
"""
_CLEAR = "DELETE FROM login_attempts WHERE key = $1"
_TRUST = """
    INSERT INTO login_trusted (user_id, address) VALUES ($1, $2)
    ON CONFLICT (user_id, address) DO UPDATE SET last_success_at = now()
"""
_PRUNE = """
    DELETE FROM login_attempts
    WHERE window_start < now() - interval '1 day'
      AND (blocked_until IS NULL OR blocked_until < now())
"""


def address_key(address: str) -> str:
    """The unit an address is throttled as: IPv4 whole, IPv6 by its /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def backoff_seconds(failures: int) -> float:
    """How long a pair waits after its ``failures``-th failure."""
    if failures <= FREE_FAILURES:
        return 0.0
    return float(min(2 ** (failures - FREE_FAILURES - 1), MAX_BACKOFF_SECONDS))


class LoginThrottle:
    """See the module docstring; the state lives in PostgreSQL (shared by processes)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def _keys(address: str, username: str) -> tuple[str, str, str]:
        addr = address_key(address)
        return f"pair:{addr}:{username}", f"account:{username}", addr

    async def check(self, address: str, username: str, user_pk: int | None) -> bool:
        """Before checking a password: raise :class:`TooManyRequests` if this address
        must wait for this account; return whether the address is trusted for it."""
        pair, account, addr = self._keys(address, username)

        async def read(conn: Any) -> Any:
            return await conn.fetchrow(_STATE, pair, account, ACCOUNT_FAILURES_PER_HOUR,
                                       user_pk or 0, addr, TRUST_DAYS)

        row = await self._db.raw_read(read)
        if row["pair_wait"] is not None:
            raise TooManyRequests("too many failed attempts from here for this account; wait",
                                  retry_after=row["pair_wait"])
        trusted = bool(row["trusted"])
        if not trusted and row["account_wait"] is not None:
            raise TooManyRequests(
                "too many failed attempts for this account from unknown places; log in from "
                "a place you used before, or wait", retry_after=row["account_wait"])
        return trusted

    async def failed(self, address: str, username: str, trusted: bool) -> None:
        """After a wrong password."""
        pair, account, _ = self._keys(address, username)

        async def record(conn: Any) -> None:
            row = await conn.fetchrow(_LOCK, pair, timedelta(days=1))
            failures = 1 if row is None or row["stale"] else row["failures"] + 1
            await conn.execute(_UPSERT, pair, failures, backoff_seconds(failures),
                               row is None or row["stale"])
            if not trusted:
                row = await conn.fetchrow(_LOCK, account, timedelta(hours=1))
                failures = 1 if row is None or row["stale"] else row["failures"] + 1
                await conn.execute(_UPSERT, account, failures, 0.0, row is None or row["stale"])
            if random.random() < 0.01:  # noqa: S311 - housekeeping, not security
                await conn.execute(_PRUNE)

        await self._db.raw_transaction(record)

    async def succeeded(self, address: str, username: str, user_pk: int) -> None:
        """After a right password: the pair starts afresh; the address is trusted."""
        pair, _, addr = self._keys(address, username)

        async def record(conn: Any) -> None:
            await conn.execute(_CLEAR, pair)
            await conn.execute(_TRUST, user_pk, addr)

        await self._db.raw_transaction(record)
