"""Passive client vectors: join by Welcome, then follow every commit
(RFC 9420 §12.4). Covers passive-client-welcome, -handling-commit and -random."""

from __future__ import annotations

from ..crypto import CipherSuite, CryptoProvider
from ..errors import DecodeError, MLSError
from ..group import GroupConfig, KeyPackageBundle, join_from_welcome
from ..key_package import KeyPackage
from ..message import MLSMessage
from .registry import Case, VectorMismatch
from .util import expect, expect_rejected, flip, h


def _key_package(data: bytes) -> KeyPackage:
    # test-vectors.md says "serialized KeyPackage"; generators also emit it
    # wrapped in an MLSMessage. Accept both.
    try:
        msg = MLSMessage.deserialize(data)
    except DecodeError:
        return KeyPackage.deserialize(data)
    if not isinstance(msg.body, KeyPackage):
        raise VectorMismatch("key_package field is not a KeyPackage")
    return msg.body


def check(case: Case, provider: CryptoProvider) -> None:
    cs = CipherSuite(case["cipher_suite"], provider)
    kp = _key_package(h(case["key_package"]))
    leaf = kp.leaf_node
    expect("signature_priv matches", cs.signature_public_key(h(case["signature_priv"])),
           leaf.signature_key)
    expect("encryption_priv matches", cs.hpke_public_key(h(case["encryption_priv"])),
           leaf.encryption_key)
    expect("init_priv matches", cs.hpke_public_key(h(case["init_priv"])), kp.init_key)
    psks = {h(p["psk_id"]): h(p["psk"]) for p in case.get("external_psks") or []}
    # Lifetimes are not checked: the vectors were generated long ago, with leaves
    # valid for a year (longer than this library's default maximum).
    config = GroupConfig(psks=psks, max_past_epochs=0, clock=None, max_lifetime=None)
    bundle = KeyPackageBundle(kp, h(case["init_priv"]), h(case["encryption_priv"]),
                              h(case["signature_priv"]))
    tree = case.get("ratchet_tree")
    group = join_from_welcome(provider, h(case["welcome"]), bundle,
                              ratchet_tree=h(tree) if tree else None, config=config)
    expect("initial epoch_authenticator", group.epoch_authenticator,
           h(case["initial_epoch_authenticator"]))
    for i, epoch in enumerate(case["epochs"]):
        for proposal in epoch["proposals"]:
            group.process(h(proposal))
        if i == 0:  # one corrupted variant per case: the first commit, last byte flipped
            before = group.export_state()
            corrupted = flip(h(epoch["commit"]))
            expect_rejected("corrupted commit", MLSError,
                            lambda bad=corrupted: group.process(bad))  # type: ignore[misc]
            expect("state after the corrupted commit", group.export_state(), before)
        group.process(h(epoch["commit"]))
        expect(f"epoch {i} epoch_authenticator", group.epoch_authenticator,
               h(epoch["epoch_authenticator"]))
