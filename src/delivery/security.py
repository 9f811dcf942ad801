"""Passwords, session tokens and names: the primitives of the Authentication Service.

* Passwords are hashed with Argon2id (argon2-cffi), by default at t=3,
  m=64 MiB, p=4 — RFC 9106's second recommended option, above OWASP's minimum
  (m=19 MiB, t=2, p=1), which is also the floor of the configurable cost.
  Hashing runs in worker threads, at most :data:`_HASH_CONCURRENCY` at a time,
  so a login burst cannot exhaust memory or starve the event loop.
* Password rules follow OWASP ASVS 4.0 §2.1: at least 8 and up to 128
  characters (so >= 64 is allowed), any Unicode, no composition rules, no
  truncation, and the ~11,600 most common passwords of that length (the list
  zxcvbn ships) are refused, as is a password containing the username.
* Bearer tokens are 256 random bits; only their SHA-256 is stored, so a copy of
  the database grants no sessions. A fast hash suffices because the input has
  full entropy (nothing to brute-force).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import unicodedata
from functools import lru_cache

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from delivery.errors import BadRequest

PASSWORD_MIN = 8
PASSWORD_MAX = 128
_HASH_CONCURRENCY = 4

# OWASP Password Storage Cheat Sheet minimum for Argon2id: m=19 MiB, t=2, p=1.
OWASP_MIN_MEMORY_KIB = 19 * 1024
OWASP_MIN_TIME_COST = 2

USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{2,31}")
DEVICE_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    # Imported on first use: the list is large and only registration needs it.
    from zxcvbn.frequency_lists import (  # type: ignore[import-untyped]  # noqa: PLC0415
        FREQUENCY_LISTS,
    )

    words: list[str] = FREQUENCY_LISTS["passwords"]
    return frozenset(w.lower() for w in words if len(w) >= PASSWORD_MIN)


def normalize_username(raw: str) -> str:
    """Return the canonical (NFKC, lower-case) username, or raise :class:`BadRequest`.

    Usernames are the ``user_id`` of MLS credentials (``"<user_id>/<device_id>"``),
    so they are restricted to a URL- and credential-safe alphabet without ``/``.
    """
    name = unicodedata.normalize("NFKC", raw).strip().lower()
    if not USERNAME_RE.fullmatch(name):
        raise BadRequest(
            "username must be 3-32 characters of a-z, 0-9, '_', '.', '-', "
            "starting with a letter or digit",
            code="invalid_username",
        )
    return name


def check_password_policy(password: str, username: str) -> None:
    """Refuse a password that breaks the ASVS rules above, saying which rule."""
    length = len(password)
    if length < PASSWORD_MIN:
        raise BadRequest(
            f"password must be at least {PASSWORD_MIN} characters", code="weak_password"
        )
    if length > PASSWORD_MAX:
        raise BadRequest(
            f"password must be at most {PASSWORD_MAX} characters", code="weak_password"
        )
    folded = password.lower()
    if folded in _common_passwords():
        raise BadRequest(
            "password is one of the most commonly used passwords; choose another",
            code="weak_password",
        )
    if username in folded:
        raise BadRequest("password must not contain the username", code="weak_password")


class PasswordHasher:
    """Argon2id hashing off the event loop, with bounded concurrency.

    The cost is configurable (``DS_ARGON2_*``) but never below the OWASP minimum;
    the defaults are RFC 9106's second recommended option.
    """

    def __init__(
        self, *, time_cost: int = 3, memory_kib: int = 64 * 1024, parallelism: int = 4
    ) -> None:
        if memory_kib < OWASP_MIN_MEMORY_KIB or time_cost < OWASP_MIN_TIME_COST:
            raise ValueError("Argon2id parameters below the OWASP minimum (m=19 MiB, t=2)")
        self._hasher = _Argon2(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, hash_len=32
        )
        self._slots = asyncio.Semaphore(_HASH_CONCURRENCY)
        # Verified against when the username is unknown, so that a login attempt costs
        # the same whether or not the account exists.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(24))

    async def hash(self, password: str) -> str:
        """Argon2id-hash ``password``."""
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """Check ``password`` against ``stored_hash`` (``None``: unknown user, same cost)."""

        def _verify() -> bool:
            try:
                ok = self._hasher.verify(stored_hash or self._dummy, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False
            return ok and stored_hash is not None

        async with self._slots:
            return await asyncio.to_thread(_verify)


def new_token() -> str:
    """A fresh bearer token: 256 random bits, URL-safe base64."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> bytes:
    """What is stored for a token: its SHA-256."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def digests_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of two secret-derived values."""
    return hmac.compare_digest(a, b)


def new_device_id() -> str:
    """A short random device id: 8 base32 characters (40 bits), unique per user."""
    return base64.b32encode(secrets.token_bytes(5)).decode("ascii").lower()
