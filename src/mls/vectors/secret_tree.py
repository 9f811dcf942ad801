"""Secret tree vectors (RFC 9420 §9, §6.3.2)."""

from __future__ import annotations

from ..crypto import CipherSuite, CryptoProvider
from ..secret_tree import RatchetConfig, SecretTree, sender_data_key_nonce
from .registry import Case
from .util import expect, h


def check(case: Case, provider: CryptoProvider) -> None:
    cs = CipherSuite(case["cipher_suite"], provider)
    sd = case["sender_data"]
    key, nonce = sender_data_key_nonce(cs, h(sd["sender_data_secret"]), h(sd["ciphertext"]))
    expect("sender_data key", key, h(sd["key"]))
    expect("sender_data nonce", nonce, h(sd["nonce"]))

    leaves = case["leaves"]
    # Generations in the vectors may jump far ahead; allow any distance here.
    config = RatchetConfig(max_forward_distance=1 << 32, out_of_order_tolerance=0)
    tree = SecretTree(cs, h(case["encryption_secret"]), len(leaves), config)
    for i, entries in enumerate(leaves):
        for e in entries:
            g = e["generation"]
            hk, hn = tree.key_for(i, True, g)
            ak, an = tree.key_for(i, False, g)
            expect(f"leaf {i} gen {g} handshake_key", hk, h(e["handshake_key"]))
            expect(f"leaf {i} gen {g} handshake_nonce", hn, h(e["handshake_nonce"]))
            expect(f"leaf {i} gen {g} application_key", ak, h(e["application_key"]))
            expect(f"leaf {i} gen {g} application_nonce", an, h(e["application_nonce"]))
