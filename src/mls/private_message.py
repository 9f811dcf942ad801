"""PrivateMessage: encrypted and signed content (RFC 9420 §6.3)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from .codec import Reader, Struct, Writer, encode_varint
from .crypto import CipherSuite
from .errors import DecodeError, DecryptionError, ValidationError
from .framing import (
    CONTENT_TYPES,
    PROTOCOL_VERSION,
    AuthenticatedContent,
    Content,
    ContentType,
    FramedContent,
    FramedContentAuthData,
    Sender,
    SenderType,
    WireFormat,
    content_tbs,
    decode_content,
    encode_content,
    read_content_type,
)
from .group_context import GroupContext
from .secret_tree import RatchetUpdate, SecretTree

_MEMBER = bytes((SenderType.MEMBER,))
_APPLICATION = ContentType.APPLICATION
_SENDER_DATA_HEAD = struct.Struct(">II")  # SenderData's leaf_index and generation
#: ``uint16 version = mls10; uint16 wire_format = private_message`` (§6).
_PRIVATE_HEAD = (PROTOCOL_VERSION.to_bytes(2, "big")
                 + WireFormat.PRIVATE_MESSAGE.to_bytes(2, "big"))


def _opaque(data: bytes) -> bytes:
    """``opaque data<V>`` (RFC 9420 §2.1.2)."""
    n = len(data)
    return (bytes((n,)) if n < 0x40 else encode_varint(n)) + data


@dataclass(frozen=True, slots=True)
class PrivateMessage(Struct):
    group_id: bytes
    epoch: int
    content_type: ContentType
    authenticated_data: bytes
    encrypted_sender_data: bytes
    ciphertext: bytes
    # The content AAD (PrivateContentAAD, §6.3.1), whose first bytes are the sender
    # data AAD (SenderDataAAD, §6.3.2): the start of the message's own encoding,
    # kept from decoding (the codec accepts one encoding per value, so it equals a
    # fresh encoding). ``replace`` starts a copy without it.
    _aad: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def encode(self, w: Writer) -> None:
        w.write(self.content_aad())
        w.opaque(self.encrypted_sender_data)
        w.opaque(self.ciphertext)

    @classmethod
    def decode(cls, r: Reader) -> PrivateMessage:
        start = r.position
        gid = r.opaque()
        epoch = r.u64()
        ct = read_content_type(r)
        aad = r.opaque()
        encoded_aad = r.since(start)
        msg = cls(gid, epoch, ct, aad, r.opaque(), r.opaque())
        object.__setattr__(msg, "_aad", encoded_aad)
        return msg

    def content_aad(self) -> bytes:
        """``PrivateContentAAD`` (§6.3.1): group_id, epoch, content_type, authenticated_data."""
        aad = self._aad
        if aad is None:
            aad = _content_aad(self.group_id, self.epoch, self.content_type,
                               self.authenticated_data)
            object.__setattr__(self, "_aad", aad)
        return aad

    def sender_data_aad(self) -> bytes:
        """``SenderDataAAD`` (§6.3.2): the content AAD without its authenticated_data."""
        return self.content_aad()[:self._sender_data_aad_length()]

    def _sender_data_aad_length(self) -> int:
        n = len(self.authenticated_data)
        return len(self.content_aad()) - n - (1 if n < 0x40 else len(encode_varint(n)))


@dataclass(frozen=True, slots=True)
class SenderData(Struct):
    leaf_index: int
    generation: int
    reuse_guard: bytes

    def encode(self, w: Writer) -> None:
        w.write(_sender_data(self.leaf_index, self.generation, self.reuse_guard))

    @classmethod
    def decode(cls, r: Reader) -> SenderData:
        return cls(r.u32(), r.u32(), r.read(4))


def _sender_data(leaf: int, generation: int, guard: bytes) -> bytes:
    return _SENDER_DATA_HEAD.pack(leaf, generation) + guard


def _sender_data_aad(group_id: bytes, epoch: int, content_type: ContentType) -> bytes:
    return _opaque(group_id) + epoch.to_bytes(8, "big") + bytes((content_type,))


def _content_aad(group_id: bytes, epoch: int, content_type: ContentType, aad: bytes) -> bytes:
    return _sender_data_aad(group_id, epoch, content_type) + _opaque(aad)


def _apply_reuse_guard(nonce: bytes, guard: bytes) -> bytes:
    """XOR the 4-byte reuse guard into the first 4 bytes of the nonce (§6.3.2)."""
    if len(guard) != 4:
        raise ValueError("reuse_guard is 4 bytes")
    x = int.from_bytes(nonce[:4], "big") ^ int.from_bytes(guard, "big")
    return x.to_bytes(4, "big") + nonce[4:]


def _seal(
    cs: CipherSuite, content_aad: bytes, sd_aad: bytes, content: bytes, leaf: int,
    generation: int, key: bytes, nonce: bytes, sender_data_secret: bytes,
) -> tuple[bytes, bytes]:
    """(encrypted_sender_data, ciphertext) of ``content`` (§6.3.1, §6.3.2)."""
    guard = cs.random(4)
    aead, seal = cs.params.aead, cs.provider.aead_seal
    ciphertext = seal(aead, key, _apply_reuse_guard(nonce, guard), content_aad, content)
    sd_key, sd_nonce = cs.sender_data_key_nonce(sender_data_secret, ciphertext)
    return seal(aead, sd_key, sd_nonce, sd_aad, _sender_data(leaf, generation, guard)), ciphertext


def encrypt(
    cs: CipherSuite, ac: AuthenticatedContent, secret_tree: SecretTree,
    sender_data_secret: bytes, padding: int = 0,
) -> PrivateMessage:
    """Encrypt signed member content (§6.3.1, §6.3.2); advances the sender's ratchet."""
    content = ac.content
    if content.sender.sender_type != SenderType.MEMBER:
        raise ValidationError("only members can send PrivateMessages (§6.3)")
    leaf = content.sender.index
    handshake = content.content_type != ContentType.APPLICATION
    generation, key, nonce, update = secret_tree.sending_key(leaf, handshake)
    w = Writer()
    encode_content(w, content.content_type, content.content)
    ac.auth.encode_for(w, content.content_type)
    w.write(bytes(padding))
    sd_aad = _sender_data_aad(content.group_id, content.epoch, content.content_type)
    aad = sd_aad + _opaque(content.authenticated_data)
    encrypted_sender_data, ciphertext = _seal(
        cs, aad, sd_aad, w.getvalue(), leaf, generation, key, nonce, sender_data_secret)
    msg = PrivateMessage(content.group_id, content.epoch, content.content_type,
                         content.authenticated_data, encrypted_sender_data, ciphertext)
    object.__setattr__(msg, "_aad", aad)
    secret_tree.apply(update)
    return msg


def encrypt_application(
    cs: CipherSuite, context: GroupContext, leaf: int, signature_priv: bytes,
    secret_tree: SecretTree, sender_data_secret: bytes, data: bytes,
    authenticated_data: bytes = b"", padding: int = 0,
) -> bytes:
    """The MLSMessage (§6) of application ``data`` from member ``leaf``: framed and
    signed (FramedContentTBS, §6.1), then protected as a PrivateMessage (§6.3.1,
    §6.3.2); the leaf's application ratchet moves on. Built as bytes at once: it
    is :func:`encrypt` of the signed FramedContent, wrapped in an MLSMessage."""
    sd_aad = _sender_data_aad(context.group_id, context.epoch, ContentType.APPLICATION)
    aad_field, content = _opaque(authenticated_data), _opaque(data)
    # FramedContent: group_id, epoch, sender, authenticated_data, content_type, content.
    framed = b"".join((sd_aad[:-1], _MEMBER, leaf.to_bytes(4, "big"), aad_field,
                       sd_aad[-1:], content))
    tbs = content_tbs(WireFormat.PRIVATE_MESSAGE, framed, SenderType.MEMBER, context)
    signature = cs.sign_with_label(signature_priv, b"FramedContentTBS", tbs)
    generation, key, nonce, update = secret_tree.sending_key(leaf, False)
    aad = sd_aad + aad_field
    # PrivateMessageContent: the content, the signature, zero padding.
    plain = b"".join((content, _opaque(signature), bytes(padding)))
    encrypted_sender_data, ciphertext = _seal(
        cs, aad, sd_aad, plain, leaf, generation, key, nonce, sender_data_secret)
    message = b"".join((_PRIVATE_HEAD, aad, _opaque(encrypted_sender_data),
                        _opaque(ciphertext)))
    secret_tree.apply(update)
    return message


def decrypt_sender_data(
    cs: CipherSuite, msg: PrivateMessage, sender_data_secret: bytes
) -> SenderData:
    sd_key, sd_nonce = cs.sender_data_key_nonce(sender_data_secret, msg.ciphertext)
    try:
        plain = cs.provider.aead_open(
            cs.params.aead, sd_key, sd_nonce, msg.sender_data_aad(), msg.encrypted_sender_data)
    except DecryptionError:
        raise DecryptionError("sender data does not decrypt (§6.3.2)") from None
    if len(plain) == 12:  # the fixed layout: read it at once
        leaf, generation = _SENDER_DATA_HEAD.unpack_from(plain)
        return SenderData(leaf, generation, plain[8:])
    try:
        return SenderData.deserialize(plain)
    except DecodeError as e:
        raise DecodeError(f"malformed SenderData (§6.3.2): {e}") from None


class OpenedContent(NamedTuple):
    """A PrivateMessage's content, decrypted (§6.3.1) but not yet verified."""

    content: Content
    signature: bytes
    confirmation_tag: bytes | None  # commits only (§6.1)
    encoded: bytes  # the FramedContent's encoding, for FramedContentTBS (§6.1)
    update: RatchetUpdate  # consumes the key: for ``SecretTree.apply`` once accepted

    def verify(self, cs: CipherSuite, signature_pub: bytes, context: GroupContext) -> bool:
        """VerifyWithLabel of the member's FramedContentTBS (§6.1)."""
        tbs = content_tbs(WireFormat.PRIVATE_MESSAGE, self.encoded, SenderType.MEMBER, context)
        return cs.verify_with_label(signature_pub, b"FramedContentTBS", tbs, self.signature)


def open_content(
    cs: CipherSuite, msg: PrivateMessage, secret_tree: SecretTree, sd: SenderData,
) -> OpenedContent:
    """Decrypt the content with the key of ``sd``'s sender and generation
    (§6.3.1) without changing the tree; the caller verifies the signature."""
    handshake = msg.content_type != ContentType.APPLICATION
    key, nonce, update = secret_tree.receiving_key(sd.leaf_index, handshake, sd.generation)
    aad = msg.content_aad()
    try:
        plain = cs.provider.aead_open(
            cs.params.aead, key, _apply_reuse_guard(nonce, sd.reuse_guard), aad, msg.ciphertext)
    except DecryptionError:
        raise DecryptionError("PrivateMessage content does not decrypt (§6.3.1)") from None
    end = len(plain)
    data = _span(plain, 0, end) if msg.content_type == _APPLICATION else None
    sig = _span(plain, data[1], end) if data is not None else None
    content: Content
    if data is not None and sig is not None:  # application data and signature, read at once
        content, content_end = plain[data[0]:data[1]], data[1]
        signature, tag, pad_start = plain[sig[0]:sig[1]], None, sig[1]
    else:
        r = Reader(plain)
        content = decode_content(r, msg.content_type)
        content_end = r.position
        auth = FramedContentAuthData.decode_for(r, msg.content_type)
        signature, tag, pad_start = auth.signature, auth.confirmation_tag, r.position
    # Padding must be all zeros (§6.3.1).
    if plain.count(0, pad_start) != len(plain) - pad_start:
        raise DecodeError("PrivateMessageContent padding is not all zero (§6.3.1)")
    # The FramedContent's encoding (§6.1) from the pieces at hand: the AAD holds
    # group_id, epoch, content_type and authenticated_data; the sender goes after
    # the epoch, the content type before the content, which starts the plaintext.
    head = msg._sender_data_aad_length() - 1
    encoded = b"".join((aad[:head], _MEMBER, sd.leaf_index.to_bytes(4, "big"),
                        aad[head + 1:], aad[head:head + 1], plain[:content_end]))
    return OpenedContent(content, signature, tag, encoded, update)


def authenticated_content(
    msg: PrivateMessage, sd: SenderData, opened: OpenedContent
) -> AuthenticatedContent:
    """The AuthenticatedContent of an opened PrivateMessage (§6.1)."""
    framed = FramedContent(msg.group_id, msg.epoch, Sender.member(sd.leaf_index),
                           msg.authenticated_data, msg.content_type, opened.content)
    object.__setattr__(framed, "_encoded", opened.encoded)
    return AuthenticatedContent(WireFormat.PRIVATE_MESSAGE, framed, FramedContentAuthData(
        opened.signature, opened.confirmation_tag))


def decrypt(
    cs: CipherSuite, msg: PrivateMessage, secret_tree: SecretTree, sender_data_secret: bytes,
    sender_data: SenderData | None = None,
) -> AuthenticatedContent:
    """Decrypt to AuthenticatedContent; the caller verifies the signature.

    ``sender_data`` is what :func:`decrypt_sender_data` gave for this message,
    if the caller already has it (it is not decrypted twice).
    The ratchet consumes the generation only when the content decrypts."""
    sd = sender_data or decrypt_sender_data(cs, msg, sender_data_secret)
    opened = open_content(cs, msg, secret_tree, sd)
    secret_tree.apply(opened.update)
    return authenticated_content(msg, sd, opened)


def _span(data: bytes, p: int, end: int) -> tuple[int, int] | None:
    """Where the ``opaque<V>`` at ``p`` starts and stops, if its length has the
    1- or 2-byte form, is minimal and fits; else ``None``."""
    if p >= end:
        return None
    n = data[p]
    if n < 0x40:
        p += 1
    elif n < 0x80 and p + 1 < end:
        n = ((n & 0x3F) << 8) | data[p + 1]
        if n < 0x40:
            return None
        p += 2
    else:
        return None
    return (p, p + n) if p + n <= end else None


def parse_private_message(data: bytes) -> PrivateMessage | None:
    """The PrivateMessage of an ``MLSMessage`` of mls10 with wire format
    private_message (§6), read in one pass, when every field is well formed and
    no length needs the 4-byte form; else ``None`` and the general decoder
    (``MLSMessage.deserialize``) decides, which accepts the same messages."""
    end = len(data)
    if data[:4] != _PRIVATE_HEAD or (gid := _span(data, 4, end)) is None:
        return None
    p = gid[1]
    if p + 9 > end:
        return None
    ct = data[p + 8]
    content_type = CONTENT_TYPES[ct] if ct < len(CONTENT_TYPES) else None
    if content_type is None or (aad := _span(data, p + 9, end)) is None:
        return None
    if (esd := _span(data, aad[1], end)) is None:
        return None
    ctext = _span(data, esd[1], end)
    if ctext is None or ctext[1] != end:
        return None
    msg = PrivateMessage(data[gid[0]:gid[1]], int.from_bytes(data[p:p + 8], "big"),
                         content_type, data[aad[0]:aad[1]], data[esd[0]:esd[1]],
                         data[ctext[0]:ctext[1]])
    object.__setattr__(msg, "_aad", data[4:aad[1]])
    return msg
