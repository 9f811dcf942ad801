"""Transcript hash vectors (RFC 9420 §8.2, §6.1)."""

from __future__ import annotations

import hmac

from ..crypto import CipherSuite, CryptoProvider
from ..framing import AuthenticatedContent, ContentType
from ..transcript import confirmed_transcript_hash, interim_transcript_hash
from .registry import Case, VectorMismatch
from .util import expect, expect_true, h


def check(case: Case, provider: CryptoProvider) -> None:
    cs = CipherSuite(case["cipher_suite"], provider)
    ac = AuthenticatedContent.deserialize(h(case["authenticated_content"]))
    if ac.content.content_type != ContentType.COMMIT or ac.auth.confirmation_tag is None:
        raise VectorMismatch("authenticated_content does not hold a Commit")
    confirmed = confirmed_transcript_hash(cs, h(case["interim_transcript_hash_before"]), ac)
    expect("confirmed_transcript_hash_after", confirmed, h(case["confirmed_transcript_hash_after"]))
    tag = cs.mac(h(case["confirmation_key"]), confirmed)
    expect_true("confirmation_tag", hmac.compare_digest(tag, ac.auth.confirmation_tag))
    interim = interim_transcript_hash(cs, confirmed, ac.auth.confirmation_tag)
    expect("interim_transcript_hash_after", interim, h(case["interim_transcript_hash_after"]))
