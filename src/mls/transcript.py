"""Transcript hashes (RFC 9420 §8.2)."""

from __future__ import annotations

import hmac

from .codec import Writer
from .crypto import CipherSuite
from .errors import ConfirmationTagError
from .framing import AuthenticatedContent


def confirmed_transcript_hash(
    cs: CipherSuite, interim_before: bytes, ac: AuthenticatedContent
) -> bytes:
    """Hash of the interim hash and ``ConfirmedTranscriptHashInput`` (wire
    format, content, signature)."""
    w = Writer()
    w.u16(ac.wire_format)
    ac.content.encode(w)
    w.opaque(ac.auth.signature)
    return cs.hash(interim_before + w.getvalue())


def interim_transcript_hash(cs: CipherSuite, confirmed: bytes, confirmation_tag: bytes) -> bytes:
    """Hash of the confirmed hash and ``InterimTranscriptHashInput``."""
    w = Writer()
    w.opaque(confirmation_tag)
    return cs.hash(confirmed + w.getvalue())


def check_confirmation_tag(cs: CipherSuite, confirmation_key: bytes, confirmed: bytes,
                           tag: bytes, what: str) -> None:
    """``tag`` is MAC(confirmation_key, confirmed_transcript_hash) (§6.1, §8.2)."""
    if not hmac.compare_digest(cs.mac(confirmation_key, confirmed), tag):
        raise ConfirmationTagError(f"{what} is invalid")
