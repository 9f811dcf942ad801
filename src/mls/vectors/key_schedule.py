"""Key schedule vectors (RFC 9420 §8, §8.3, §8.5)."""

from __future__ import annotations

from .. import key_schedule as ks
from ..crypto import CipherSuite, CryptoProvider
from ..group_context import GroupContext
from ..leaf_node import PROTOCOL_VERSION_MLS10
from .registry import Case
from .util import expect, h


def check(case: Case, provider: CryptoProvider) -> None:
    cs = CipherSuite(case["cipher_suite"], provider)
    group_id = h(case["group_id"])
    init_secret = h(case["initial_init_secret"])
    for i, e in enumerate(case["epochs"]):
        ctx = GroupContext(PROTOCOL_VERSION_MLS10, cs.id, group_id, i, h(e["tree_hash"]),
                           h(e["confirmed_transcript_hash"]))
        expect(f"epoch {i} group_context", ctx.serialize(), h(e["group_context"]))
        s = ks.derive_epoch(cs, init_secret, h(e["commit_secret"]), h(e["psk_secret"]), ctx)
        for name in ("joiner_secret", "welcome_secret", "init_secret", "sender_data_secret",
                     "encryption_secret", "exporter_secret", "epoch_authenticator",
                     "external_secret", "confirmation_key", "membership_key", "resumption_psk"):
            expect(f"epoch {i} {name}", getattr(s, name), h(e[name]))
        _, external_pub = ks.external_key_pair(cs, s.external_secret)
        expect(f"epoch {i} external_pub", external_pub, h(e["external_pub"]))
        x = e["exporter"]
        got = ks.mls_exporter(cs, s.exporter_secret, x["label"].encode(), h(x["context"]),
                              x["length"])
        expect(f"epoch {i} exporter", got, h(x["secret"]))
        init_secret = s.init_secret
