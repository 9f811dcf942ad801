"""The client core's device rules without a server: external joins, the resync
rule (only a device of the same user may take over a leaf), GroupInfo bundles for
commits, and the reserved sender generations of a saved state."""

from __future__ import annotations

import pytest

from corecrypto import CoreCrypto
from corecrypto.client import RESERVED_GENERATIONS, same_user
from mls.credentials import Credential
from mls.errors import ValidationError
from mls.group import GroupConfig, join_external
from mls.message import MLSMessage

GID = b"devices"


def pair() -> tuple[CoreCrypto, CoreCrypto]:
    a, b = CoreCrypto.create("alice", "a1"), CoreCrypto.create("bob", "b1")
    a.create_group(GID)
    _commit, welcome = a.add_members(GID, [b.generate_key_packages(1)[0]])
    a.merge_pending_commit(GID)
    b.process_welcome(welcome)
    return a, b


def test_same_user_rule() -> None:
    def cred(identity: str) -> Credential:
        return Credential.basic(identity.encode())

    assert same_user(cred("alice/a1"), cred("alice/a2"))
    assert not same_user(cred("alice/a1"), cred("mallory/m1"))
    assert not same_user(cred("alice/a1"), cred("alice"))
    assert not same_user(cred("/a1"), cred("/a2"))


def test_a_new_device_resyncs_over_its_users_old_leaf() -> None:
    a, b = pair()
    a2 = CoreCrypto.create("alice", "a2")
    gid, commit, info = a2.join_by_external_commit(a.group_info(GID), remove="alice/a1")
    assert gid == GID
    b.process_message(GID, commit)
    a2.confirm_external_join(GID)
    assert b.members(GID) == a2.members(GID)
    assert "alice/a1" not in b.members(GID) and "alice/a2" in b.members(GID)
    assert b.epoch_authenticator(GID) == a2.epoch_authenticator(GID)
    # The GroupInfo for the next joiner is the new epoch's, signed by the new leaf.
    assert a2.group_info_members(info) == (GID, b.epoch(GID), b.members(GID))


def test_members_refuse_an_external_commit_removing_another_users_leaf() -> None:
    """Mallory, whom the server let join, may not take over alice's leaf: her own
    client refuses to build it, and a member refuses it built by other means."""
    a, b = pair()
    mallory = CoreCrypto.create("mallory", "m1")
    with pytest.raises(ValidationError):
        mallory.join_by_external_commit(a.group_info(GID), remove="alice/a1")
    forged = join_external(mallory.provider, a.group_info(GID), mallory.signer,
                           remove_prior=0, config=GroupConfig(same_client=lambda o, n: True))
    before = b.export_group_state(GID)
    with pytest.raises(ValidationError, match="own old leaf"):
        b.process_message(GID, forged.commit)
    assert b.export_group_state(GID) == before
    # The same commit without the Remove is an ordinary join.
    plain = join_external(mallory.provider, a.group_info(GID), mallory.signer)
    b.process_message(GID, plain.commit)
    assert "mallory/m1" in b.members(GID)


def test_a_pending_commit_brings_the_group_info_of_its_epoch() -> None:
    a, b = pair()
    commit, _ = a.commit(GID, remove=["bob/b1"])
    info = MLSMessage.deserialize(a.pending_group_info(GID)).body
    assert info.group_context.epoch == a.epoch(GID) + 1  # type: ignore[union-attr]
    a.merge_pending_commit(GID)
    assert a.members(GID) == ["alice/a1"]
    del commit, b


def test_a_saved_state_reserves_sender_generations() -> None:
    """After a crash the device resumes past every generation it may have used."""
    a, b = pair()
    saved = a.save_group_state(GID)
    sent = [a.encrypt_message(GID, f"m{i}".encode()) for i in range(RESERVED_GENERATIONS)]
    assert a.must_save_before_sending(GID)
    for ct in sent:
        b.process_message(GID, ct)
    crashed = CoreCrypto.import_state(a.export_state(include_groups=False))
    crashed.import_group_state(saved)
    # Never saved since import: the first message must be saved before it leaves.
    after = crashed.encrypt_message(GID, b"after the crash")
    assert crashed.must_save_before_sending(GID)
    r = b.process_message(GID, after)  # a reused generation would be a replay here
    assert getattr(r, "plaintext", None) == b"after the crash"
