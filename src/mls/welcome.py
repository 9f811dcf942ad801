"""Welcome and GroupSecrets (RFC 9420 §12.4.3.1)."""

from __future__ import annotations

from dataclasses import dataclass

from .codec import Reader, Struct, Writer
from .commit import HPKECiphertext
from .crypto import CipherSuite
from .errors import DecodeError
from .psk import PreSharedKeyID


@dataclass(frozen=True, slots=True)
class GroupSecrets(Struct):
    joiner_secret: bytes
    path_secret: bytes | None
    psks: tuple[PreSharedKeyID, ...] = ()

    def encode(self, w: Writer) -> None:
        w.opaque(self.joiner_secret)
        w.optional(self.path_secret, lambda w2, s: w2.opaque(s))
        w.vector(self.psks, lambda w2, p: p.encode(w2))

    @classmethod
    def decode(cls, r: Reader) -> GroupSecrets:
        return cls(r.opaque(), r.optional(lambda r2: r2.opaque()),
                   tuple(r.vector(PreSharedKeyID.decode)))


@dataclass(frozen=True, slots=True)
class EncryptedGroupSecrets(Struct):
    new_member: bytes  # KeyPackageRef
    encrypted_group_secrets: HPKECiphertext

    def encode(self, w: Writer) -> None:
        w.opaque(self.new_member)
        self.encrypted_group_secrets.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> EncryptedGroupSecrets:
        return cls(r.opaque(), HPKECiphertext.decode(r))


@dataclass(frozen=True, slots=True)
class Welcome(Struct):
    cipher_suite: int
    secrets: tuple[EncryptedGroupSecrets, ...]
    encrypted_group_info: bytes

    def encode(self, w: Writer) -> None:
        w.u16(self.cipher_suite)
        w.vector(self.secrets, lambda w2, s: s.encode(w2))
        w.opaque(self.encrypted_group_info)

    @classmethod
    def decode(cls, r: Reader) -> Welcome:
        return cls(r.u16(), tuple(r.vector(EncryptedGroupSecrets.decode)), r.opaque())

    def find_secrets(self, key_package_ref: bytes) -> EncryptedGroupSecrets | None:
        for s in self.secrets:
            if s.new_member == key_package_ref:
                return s
        return None


def welcome_encrypt_context(encrypted_group_info: bytes) -> bytes:
    """The HPKE ``info`` of EncryptWithLabel(init_key, "Welcome",
    encrypted_group_info, ...) (§5.1.3, §12.4.3.1): ``EncryptContext``. The
    same for every new member of a Welcome, so it is encoded once."""
    w = Writer()
    w.opaque(b"MLS 1.0 Welcome")
    w.opaque(encrypted_group_info)
    return w.getvalue()


def seal_group_secrets(
    cs: CipherSuite, init_key: bytes, encrypted_group_info: bytes, secrets: GroupSecrets | bytes,
    context: bytes | None = None,
) -> HPKECiphertext:
    """EncryptWithLabel of the (encoded) GroupSecrets to a new member's init key;
    ``context`` is :func:`welcome_encrypt_context` of ``encrypted_group_info``
    when the caller seals for several members."""
    plaintext = secrets if isinstance(secrets, bytes) else secrets.serialize()
    if context is None:
        context = welcome_encrypt_context(encrypted_group_info)
    kem_output, ct = cs.hpke.seal_base(init_key, context, b"", plaintext)
    return HPKECiphertext(kem_output, ct)


def open_group_secrets(
    cs: CipherSuite, init_priv: bytes, encrypted_group_info: bytes, ct: HPKECiphertext
) -> GroupSecrets:
    plain = cs.decrypt_with_label(init_priv, b"Welcome", encrypted_group_info, ct.kem_output,
                                  ct.ciphertext)
    try:
        return GroupSecrets.deserialize(plain)
    except DecodeError as e:
        raise DecodeError(f"malformed GroupSecrets: {e}") from None
