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


def from_joiner(
    cs: CipherSuite, joiner: bytes, psk_secret: bytes, context: GroupContext
) -> EpochSecrets:
    """Everything after ``joiner_secret``: what a Welcome recipient computes."""
    member = cs.extract(joiner, psk_secret)
    epoch = cs.expand_with_label(member, b"epoch", context.serialize(), cs.hash_length)

    def d(label: bytes) -> bytes:
        return cs.derive_secret(epoch, label)

    return EpochSecrets(
        joiner_secret=joiner,
        welcome_secret=cs.derive_secret(member, b"welcome"),
        epoch_secret=epoch,
        sender_data_secret=d(b"sender data"),
        encryption_secret=d(b"encryption"),
        exporter_secret=d(b"exporter"),
        epoch_authenticator=d(b"authentication"),
        external_secret=d(b"external"),
        confirmation_key=d(b"confirm"),
        membership_key=d(b"membership"),
        resumption_psk=d(b"resumption"),
        init_secret=d(b"init"),
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
