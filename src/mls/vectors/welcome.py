"""Welcome vectors (RFC 9420 §12.4.3.1), through the library's join steps.

The vectors carry no ratchet tree, so the case runs the parts of
:func:`~mls.group.join_from_welcome` that need none: :func:`open_welcome`
(find, decrypt, check PSKs, decrypt the GroupInfo), the GroupInfo signature
check and :func:`welcome_epoch` (confirmation tag). Corrupted variants (a
flipped signature, a flipped confirmation tag, a Welcome for another
KeyPackage) must be rejected by the same functions.
"""

from __future__ import annotations

from dataclasses import replace

from ..crypto import CipherSuite, CryptoProvider
from ..errors import ConfirmationTagError, SignatureError, ValidationError
from ..group import GroupConfig
from ..group.join import check_group_info_signature, open_welcome, welcome_epoch
from ..key_package import KeyPackage
from ..message import MLSMessage
from ..welcome import Welcome
from .registry import Case, VectorMismatch
from .util import expect_rejected, flip, h


def check(case: Case, provider: CryptoProvider) -> None:
    cs = CipherSuite(case["cipher_suite"], provider)
    kp_msg = MLSMessage.deserialize(h(case["key_package"]))
    w_msg = MLSMessage.deserialize(h(case["welcome"]))
    if not isinstance(kp_msg.body, KeyPackage) or not isinstance(w_msg.body, Welcome):
        raise VectorMismatch("key_package/welcome fields hold other message types")
    kp, welcome = kp_msg.body, w_msg.body
    config = GroupConfig(clock=None, max_lifetime=None)
    opened = open_welcome(cs, welcome, kp, h(case["init_priv"]), config, {})
    signer_pub = h(case["signer_pub"])
    gi = opened.group_info
    check_group_info_signature(cs, gi, signer_pub)
    welcome_epoch(opened)

    # Corrupted variants.
    bad_sig = replace(opened, group_info=replace(gi, signature=flip(gi.signature)))
    expect_rejected("flipped GroupInfo signature", SignatureError,
                    lambda: check_group_info_signature(cs, bad_sig.group_info, signer_pub))
    bad_tag = replace(opened, group_info=replace(gi, confirmation_tag=flip(gi.confirmation_tag)))
    expect_rejected("flipped confirmation_tag", ConfirmationTagError,
                    lambda: welcome_epoch(bad_tag))
    other = replace(welcome, secrets=tuple(replace(s, new_member=flip(s.new_member))
                                           for s in welcome.secrets))
    expect_rejected("Welcome for another KeyPackage", ValidationError,
                    lambda: open_welcome(cs, other, kp, h(case["init_priv"]), config, {}))
