"""Crypto basics vectors: the labelled functions of RFC 9420 §5."""

from __future__ import annotations

from ..crypto import CipherSuite, CryptoProvider
from ..errors import DecryptionError
from .registry import Case
from .util import expect, expect_false, expect_rejected, expect_true, flip, h


def check(case: Case, provider: CryptoProvider) -> None:
    cs = CipherSuite(case["cipher_suite"], provider)

    r = case["ref_hash"]
    expect("ref_hash", cs.ref_hash(r["label"].encode(), h(r["value"])), h(r["out"]))

    e = case["expand_with_label"]
    got = cs.expand_with_label(h(e["secret"]), e["label"].encode(), h(e["context"]), e["length"])
    expect("expand_with_label", got, h(e["out"]))

    d = case["derive_secret"]
    expect("derive_secret", cs.derive_secret(h(d["secret"]), d["label"].encode()), h(d["out"]))

    t = case["derive_tree_secret"]
    got = cs.derive_tree_secret(h(t["secret"]), t["label"].encode(), t["generation"], t["length"])
    expect("derive_tree_secret", got, h(t["out"]))

    s = case["sign_with_label"]
    label, content, pub = s["label"].encode(), h(s["content"]), h(s["pub"])
    ok = cs.verify_with_label(pub, label, content, h(s["signature"]))
    expect_true("sign_with_label verify", ok)
    expect_false("flipped signature", cs.verify_with_label(pub, label, content,
                                                           flip(h(s["signature"]))))
    expect("sign_with_label pub", cs.signature_public_key(h(s["priv"])), pub)
    sig = cs.sign_with_label(h(s["priv"]), label, content)
    expect_true("sign_with_label round trip", cs.verify_with_label(pub, label, content, sig))

    x = case["encrypt_with_label"]
    label, ctx, pt, priv = x["label"].encode(), h(x["context"]), h(x["plaintext"]), h(x["priv"])
    got = cs.decrypt_with_label(priv, label, ctx, h(x["kem_output"]), h(x["ciphertext"]))
    expect("decrypt_with_label", got, pt)
    expect_rejected("flipped ciphertext", DecryptionError, lambda: cs.decrypt_with_label(
        priv, label, ctx, h(x["kem_output"]), flip(h(x["ciphertext"]))))
    kem_output, ct = cs.encrypt_with_label(h(x["pub"]), label, ctx, pt)
    got = cs.decrypt_with_label(priv, label, ctx, kem_output, ct)
    expect("encrypt_with_label round trip", got, pt)
