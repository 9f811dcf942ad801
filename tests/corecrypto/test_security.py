"""Forward secrecy, post-compromise security, tampering and replay
(RFC 9420 §16.5, §16.6, §6)."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest

from corecrypto import CoreCrypto
from mls import private_message as pm
from mls.commit import Commit
from mls.errors import CryptoError, DecryptionError, EpochError, MLSError, ReplayError
from mls.group import Group
from mls.message import MLSMessage
from mls.private_message import PrivateMessage
from mls.public_message import PublicMessage

GID = b"security"


def trio() -> tuple[CoreCrypto, CoreCrypto, CoreCrypto]:
    a, b, c = (CoreCrypto.create(n, "d1") for n in ("alice", "bob", "carol"))
    a.create_group(GID)
    _commit, welcome = a.add_members(GID, [b.generate_key_packages(1)[0],
                                          c.generate_key_packages(1)[0]])
    a.merge_pending_commit(GID)
    b.process_welcome(welcome)
    c.process_welcome(welcome)
    return a, b, c


def hpke_ciphertexts(commit: bytes) -> list[tuple[bytes, bytes]]:
    body = MLSMessage.deserialize(commit).body
    assert isinstance(body, PublicMessage) and isinstance(body.content.content, Commit)
    path = body.content.content.path
    assert path is not None
    return [(ct.kem_output, ct.ciphertext) for n in path.nodes for ct in n.encrypted_path_secret]


def open_path_secret(g: Group, priv: bytes, context: bytes, kem_output: bytes, ct: bytes
                     ) -> bytes:
    """DecryptWithLabel exactly as a receiver of the UpdatePath runs it (§7.6)."""
    return g.cipher_suite.decrypt_with_label(priv, b"UpdatePathNode", context, kem_output, ct)


def private_body(message: bytes) -> PrivateMessage:
    body = MLSMessage.deserialize(message).body
    assert isinstance(body, PrivateMessage)
    return body


def read_with(g: Group, message: bytes, sender_data_secret: bytes | None = None) -> bytes:
    """Unprotect a PrivateMessage with ``g``'s epoch keys (the library's own
    functions, no epoch check in the way): sender data, then content."""
    cs, body = g.cipher_suite, private_body(message)
    sds = g.state.keys.sender_data_secret if sender_data_secret is None else sender_data_secret
    ac = pm.decrypt(cs, body, g.state.secret_tree.copy(), sds)
    assert isinstance(ac.content.content, bytes)
    return ac.content.content


def test_post_compromise_security_after_self_update() -> None:
    a, b, c = trio()
    stolen = Group.from_state(b.provider, b.export_group_state(GID))
    alice_before = Group.from_state(a.provider, a.export_group_state(GID))
    before_update = a.encrypt_message(GID, b"before healing")
    # bob heals by committing a fresh path; alice and carol follow.
    commit = b.self_update(GID)
    b.merge_pending_commit(GID)
    a.process_commit(GID, commit)
    c.process_commit(GID, commit)
    secret = a.encrypt_message(GID, b"after healing")
    assert b.decrypt_message(GID, secret) == ("alice/d1", b"after healing")
    # The UpdatePath is encrypted to the provisional context of the new epoch (§12.4.2).
    new_ctx = a.group(GID).context
    provisional = replace(new_ctx, confirmed_transcript_hash=alice_before.context
                          .confirmed_transcript_hash).serialize()
    cts = hpke_ciphertexts(commit)
    # Positive control: alice's keys of the old epoch open her ciphertext with this code.
    opened = []
    for priv in alice_before.state.private.keys.values():
        for kem_output, ct in cts:
            with contextlib.suppress(CryptoError):
                opened.append(open_path_secret(alice_before, priv, provisional, kem_output, ct))
    assert len(opened) == 1
    # The attacker's copy of bob's old state: none of its private keys opens any path
    # secret of the new epoch, with the right label and context.
    for priv in stolen.state.private.keys.values():
        for kem_output, ct in cts:
            with pytest.raises(DecryptionError):
                open_path_secret(stolen, priv, provisional, kem_output, ct)
    # Positive controls: the same code reads a message of the stolen epoch with the
    # stolen keys, and the healed message with carol's keys.
    assert read_with(stolen, before_update) == b"before healing"
    assert read_with(c.group(GID), secret) == b"after healing"
    # The healed message with the stolen keys: neither its sender data nor (given the
    # real sender data secret) its content decrypts.
    with pytest.raises(DecryptionError):
        read_with(stolen, secret)
    with pytest.raises(DecryptionError):
        read_with(stolen, secret, c.group(GID).state.keys.sender_data_secret)
    # Another member's commit after the update is also out of the attacker's reach.
    commit2 = c.self_update(GID)
    c.merge_pending_commit(GID)
    a.process_commit(GID, commit2)
    later = c.encrypt_message(GID, b"two epochs on")
    assert read_with(a.group(GID), later) == b"two epochs on"
    with pytest.raises(DecryptionError):
        read_with(stolen, later)


def test_forward_secrecy_of_message_keys() -> None:
    a, b, _ = trio()
    ct = a.encrypt_message(GID, b"once")
    # White-box: what bob's secret tree would hand out for alice's generation 0.
    probe = b.group(GID).state.secret_tree.copy()
    ratchet_secret = probe._ratchet(0, False).secret
    key, nonce = probe.key_for(0, False, 0)
    assert b.decrypt_message(GID, ct)[1] == b"once"
    with pytest.raises(ReplayError):
        b.decrypt_message(GID, ct)
    # The used key, its nonce and the ratchet secret that produced them are gone
    # from bob's whole persisted state: nothing can derive them again.
    state = b.export_state()
    for secret in (ratchet_secret, key, nonce):
        assert secret not in state


def test_old_epoch_keys_are_deleted_when_retention_is_zero() -> None:
    a, b, _ = trio()
    late = a.encrypt_message(GID, b"late")
    commit = a.self_update(GID)
    a.merge_pending_commit(GID)
    b.process_commit(GID, commit)
    # With the default retention the late message still decrypts once...
    assert b.decrypt_message(GID, late)[1] == b"late"
    with pytest.raises(ReplayError):
        b.decrypt_message(GID, late)
    # ...and with retention 0 the previous epoch is gone.
    g = b.group(GID)
    strict = Group(g.state, type(g.config)(max_past_epochs=0))
    late2 = a.encrypt_message(GID, b"in epoch 2")
    commit = a.self_update(GID)
    a.merge_pending_commit(GID)
    strict.process(commit)
    with pytest.raises(EpochError):
        strict.process(late2)


def test_commit_for_a_past_epoch_is_rejected() -> None:
    a, b, c = trio()
    stale = c.self_update(GID)
    c.clear_pending_commit(GID)
    commit = a.self_update(GID)
    a.merge_pending_commit(GID)
    b.process_commit(GID, commit)
    before = b.export_group_state(GID)
    with pytest.raises(EpochError):
        b.process_commit(GID, stale)
    assert b.export_group_state(GID) == before


def flips(data: bytes, step: int = 1) -> list[bytes]:
    return [data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:] for i in range(0, len(data), step)]


def test_every_single_byte_flip_of_a_commit_is_rejected() -> None:
    a, b, _ = trio()
    commit = a.self_update(GID)
    before = b.export_group_state(GID)
    for bad in flips(commit):
        with pytest.raises(MLSError):
            b.process_commit(GID, bad)
        assert b.export_group_state(GID) == before
    b.process_commit(GID, commit)  # the genuine one still works afterwards
    a.merge_pending_commit(GID)
    assert a.epoch_authenticator(GID) == b.epoch_authenticator(GID)


def test_every_single_byte_flip_of_an_application_message_is_rejected() -> None:
    a, b, _ = trio()
    ct = a.encrypt_message(GID, b"x" * 100)
    before = b.export_group_state(GID)
    for bad in flips(ct):
        with pytest.raises(MLSError):
            b.decrypt_message(GID, bad)
        assert b.export_group_state(GID) == before
    assert b.decrypt_message(GID, ct)[1] == b"x" * 100


def test_every_single_byte_flip_of_a_welcome_or_key_package_is_rejected() -> None:
    a = CoreCrypto.create("alice", "d1")
    d = CoreCrypto.create("dave", "d1")
    a.create_group(GID)
    kp = d.generate_key_packages(1)[0]
    before = a.export_group_state(GID)
    for bad in flips(kp):
        with pytest.raises(MLSError):
            a.add_member(GID, bad)
        assert a.export_group_state(GID) == before
    _, welcome = a.add_member(GID, kp)
    a.merge_pending_commit(GID)
    saved = d.export_state()
    for bad in flips(welcome, step=3):
        with pytest.raises(MLSError):
            d.process_welcome(bad)
        assert d.export_state() == saved
    assert d.process_welcome(welcome) == GID
