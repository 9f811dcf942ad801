"""PrivateMessage: encrypted and signed content (RFC 9420 §6.3)."""

from __future__ import annotations

from dataclasses import dataclass

from .codec import Reader, Struct, Writer
from .crypto import CipherSuite
from .errors import DecodeError, DecryptionError, ValidationError
from .framing import (
    AuthenticatedContent,
    ContentType,
    FramedContent,
    FramedContentAuthData,
    Sender,
    SenderType,
    WireFormat,
    decode_content,
    encode_content,
    read_content_type,
)
from .secret_tree import SecretTree, sender_data_key_nonce


@dataclass(frozen=True, slots=True)
class PrivateMessage(Struct):
    group_id: bytes
    epoch: int
    content_type: ContentType
    authenticated_data: bytes
    encrypted_sender_data: bytes
    ciphertext: bytes

    def encode(self, w: Writer) -> None:
        w.opaque(self.group_id)
        w.u64(self.epoch)
        w.u8(self.content_type)
        w.opaque(self.authenticated_data)
        w.opaque(self.encrypted_sender_data)
        w.opaque(self.ciphertext)

    @classmethod
    def decode(cls, r: Reader) -> PrivateMessage:
        gid = r.opaque()
        epoch = r.u64()
        ct = read_content_type(r)
        return cls(gid, epoch, ct, r.opaque(), r.opaque(), r.opaque())


@dataclass(frozen=True, slots=True)
class SenderData(Struct):
    leaf_index: int
    generation: int
    reuse_guard: bytes

    def encode(self, w: Writer) -> None:
        w.u32(self.leaf_index)
        w.u32(self.generation)
        w.write(self.reuse_guard)

    @classmethod
    def decode(cls, r: Reader) -> SenderData:
        return cls(r.u32(), r.u32(), r.read(4))


def _sender_data_aad(group_id: bytes, epoch: int, content_type: ContentType) -> bytes:
    w = Writer()
    w.opaque(group_id)
    w.u64(epoch)
    w.u8(content_type)
    return w.getvalue()


def _content_aad(group_id: bytes, epoch: int, content_type: ContentType, aad: bytes) -> bytes:
    w = Writer()
    w.opaque(group_id)
    w.u64(epoch)
    w.u8(content_type)
    w.opaque(aad)
    return w.getvalue()


def _apply_reuse_guard(nonce: bytes, guard: bytes) -> bytes:
    """XOR the 4-byte reuse guard into the first 4 bytes of the nonce (§6.3.2)."""
    if len(guard) != 4:
        raise ValueError("reuse_guard is 4 bytes")
    x = int.from_bytes(nonce[:4], "big") ^ int.from_bytes(guard, "big")
    return x.to_bytes(4, "big") + nonce[4:]


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
    generation, key, nonce = secret_tree.next_key(leaf, handshake)
    guard = cs.random(4)
    w = Writer()
    encode_content(w, content.content_type, content.content)
    ac.auth.encode_for(w, content.content_type)
    w.write(bytes(padding))
    ciphertext = cs.provider.aead_seal(
        cs.params.aead, key, _apply_reuse_guard(nonce, guard),
        _content_aad(content.group_id, content.epoch, content.content_type,
                     content.authenticated_data),
        w.getvalue())
    sd_key, sd_nonce = sender_data_key_nonce(cs, sender_data_secret, ciphertext)
    encrypted_sender_data = cs.provider.aead_seal(
        cs.params.aead, sd_key, sd_nonce,
        _sender_data_aad(content.group_id, content.epoch, content.content_type),
        SenderData(leaf, generation, guard).serialize())
    return PrivateMessage(content.group_id, content.epoch, content.content_type,
                          content.authenticated_data, encrypted_sender_data, ciphertext)


def decrypt_sender_data(
    cs: CipherSuite, msg: PrivateMessage, sender_data_secret: bytes
) -> SenderData:
    sd_key, sd_nonce = sender_data_key_nonce(cs, sender_data_secret, msg.ciphertext)
    try:
        plain = cs.provider.aead_open(
            cs.params.aead, sd_key, sd_nonce,
            _sender_data_aad(msg.group_id, msg.epoch, msg.content_type),
            msg.encrypted_sender_data)
    except DecryptionError:
        raise DecryptionError("sender data does not decrypt (§6.3.2)") from None
    try:
        return SenderData.deserialize(plain)
    except DecodeError as e:
        raise DecodeError(f"malformed SenderData (§6.3.2): {e}") from None


def decrypt(
    cs: CipherSuite, msg: PrivateMessage, secret_tree: SecretTree, sender_data_secret: bytes,
    sender_data: SenderData | None = None,
) -> AuthenticatedContent:
    """Decrypt to AuthenticatedContent; the caller verifies the signature.

    ``sender_data`` is what :func:`decrypt_sender_data` gave for this message,
    if the caller already has it (it is not decrypted twice).
    The ratchet consumes the generation only when the content decrypts; on any
    error the caller discards its working copy of the secret tree."""
    sd = sender_data or decrypt_sender_data(cs, msg, sender_data_secret)
    handshake = msg.content_type != ContentType.APPLICATION
    key, nonce = secret_tree.key_for(sd.leaf_index, handshake, sd.generation)
    try:
        plain = cs.provider.aead_open(
            cs.params.aead, key, _apply_reuse_guard(nonce, sd.reuse_guard),
            _content_aad(msg.group_id, msg.epoch, msg.content_type, msg.authenticated_data),
            msg.ciphertext)
    except DecryptionError:
        raise DecryptionError("PrivateMessage content does not decrypt (§6.3.1)") from None
    r = Reader(plain)
    content = decode_content(r, msg.content_type)
    auth = FramedContentAuthData.decode_for(r, msg.content_type)
    # Padding must be all zeros (§6.3.1).
    padding = r.read(r.remaining())
    if padding.count(0) != len(padding):
        raise DecodeError("PrivateMessageContent padding is not all zero (§6.3.1)")
    framed = FramedContent(msg.group_id, msg.epoch, Sender.member(sd.leaf_index),
                           msg.authenticated_data, msg.content_type, content)
    return AuthenticatedContent(WireFormat.PRIVATE_MESSAGE, framed, auth)
