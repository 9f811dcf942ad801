"""One identity key, several cipher suites: ``CoreCrypto`` with suite 1 and the
post-quantum 0x004F (same Ed25519 key; docs/pq.md)."""

from __future__ import annotations

import pytest

from corecrypto import CoreCrypto, UnsupportedSuiteError
from corecrypto.client import usable_suites

PQ = 0x004F


def test_usable_suites_share_the_signature_scheme() -> None:
    assert {1, 3, 0x004D, 0x004E, PQ} <= set(usable_suites(1))
    assert 2 not in usable_suites(1) and 4 not in usable_suites(1)
    assert 2 in usable_suites(2) and 1 not in usable_suites(2)
    assert usable_suites(0x1234) == []


def test_key_packages_and_groups_per_suite_survive_export() -> None:
    alice, bob = CoreCrypto.create("alice", "a"), CoreCrypto.create("bob", "b")
    [kp1] = bob.generate_key_packages(1)
    [kp_pq] = bob.generate_key_packages(1, ciphersuite=PQ)
    assert bob.key_package_count() == 2 and bob.key_package_count(PQ) == 1
    # The KeyPackage refs of each suite are found again after a restart.
    bob = CoreCrypto.import_state(bob.export_state())
    for suite, kp in ((1, kp1), (PQ, kp_pq)):
        gid = bytes([suite & 0xFF]) * 16
        alice.create_group(gid, suite)
        assert alice.group_suite(gid) == suite
        _, welcome = alice.add_member(gid, kp)
        alice.merge_pending_commit(gid)
        assert bob.process_welcome(welcome) == gid
        assert bob.group_suite(gid) == suite
        sender, text = alice.decrypt_message(gid, bob.encrypt_message(gid, b"hi"))
        assert (sender, text) == ("bob/b", b"hi")
    assert bob.key_package_count() == 0
    # The same identity key in both groups: fingerprints do not depend on the suite.
    keys = {alice.member_keys(g)["bob/b"] for g in alice.group_ids()}
    assert keys == {bob.signature_public_key}
    # A second device joins the PQ group by external commit.
    bob2 = CoreCrypto.create("bob", "b2")
    pq_gid = bytes([PQ & 0xFF]) * 16
    gid, commit, _ = bob2.join_by_external_commit(alice.group_info(pq_gid))
    bob2.confirm_external_join(gid)
    alice.process_commit(pq_gid, commit)
    assert alice.epoch_authenticator(pq_gid) == bob2.epoch_authenticator(pq_gid)
    restored = CoreCrypto.import_state(bob2.export_state())
    assert restored.group_suite(pq_gid) == PQ


def test_a_suite_of_another_signature_scheme_is_refused() -> None:
    alice = CoreCrypto.create("alice", "a")
    for call in (lambda: alice.generate_key_packages(1, ciphersuite=2),
                 lambda: alice.create_group(b"g" * 16, 2),
                 lambda: alice.generate_key_packages(1, ciphersuite=0x1234)):
        with pytest.raises(UnsupportedSuiteError):
            call()
    assert alice.key_package_count() == 0 and alice.group_ids() == []
    p256 = CoreCrypto.create("carol", "c", 2)
    p256.create_group(b"p" * 16)
    with pytest.raises(UnsupportedSuiteError):
        alice.join_by_external_commit(p256.group_info(b"p" * 16))
    with pytest.raises(UnsupportedSuiteError):
        alice.import_group_state(p256.export_group_state(b"p" * 16))
    assert alice.group_ids() == []
