"""The trust layer: Signal-compatible safety numbers, QR check, verification
state, key changes, MITM flags and group codes."""

from __future__ import annotations

import pytest

from corecrypto import CoreCrypto
from corecrypto.trust import (
    TrustError,
    TrustStore,
    check_group_keys,
    group_code,
    group_hex,
    safety_number,
)

# libsignal's NumericFingerprintGeneratorTest: same keys, identifiers and result.
ALICE = bytes.fromhex("0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868")
BOB = bytes.fromhex("05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b")
SIGNAL_DISPLAYABLE = "300354477692869396892869876765458257569162576843440918079131"


def test_matches_signals_numeric_fingerprint() -> None:
    ours = safety_number("+14152222222", [ALICE], "+14153333333", [BOB])
    theirs = safety_number("+14153333333", [BOB], "+14152222222", [ALICE])
    assert ours.digits == theirs.digits == SIGNAL_DISPLAYABLE
    assert len(ours.groups) == 12 and all(len(g) == 5 for g in ours.groups)


def test_device_order_does_not_matter_but_keys_do() -> None:
    k1, k2, k3 = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
    s1 = safety_number("alice", [k1, k2], "bob", [k3])
    s2 = safety_number("alice", [k2, k1], "bob", [k3])
    assert s1.digits == s2.digits
    assert safety_number("alice", [k1], "bob", [k3]).digits != s1.digits
    assert safety_number("alice", [k1, k2], "eve", [k3]).digits != s1.digits


def test_qr_payload_is_checked_by_the_other_side() -> None:
    a = safety_number("alice", [ALICE], "bob", [BOB])
    b = safety_number("bob", [BOB], "alice", [ALICE])
    assert b.matches_scanned(a.qr_payload())
    assert a.matches_scanned(b.qr_payload())
    assert not a.matches_scanned(a.qr_payload())  # our own code is not theirs
    mallory = safety_number("alice", [b"\x09" * 33], "bob", [BOB])
    assert not b.matches_scanned(mallory.qr_payload())
    with pytest.raises(TrustError):
        b.matches_scanned(b"\x07" + a.qr_payload()[1:])


def test_verification_drops_when_keys_change() -> None:
    store = TrustStore()
    assert store.observe_keys("bob", [BOB]) == []
    store.mark_verified("bob", [BOB])
    assert store.is_verified("bob") and not store.needs_warning("bob")
    events = store.observe_keys("bob", [BOB, b"\x05" * 33])
    assert [e.kind for e in events] == ["key-change", "unverified"]
    assert not store.is_verified("bob")
    assert store.needs_warning("bob")
    store.acknowledge_change("bob")
    assert not store.needs_warning("bob")
    restored = TrustStore.from_bytes(store.to_bytes())
    assert restored == store
    with pytest.raises(TrustError):
        TrustStore.from_bytes(b'{"version": 9}')


def test_group_leaf_keys_against_the_directory() -> None:
    directory = {"alice": [ALICE], "bob": [BOB]}
    assert check_group_keys({"alice/1": ALICE, "bob/2": BOB}, directory) == []
    events = check_group_keys({"alice/1": ALICE, "bob/2": b"\x66" * 33}, directory)
    assert [(e.kind, e.user_id) for e in events] == [("mitm-suspected", "bob")]


def test_group_code_is_equal_for_members_of_an_epoch() -> None:
    a, b = CoreCrypto.create("alice", "1"), CoreCrypto.create("bob", "1")
    a.create_group(b"g")
    _, welcome = a.add_member(b"g", b.generate_key_packages(1)[0])
    a.merge_pending_commit(b"g")
    b.process_welcome(welcome)
    codes = {group_code(b"g", c.epoch(b"g"), c.epoch_authenticator(b"g")) for c in (a, b)}
    assert len(codes) == 1
    code = codes.pop()
    assert len(code.replace(" ", "")) == 30
    commit = b.self_update(b"g")
    b.merge_pending_commit(b"g")
    a.process_commit(b"g", commit)
    assert group_code(b"g", a.epoch(b"g"), a.epoch_authenticator(b"g")) != code


def test_identity_fingerprint_grouping() -> None:
    c = CoreCrypto.create("alice", "1")
    fp = c.get_identity_fingerprint()
    assert len(fp) == 64 and fp == fp.lower()
    assert group_hex(fp).replace(" ", "") == fp
