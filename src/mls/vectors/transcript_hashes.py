"""Transcript hash vectors (RFC 9420 §8.2, §6.1); the confirmation tag is
checked by the function the receive path uses, and a flipped tag must fail it."""

from __future__ import annotations

from ..crypto import CipherSuite, CryptoProvider
from ..errors import ConfirmationTagError
from ..framing import AuthenticatedContent, ContentType
from ..transcript import check_confirmation_tag, confirmed_transcript_hash, interim_transcript_hash
from .registry import Case, VectorMismatch
from .util import expect, expect_rejected, flip, h


def check(case: Case, provider: CryptoProvider) -> None:
    cs = CipherSuite(case["cipher_suite"], provider)
    ac = AuthenticatedContent.deserialize(h(case["authenticated_content"]))
    tag = ac.auth.confirmation_tag
    if ac.content.content_type != ContentType.COMMIT or tag is None:
        raise VectorMismatch("authenticated_content does not hold a Commit")
    confirmed = confirmed_transcript_hash(cs, h(case["interim_transcript_hash_before"]), ac)
    expect("confirmed_transcript_hash_after", confirmed, h(case["confirmed_transcript_hash_after"]))
    key = h(case["confirmation_key"])
    check_confirmation_tag(cs, key, confirmed, tag, "confirmation_tag")
    expect_rejected("flipped confirmation_tag", ConfirmationTagError,
                    lambda: check_confirmation_tag(cs, key, confirmed, flip(tag), "tag"))
    interim = interim_transcript_hash(cs, confirmed, tag)
    expect("interim_transcript_hash_after", interim, h(case["interim_transcript_hash_after"]))
