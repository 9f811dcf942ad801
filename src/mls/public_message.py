"""PublicMessage: signed, optionally MACed, unencrypted handshake (RFC 9420 §6.2)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from .codec import Reader, Struct, Writer
from .crypto import CipherSuite
from .errors import ValidationError
from .framing import (
    AuthenticatedContent,
    ContentType,
    FramedContent,
    FramedContentAuthData,
    SenderType,
    WireFormat,
    framed_content_tbs,
)
from .group_context import GroupContext


@dataclass(frozen=True, slots=True)
class PublicMessage(Struct):
    content: FramedContent
    auth: FramedContentAuthData
    membership_tag: bytes | None = None

    def encode(self, w: Writer) -> None:
        self.content.encode(w)
        self.auth.encode_for(w, self.content.content_type)
        if self.content.sender.sender_type == SenderType.MEMBER:
            w.opaque(self.membership_tag or b"")

    @classmethod
    def decode(cls, r: Reader) -> PublicMessage:
        content = FramedContent.decode(r)
        auth = FramedContentAuthData.decode_for(r, content.content_type)
        tag = r.opaque() if content.sender.sender_type == SenderType.MEMBER else None
        return cls(content, auth, tag)

    @property
    def authenticated_content(self) -> AuthenticatedContent:
        return AuthenticatedContent(WireFormat.PUBLIC_MESSAGE, self.content, self.auth)

    @staticmethod
    def _tbm(ac: AuthenticatedContent, context: GroupContext | None) -> bytes:
        """``AuthenticatedContentTBM``: the TBS followed by the auth data."""
        w = Writer()
        w.write(framed_content_tbs(WireFormat.PUBLIC_MESSAGE, ac.content, context))
        ac.auth.encode_for(w, ac.content.content_type)
        return w.getvalue()

    @classmethod
    def protect(
        cls, cs: CipherSuite, ac: AuthenticatedContent, membership_key: bytes | None,
        context: GroupContext | None,
    ) -> PublicMessage:
        """Wrap signed content; members add a membership_tag (§6.2)."""
        if ac.content.content_type == ContentType.APPLICATION:
            raise ValidationError("application data MUST NOT be sent as a PublicMessage (§6.2)")
        tag = None
        if ac.content.sender.sender_type == SenderType.MEMBER:
            if membership_key is None:
                raise ValueError("member PublicMessages need the membership key")
            tag = cs.mac(membership_key, cls._tbm(ac, context))
        return cls(ac.content, ac.auth, tag)

    def verify_membership_tag(
        self, cs: CipherSuite, membership_key: bytes, context: GroupContext
    ) -> bool:
        if self.membership_tag is None:
            return False
        expected = cs.mac(membership_key, self._tbm(self.authenticated_content, context))
        return hmac.compare_digest(expected, self.membership_tag)
