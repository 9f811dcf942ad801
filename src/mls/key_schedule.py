"""The key schedule (RFC 9420 §8): from init and commit secrets to the epoch's
secrets, the exporter (§8.5), external init keys (§8.3) and the Welcome key
(§12.4.3.1)."""

from __future__ import annotations

from dataclasses import dataclass

from .crypto import CipherSuite
from .group_context import GroupContext


@dataclass(frozen=True, slots=True)
class EpochSecrets:
    """Secrets derived from one epoch's ``epoch_secret``."""

    joiner_secret: bytes
    welcome_secret: bytes
    epoch_secret: bytes
    sender_data_secret: bytes
    encryption_secret: bytes
    exporter_secret: bytes
    epoch_authenticator: bytes
    external_secret: bytes
    confirmation_key: bytes
    membership_key: bytes
    resumption_psk: bytes
    init_secret: bytes


def joiner_secret(
    cs: CipherSuite, init_secret: bytes, commit_secret: bytes, context: GroupContext
) -> bytes:
    prk = cs.extract(init_secret, commit_secret)
    return cs.expand_with_label(prk, b"joiner", context.serialize(), cs.hash_length)


def derive_secret_info(label: bytes, nh: int) -> bytes:
    """The HKDF-Expand ``info`` of DeriveSecret(secret, label) (§5.1), with the
    single block counter appended: ``KDFLabel{Nh, "MLS 1.0 " + label, ""} || 0x01``."""
    full = b"MLS 1.0 " + label
    return nh.to_bytes(2, "big") + bytes((len(full),)) + full + b"\x00\x01"


_EPOCH_LABELS = (b"sender data", b"encryption", b"exporter", b"authentication", b"external",
                 b"confirm", b"membership", b"resumption", b"init")
#: Read-only: per hash length, the DeriveSecret inputs of the epoch secrets (§8).
_EPOCH_INFOS = {nh: tuple(derive_secret_info(label, nh) for label in _EPOCH_LABELS)
                for nh in (32, 48, 64)}
_WELCOME_INFOS = {nh: derive_secret_info(b"welcome", nh) for nh in (32, 48, 64)}


def from_joiner(
    cs: CipherSuite, joiner: bytes, psk_secret: bytes, context: GroupContext
) -> EpochSecrets:
    """Everything after ``joiner_secret``: what a Welcome recipient computes."""
    nh = cs.hash_length
    member = cs.extract(joiner, psk_secret)
    epoch = cs.expand_with_label(member, b"epoch", context.serialize(), nh)
    # DeriveSecret is one HKDF-Expand block (Nh <= hash size): one HMAC over a
    # constant info per label, computed here without the generic layers.
    mac = cs.mac
    (sender_data, encryption, exporter, authentication, external, confirm, membership,
     resumption, init) = (mac(epoch, info)[:nh] for info in _EPOCH_INFOS[nh])
    return EpochSecrets(
        joiner_secret=joiner,
        welcome_secret=mac(member, _WELCOME_INFOS[nh])[:nh],
        epoch_secret=epoch,
        sender_data_secret=sender_data,
        encryption_secret=encryption,
        exporter_secret=exporter,
        epoch_authenticator=authentication,
        external_secret=external,
        confirmation_key=confirm,
        membership_key=membership,
        resumption_psk=resumption,
        init_secret=init,
    )


def derive_epoch(
    cs: CipherSuite, init_secret: bytes, commit_secret: bytes, psk_secret: bytes,
    context: GroupContext,
) -> EpochSecrets:
    """Run the key schedule for the epoch described by ``context``."""
    return from_joiner(cs, joiner_secret(cs, init_secret, commit_secret, context), psk_secret,
                       context)


def welcome_secret(cs: CipherSuite, joiner: bytes, psk_secret: bytes) -> bytes:
    """``welcome_secret`` straight from the joiner secret: a Welcome recipient
    needs it before it has the GroupContext (§12.4.3.1)."""
    return cs.derive_secret(cs.extract(joiner, psk_secret), b"welcome")


def welcome_key_nonce(cs: CipherSuite, welcome_secret: bytes) -> tuple[bytes, bytes]:
    key = cs.expand_with_label(welcome_secret, b"key", b"", cs.aead_key_length)
    nonce = cs.expand_with_label(welcome_secret, b"nonce", b"", cs.aead_nonce_length)
    return key, nonce


def mls_exporter(
    cs: CipherSuite, exporter_secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """MLS-Exporter(Label, Context, Length) (§8.5)."""
    secret = cs.derive_secret(exporter_secret, label)
    return cs.expand_with_label(secret, b"exported", cs.hash(context), length)


def external_key_pair(cs: CipherSuite, external_secret: bytes) -> tuple[bytes, bytes]:
    """The epoch's external HPKE key pair (§8.3)."""
    return cs.derive_key_pair(external_secret)
