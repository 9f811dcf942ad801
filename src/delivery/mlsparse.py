"""The delivery service's only window into MLS: parse, never decrypt.

Thin wrappers over :mod:`mls.inspect` that turn every way bytes can be wrong
into a 400 naming the problem. The service reads group id, epoch, content type,
sender and proposals from the bytes themselves and never from client-declared
metadata.
"""

from __future__ import annotations

import logging
import struct

from delivery.errors import BadRequest
from mls.errors import CryptoError, DecodeError, MLSError, ValidationError
from mls.inspect import (
    KeyPackageSummary,
    MessageSummary,
    ProposalSummary,
    WelcomeSummary,
    summarize_message,
    summarize_welcome,
    verify_key_package,
)

__all__ = [
    "KeyPackageSummary",
    "MessageSummary",
    "ProposalSummary",
    "WelcomeSummary",
    "parse_group_message",
    "parse_key_package",
    "parse_welcome",
]

log = logging.getLogger("delivery.mls")

# Errors a parser bug could raise on hostile input; still the client's bytes are bad,
# so they are a 400 (and logged, so the library gets fixed), never a 500.
_PARSER_BUGS = (ValueError, IndexError, KeyError, struct.error, OverflowError, TypeError)


def _refuse(what: str, exc: BaseException) -> BadRequest:
    if isinstance(exc, DecodeError):
        return BadRequest(f"malformed {what}: {exc}", code="malformed_mls")
    if isinstance(exc, CryptoError):
        return BadRequest(f"{what} does not verify: {exc}", code="mls_signature_invalid")
    if isinstance(exc, ValidationError):
        return BadRequest(f"invalid {what}: {exc}", code="invalid_mls")
    if isinstance(exc, MLSError):
        return BadRequest(f"unusable {what}: {exc}", code="invalid_mls")
    log.warning("MLS parser raised %s on client input", type(exc).__name__)
    return BadRequest(f"malformed {what}: {type(exc).__name__}", code="malformed_mls")


def parse_group_message(data: bytes, cipher_suite: int) -> MessageSummary:
    """Summarize an MLSMessage carrying a PublicMessage or PrivateMessage."""
    try:
        return summarize_message(data, cipher_suite)
    except (MLSError, *_PARSER_BUGS) as exc:
        raise _refuse("MLSMessage", exc) from None


def parse_key_package(data: bytes) -> KeyPackageSummary:
    """Parse and verify an MLSMessage carrying a KeyPackage (both signatures, lifetime)."""
    try:
        return verify_key_package(data)
    except (MLSError, *_PARSER_BUGS) as exc:
        raise _refuse("KeyPackage", exc) from None


def parse_welcome(data: bytes) -> WelcomeSummary:
    """Summarize an MLSMessage carrying a Welcome."""
    try:
        return summarize_welcome(data)
    except (MLSError, *_PARSER_BUGS) as exc:
        raise _refuse("Welcome", exc) from None
