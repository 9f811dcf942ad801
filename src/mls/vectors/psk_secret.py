"""PSK secret vectors (RFC 9420 §8.4)."""

from __future__ import annotations

from ..crypto import CipherSuite, CryptoProvider
from ..psk import PreSharedKeyID, psk_secret
from .registry import Case
from .util import expect, h


def check(case: Case, provider: CryptoProvider) -> None:
    cs = CipherSuite(case["cipher_suite"], provider)
    psks = [(PreSharedKeyID.external(h(p["psk_id"]), h(p["psk_nonce"])), h(p["psk"]))
            for p in case["psks"]]
    expect("psk_secret", psk_secret(cs, psks), h(case["psk_secret"]))
