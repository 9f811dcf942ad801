"""Message framing common to PublicMessage and PrivateMessage (RFC 9420 §6).

``FramedContent`` is what a sender authors; ``FramedContentAuthData`` its
signature (and confirmation tag for commits); the pair is the
``AuthenticatedContent`` that transcript hashes and proposal references cover.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from .codec import Reader, Struct, Writer, keep_encoding
from .commit import Commit
from .crypto import CipherSuite
from .errors import DecodeError
from .group_context import GroupContext
from .proposals import Proposal, decode_proposal, encode_proposal

PROTOCOL_VERSION = 1  # mls10


class WireFormat(IntEnum):
    PUBLIC_MESSAGE = 1
    PRIVATE_MESSAGE = 2
    WELCOME = 3
    GROUP_INFO = 4
    KEY_PACKAGE = 5


class ContentType(IntEnum):
    APPLICATION = 1
    PROPOSAL = 2
    COMMIT = 3


class SenderType(IntEnum):
    MEMBER = 1
    EXTERNAL = 2
    NEW_MEMBER_PROPOSAL = 3
    NEW_MEMBER_COMMIT = 4


def _enum(cls: type[IntEnum], value: int, what: str) -> IntEnum:
    try:
        return cls(value)
    except ValueError:
        raise DecodeError(f"unknown {what} {value}") from None


#: ContentType by value (0 is ``reserved``): a lookup instead of an enum call.
CONTENT_TYPES: tuple[ContentType | None, ...] = (None, *ContentType)


def read_content_type(r: Reader) -> ContentType:
    v = r.u8()
    known = CONTENT_TYPES[v] if v < len(CONTENT_TYPES) else None
    if known is not None:
        return known
    ct = _enum(ContentType, v, "content_type")  # raises: reserved or unknown
    assert isinstance(ct, ContentType)
    return ct


@dataclass(frozen=True, slots=True)
class Sender(Struct):
    """Who authored a message (§6.1): a member's leaf index, an external
    sender's index, or a new member."""

    sender_type: SenderType
    index: int = 0  # leaf_index for members, sender_index for external senders

    @classmethod
    def member(cls, leaf_index: int) -> Sender:
        return cls(SenderType.MEMBER, leaf_index)

    def encode(self, w: Writer) -> None:
        w.u8(self.sender_type)
        if self.sender_type in (SenderType.MEMBER, SenderType.EXTERNAL):
            w.u32(self.index)

    @classmethod
    def decode(cls, r: Reader) -> Sender:
        st = _enum(SenderType, r.u8(), "sender_type")
        assert isinstance(st, SenderType)
        if st in (SenderType.MEMBER, SenderType.EXTERNAL):
            return cls(st, r.u32())
        return cls(st)


Content = bytes | Proposal | Commit


def encode_content(w: Writer, content_type: ContentType, content: Content) -> None:
    if content_type == ContentType.APPLICATION:
        assert isinstance(content, bytes)
        w.opaque(content)
    elif content_type == ContentType.PROPOSAL:
        assert not isinstance(content, bytes | Commit)
        encode_proposal(w, content)
    else:
        assert isinstance(content, Commit)
        content.encode(w)


def decode_content(r: Reader, content_type: ContentType) -> Content:
    if content_type == ContentType.APPLICATION:
        return r.opaque()
    if content_type == ContentType.PROPOSAL:
        return decode_proposal(r)
    return Commit.decode(r)


@dataclass(frozen=True, slots=True)
class FramedContent(Struct):
    group_id: bytes
    epoch: int
    sender: Sender
    authenticated_data: bytes
    content_type: ContentType
    content: Content
    # The encoding, made once (or kept from decoding): a commit's content goes
    # into its signature, membership tag and transcript hash (§6.1, §6.2, §8.2).
    # ``replace`` starts a copy without it.
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def encode(self, w: Writer) -> None:
        w.write(self.encoding())

    def encoding(self) -> bytes:
        """The encoding, made once."""
        data = self._encoded
        return data if data is not None else keep_encoding(self, "_encoded", self._write)

    def _write(self, w: Writer) -> None:
        w.opaque(self.group_id)
        w.u64(self.epoch)
        self.sender.encode(w)
        w.opaque(self.authenticated_data)
        w.u8(self.content_type)
        encode_content(w, self.content_type, self.content)

    @classmethod
    def decode(cls, r: Reader) -> FramedContent:
        start = r.position
        group_id = r.opaque()
        epoch = r.u64()
        sender = Sender.decode(r)
        aad = r.opaque()
        ct = read_content_type(r)
        fc = cls(group_id, epoch, sender, aad, ct, decode_content(r, ct))
        # The codec accepts one encoding per value (minimal varints, strict
        # optionals and booleans), so these bytes equal a fresh encoding.
        object.__setattr__(fc, "_encoded", r.since(start))
        return fc


@dataclass(frozen=True, slots=True)
class FramedContentAuthData:
    """Signature, plus the confirmation tag for commits (§6.1). Its encoding
    depends on the content type, hence ``encode_for``/``decode_for``."""

    signature: bytes
    confirmation_tag: bytes | None = None

    def encode_for(self, w: Writer, content_type: ContentType) -> None:
        w.opaque(self.signature)
        if content_type == ContentType.COMMIT:
            w.opaque(self.confirmation_tag or b"")

    @classmethod
    def decode_for(cls, r: Reader, content_type: ContentType) -> FramedContentAuthData:
        sig = r.opaque()
        tag = r.opaque() if content_type == ContentType.COMMIT else None
        return cls(sig, tag)


#: ``uint16 version = mls10; uint16 wire_format`` of FramedContentTBS, by wire format.
_TBS_HEAD = {wf: PROTOCOL_VERSION.to_bytes(2, "big") + wf.to_bytes(2, "big")
             for wf in WireFormat}


def content_tbs(
    wire_format: WireFormat, encoded_content: bytes, sender_type: SenderType,
    context: GroupContext | None,
) -> bytes:
    """``FramedContentTBS`` (§6.1) of a FramedContent given by its encoding: the
    group context is included for member and new_member_commit senders."""
    if sender_type in (SenderType.MEMBER, SenderType.NEW_MEMBER_COMMIT):
        if context is None:
            raise ValueError("member content is signed with the group context")
        ctx = context._encoded
        return b"".join((_TBS_HEAD[wire_format], encoded_content,
                         ctx if ctx is not None else context.serialize()))
    return _TBS_HEAD[wire_format] + encoded_content


def framed_content_tbs(
    wire_format: WireFormat, content: FramedContent, context: GroupContext | None
) -> bytes:
    """``FramedContentTBS`` (§6.1)."""
    return content_tbs(wire_format, content.encoding(), content.sender.sender_type, context)


@dataclass(frozen=True, slots=True)
class AuthenticatedContent(Struct):
    """``AuthenticatedContent`` (§6.1): input to transcript hashes and ProposalRef."""

    wire_format: WireFormat
    content: FramedContent
    auth: FramedContentAuthData

    def encode(self, w: Writer) -> None:
        w.u16(self.wire_format)
        self.content.encode(w)
        self.auth.encode_for(w, self.content.content_type)

    @classmethod
    def decode(cls, r: Reader) -> AuthenticatedContent:
        wf = _enum(WireFormat, r.u16(), "wire_format")
        assert isinstance(wf, WireFormat)
        content = FramedContent.decode(r)
        return cls(wf, content, FramedContentAuthData.decode_for(r, content.content_type))

    @classmethod
    def sign(
        cls, cs: CipherSuite, wire_format: WireFormat, content: FramedContent,
        signature_priv: bytes, context: GroupContext | None,
    ) -> AuthenticatedContent:
        """Sign ``content`` (SignWithLabel "FramedContentTBS"), no confirmation tag yet."""
        tbs = framed_content_tbs(wire_format, content, context)
        sig = cs.sign_with_label(signature_priv, b"FramedContentTBS", tbs)
        return cls(wire_format, content, FramedContentAuthData(sig))

    def verify(
        self, cs: CipherSuite, signature_pub: bytes, context: GroupContext | None
    ) -> bool:
        tbs = framed_content_tbs(self.wire_format, self.content, context)
        return cs.verify_with_label(signature_pub, b"FramedContentTBS", tbs, self.auth.signature)

    def proposal_ref(self, cs: CipherSuite) -> bytes:
        """``ProposalRef`` = RefHash("MLS 1.0 Proposal Reference", AuthenticatedContent)."""
        return cs.ref_hash(b"MLS 1.0 Proposal Reference", self.serialize())
