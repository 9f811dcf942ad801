"""The delivery service's only window into MLS: parse and verify, never decrypt.

Thin wrappers over :mod:`mls.inspect` and :mod:`mls.public_group` that turn
every way bytes can be wrong into a 400 naming the problem. The service reads
group id, epoch, content type, sender and proposals from the bytes themselves
and never from client-declared metadata.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import TypeVar

from delivery.errors import BadRequest
from mls.codec import Reader
from mls.errors import CryptoError, DecodeError, MLSError, ValidationError
from mls.framing import WireFormat
from mls.inspect import (
    KeyPackageSummary,
    MessageSummary,
    ProposalSummary,
    WelcomeSummary,
    summarize_message,
    summarize_welcome,
    verify_key_package,
)
from mls.public_group import (
    ExternalJoinCommit,
    MemberLeaf,
    PublicGroup,
    check_next_group_info,
    read_group_info,
    verify_external_commit,
    verify_member_message,
)

__all__ = [
    "ExternalJoinCommit",
    "KeyPackageSummary",
    "MemberLeaf",
    "MessageSummary",
    "ProposalSummary",
    "PublicGroup",
    "WelcomeSummary",
    "check_group_info_follows",
    "parse_group_info",
    "parse_group_message",
    "parse_key_package",
    "parse_welcome",
    "peek_group_id",
    "verify_external_join",
    "verify_member_signature",
]

log = logging.getLogger("delivery.mls")
T = TypeVar("T")

# Errors a parser bug could raise on hostile input; still the client's bytes are bad,
# so they are a 400 (and logged, so the library gets fixed), never a 500.
_PARSER_BUGS = (ValueError, IndexError, KeyError, struct.error, OverflowError, TypeError,
                RecursionError)


def _refuse(what: str, exc: BaseException, code: str | None = None) -> BadRequest:
    if isinstance(exc, DecodeError):
        return BadRequest(f"malformed {what}: {exc}", code=code or "malformed_mls")
    if isinstance(exc, CryptoError):
        return BadRequest(f"{what} does not verify: {exc}", code=code or "mls_signature_invalid")
    if isinstance(exc, ValidationError):
        return BadRequest(f"invalid {what}: {exc}", code=code or "invalid_mls")
    if isinstance(exc, MLSError):
        return BadRequest(f"unusable {what}: {exc}", code=code or "invalid_mls")
    log.warning("MLS parser raised %s on client input", type(exc).__name__)
    return BadRequest(f"malformed {what}: {type(exc).__name__}", code=code or "malformed_mls")


def _checked(what: str, code: str | None, work: Callable[[], T]) -> T:
    try:
        return work()
    except (MLSError, *_PARSER_BUGS) as exc:
        raise _refuse(what, exc, code) from None


def peek_group_id(data: bytes) -> bytes | None:
    """The group id of an MLSMessage carrying a PublicMessage or PrivateMessage (both
    start with ``group_id<V>``, RFC 9420 §6), without parsing the rest; None if the
    header is not one of those. The full parse follows and refuses anything malformed."""
    r = Reader(data)
    try:
        r.read(2)  # version
        if r.u16() not in (WireFormat.PUBLIC_MESSAGE, WireFormat.PRIVATE_MESSAGE):
            return None
        return r.opaque()
    except DecodeError:
        return None


def parse_group_message(data: bytes, cipher_suite: int, now: int | None = None) -> MessageSummary:
    """Summarize an MLSMessage carrying a PublicMessage or PrivateMessage (the
    KeyPackages of its Adds verified, their lifetimes against ``now``)."""
    return _checked("MLSMessage", None, lambda: summarize_message(data, cipher_suite, now))


def parse_key_package(data: bytes) -> KeyPackageSummary:
    """Parse and verify an MLSMessage carrying a KeyPackage (both signatures, lifetime)."""
    return _checked("KeyPackage", None, lambda: verify_key_package(data))


def parse_welcome(data: bytes) -> WelcomeSummary:
    """Summarize an MLSMessage carrying a Welcome."""
    return _checked("Welcome", None, lambda: summarize_welcome(data))


def parse_group_info(data: bytes) -> PublicGroup:
    """Parse and verify an MLSMessage carrying a GroupInfo (400 ``invalid_group_info``)."""
    return _checked("GroupInfo", "invalid_group_info", lambda: read_group_info(data))


def verify_member_signature(group: PublicGroup, data: bytes) -> MemberLeaf:
    """A member's PublicMessage, signed by its sender leaf under the group's context."""
    return _checked("PublicMessage", None, lambda: verify_member_message(group, data))


def verify_external_join(group: PublicGroup, data: bytes) -> ExternalJoinCommit:
    """An external commit, verified against the epoch it joins."""
    return _checked("external commit", "invalid_external_commit",
                    lambda: verify_external_commit(group, data))


def check_group_info_follows(
    previous: PublicGroup | None, commit: bytes, following: PublicGroup, committer_leaf: int
) -> None:
    """The GroupInfo posted with a commit is that of the epoch the commit creates."""
    _checked("GroupInfo", "invalid_group_info",
             lambda: check_next_group_info(previous, commit, following, committer_leaf))
