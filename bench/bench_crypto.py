"""Microbenchmarks of the MLS primitives (issue 2): µs per operation.

    .venv/bin/python bench/bench_crypto.py [--suites 1 3] [--runs 200]

HPKE seal/open (EncryptWithLabel), SignWithLabel/VerifyWithLabel, one full
key-schedule epoch (joiner secret to every epoch secret), and PrivateMessage
protect/unprotect of a 1 KiB application message.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from mls import private_message as pm
from mls.crypto import CipherSuite, default_provider
from mls.framing import AuthenticatedContent, ContentType, FramedContent, Sender, WireFormat
from mls.group_context import GroupContext
from mls.key_schedule import derive_epoch
from mls.secret_tree import SecretTree


def measure(fn: Callable[[], object], runs: int) -> float:
    """Median µs over ``runs`` calls (after a warm-up call)."""
    fn()
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1e6


def bench_suite(suite: int, runs: int) -> dict[str, float]:
    cs = CipherSuite(suite, default_provider())
    sk, pk = cs.generate_hpke_key_pair()
    ssk, spk = cs.generate_signature_key_pair()
    msg = bytes(1024)
    kem_output, ct = cs.encrypt_with_label(pk, b"bench", b"ctx", msg)
    sig = cs.sign_with_label(ssk, b"bench", msg)
    ctx = GroupContext(1, suite, b"group", 7, bytes(cs.hash_length), bytes(cs.hash_length))
    zero = bytes(cs.hash_length)
    framed = FramedContent(b"group", 7, Sender.member(1), b"", ContentType.APPLICATION, msg)
    ac = AuthenticatedContent.sign(cs, WireFormat.PRIVATE_MESSAGE, framed, ssk, ctx)
    sds = cs.random(cs.hash_length)
    enc_secret = cs.random(cs.hash_length)
    sender_tree = SecretTree(cs, enc_secret, 2)
    receiver_tree = SecretTree(cs, enc_secret, 2)
    sent = [pm.encrypt(cs, ac, sender_tree, sds) for _ in range(runs + 1)]
    it = iter(sent)

    def unprotect() -> None:
        got = pm.decrypt(cs, next(it), receiver_tree, sds)
        assert got.verify(cs, spk, ctx)

    return {
        "hpke_seal_1KiB": measure(lambda: cs.encrypt_with_label(pk, b"bench", b"ctx", msg), runs),
        "hpke_open_1KiB": measure(
            lambda: cs.decrypt_with_label(sk, b"bench", b"ctx", kem_output, ct), runs),
        "sign_1KiB": measure(lambda: cs.sign_with_label(ssk, b"bench", msg), runs),
        "verify_1KiB": measure(lambda: cs.verify_with_label(spk, b"bench", msg, sig), runs),
        "key_schedule_epoch": measure(lambda: derive_epoch(cs, zero, zero, zero, ctx), runs),
        "private_message_protect_1KiB": measure(
            lambda: pm.encrypt(cs, AuthenticatedContent.sign(
                cs, WireFormat.PRIVATE_MESSAGE, framed, ssk, ctx), sender_tree, sds), runs),
        "private_message_unprotect_1KiB": measure(unprotect, runs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--suites", type=int, nargs="+", default=[1, 3])
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    results = {s: bench_suite(s, args.runs) for s in args.suites}
    names = list(next(iter(results.values())))
    print(f"{'operation (µs, median)':34}" + "".join(f"{'suite ' + str(s):>12}" for s in results))
    for n in names:
        print(f"{n:34}" + "".join(f"{results[s][n]:12.1f}" for s in results))


if __name__ == "__main__":
    main()
