"""Welcome vectors (RFC 9420 §12.4.3.1)."""

from __future__ import annotations

import hmac

from .. import key_schedule as ks
from ..crypto import CipherSuite, CryptoProvider
from ..group_info import GroupInfo
from ..key_package import KeyPackage
from ..message import MLSMessage
from ..welcome import Welcome, open_group_secrets
from .registry import Case, VectorMismatch
from .util import expect_true, h


def check(case: Case, provider: CryptoProvider) -> None:
    cs = CipherSuite(case["cipher_suite"], provider)
    kp_msg = MLSMessage.deserialize(h(case["key_package"]))
    w_msg = MLSMessage.deserialize(h(case["welcome"]))
    if not isinstance(kp_msg.body, KeyPackage) or not isinstance(w_msg.body, Welcome):
        raise VectorMismatch("key_package/welcome fields hold other message types")
    welcome = w_msg.body
    entry = welcome.find_secrets(kp_msg.body.ref(cs))
    if entry is None:
        raise VectorMismatch("no EncryptedGroupSecrets for the KeyPackage")
    secrets = open_group_secrets(cs, h(case["init_priv"]), welcome.encrypted_group_info,
                                 entry.encrypted_group_secrets)
    psk_secret = bytes(cs.hash_length)
    key, nonce = ks.welcome_key_nonce(cs, ks.welcome_secret(cs, secrets.joiner_secret, psk_secret))
    gi = GroupInfo.deserialize(
        cs.provider.aead_open(cs.params.aead, key, nonce, b"", welcome.encrypted_group_info))
    expect_true("group info signature", gi.verify(cs, h(case["signer_pub"])))
    epoch = ks.from_joiner(cs, secrets.joiner_secret, psk_secret, gi.group_context)
    tag = cs.mac(epoch.confirmation_key, gi.group_context.confirmed_transcript_hash)
    expect_true("confirmation_tag", hmac.compare_digest(tag, gi.confirmation_tag))
