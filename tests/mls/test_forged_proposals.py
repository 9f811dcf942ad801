"""Forged inputs, part 4: proposals and proposal lists (RFC 9420 §12.1, §12.2,
§12.4.2, §12.4.3.2), each rule fed as a commit that is valid in every other
respect (signature, membership tag and confirmation tag all correct)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from mls.errors import StateError, ValidationError
from mls.extensions import (
    Extension,
    ExtensionType,
    ExternalSender,
    RequiredCapabilities,
    encode_external_senders,
)
from mls.framing import ContentType, Sender, SenderType, WireFormat
from mls.group import Group, GroupConfig, Signer
from mls.group.external import external_proposal, new_member_add_proposal
from mls.leaf_node import LeafNodeSource
from mls.proposals import (
    Add,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    Proposal,
    ReInit,
    Remove,
    Update,
)
from mls.psk import PreSharedKeyID, ResumptionPSKUsage

from . import forge as f

PSK_ID, PSK = b"team-psk", b"\x07" * 32
CFG = GroupConfig(psks={PSK_ID: PSK})


def nonce(g: Group) -> bytes:
    return g.cipher_suite.random(g.cipher_suite.hash_length)


def rejects(proposals: Sequence[Proposal | bytes], match: str, section: str, *,
            path: bool = True, groups: list[Group] | None = None) -> None:
    a, b, *_ = groups or f.make_group(3, config=CFG)
    forged = f.forge_commit(a, proposals, path=path)
    f.assert_rejected(b, forged.message, ValidationError, section, match,
                      then=f.genuine_commit(a))


def an_update(g: Group) -> Update:
    old = g.member(g.leaf_index)
    assert old is not None
    return Update(f.resign_leaf(g.cipher_suite, old, g.state.signature_priv, g.group_id,
                                g.leaf_index, leaf_node_source=LeafNodeSource.UPDATE,
                                lifetime=None, parent_hash=b"",
                                encryption_key=g.cipher_suite.generate_hpke_key_pair()[1]))


# -- §12.2, regular commits ------
def test_commit_contains_the_committers_update() -> None:
    groups = f.make_group(3, config=CFG)
    rejects([an_update(groups[0])], "committer's own Update", "§12.2", groups=groups)


def test_commit_removes_the_committer() -> None:
    rejects([Remove(0)], "remove the committer", "§12.2", path=False)


def test_two_removes_of_one_leaf() -> None:
    rejects([Remove(2), Remove(2)], "multiple Update/Remove", "§12.2")


def test_update_and_remove_of_one_leaf() -> None:
    a, b, c = f.make_group(3, config=CFG)
    prop = f.public_proposal(c, an_update(c))
    ref = f.proposal_ref(c, prop)
    for g in (a, b):
        g.process(prop)
    rejects([ref, Remove(2)], "multiple Update/Remove", "§12.2", groups=[a, b, c])


def test_two_adds_of_one_client() -> None:
    cs = f.CipherSuite(1, f.P)
    signer = Signer.generate(cs, b"twice/1")
    k1, k2 = (f.create_key_package(cs, signer) for _ in range(2))
    rejects([Add(k1.key_package), Add(k2.key_package)], "same client", "§12.2")


def test_add_of_a_member_already_present() -> None:
    groups = f.make_group(3, config=CFG)
    kp = f.create_key_package(groups[0].cipher_suite, f.signer_of(groups[2]))
    rejects([Add(kp.key_package)], "already in the group", "§12.2", groups=groups)


def test_add_of_a_member_that_the_commit_removes_is_valid() -> None:
    a, b, c = f.make_group(3, config=CFG)
    kp = f.create_key_package(a.cipher_suite, f.signer_of(c))
    forged = f.forge_commit(a, [Remove(2), Add(kp.key_package)])
    b.process(forged.message)
    assert b.tree == forged.tree


def test_two_psk_proposals_with_one_id() -> None:
    groups = f.make_group(3, config=CFG)
    pid = PreSharedKeyID.external(PSK_ID, nonce(groups[0]))
    rejects([PreSharedKey(pid), PreSharedKey(pid)], "same id", "§12.2", groups=groups)


def test_two_group_context_extensions() -> None:
    rejects([GroupContextExtensions(()), GroupContextExtensions(())], "multiple GroupContext",
            "§12.2")


def test_reinit_with_another_proposal() -> None:
    rejects([ReInit(b"new", 1, 1), Remove(2)], "alone", "§12.2")


def test_external_init_in_a_regular_commit() -> None:
    groups = f.make_group(3, config=CFG)
    ei, _ = f.external_init(groups[0])
    # Only a new_member_commit sender may carry it (§12.1, §12.2).
    rejects([ei], "external_init proposal from a MEMBER", "§12.1", groups=groups)


def test_proposal_by_reference_never_received() -> None:
    rejects([bytes(32)], "unknown proposal", "§12.4.2")


def test_same_proposal_by_reference_twice() -> None:
    a, b, c = f.make_group(3, config=CFG)
    prop = f.public_proposal(c, Remove(1))
    ref = f.proposal_ref(c, prop)
    for g in (a, b):
        g.process(prop)
    rejects([ref, ref], "same proposal twice", "§12.2", groups=[a, b, c])


@pytest.mark.parametrize("proposals", [[], [Remove(2)]], ids=["empty", "remove"])
def test_path_required_but_absent(proposals: list[Proposal]) -> None:
    rejects(proposals, "required path", "§12.4.2", path=False)


# -- individual proposals (§12.1) ------
def test_remove_of_a_blank_leaf() -> None:
    rejects([Remove(3)], "blank or absent", "§12.1.3")


def test_update_without_its_private_key_is_not_sent() -> None:
    # A commit applying it would leave us without our leaf's key (epoch.py refuses that).
    a, _b, _c = f.make_group(3)
    before = a.export_state()
    with pytest.raises(ValidationError, match="propose_update"):
        a.propose(an_update(a))
    assert a.export_state() == before


def test_update_must_change_the_encryption_key() -> None:
    a, b, c = f.make_group(3, config=CFG)
    old = c.member(2)
    assert old is not None
    same = Update(f.resign_leaf(c.cipher_suite, old, c.state.signature_priv, c.group_id, 2,
                                leaf_node_source=LeafNodeSource.UPDATE, lifetime=None,
                                parent_hash=b""))
    prop = f.public_proposal(c, same)
    for g in (a, b):
        g.process(prop)
    rejects([f.proposal_ref(c, prop)], "encryption_key", "§12.1.2", groups=[a, b, c])


def test_psk_nonce_length() -> None:
    rejects([PreSharedKey(PreSharedKeyID.external(PSK_ID, b"short"))], "nonce", "§8.4")


def test_unknown_external_psk() -> None:
    groups = f.make_group(3, config=CFG)
    rejects([PreSharedKey(PreSharedKeyID.external(b"nobody-has-it", nonce(groups[0])))],
            "external PSK is unknown", "§12.1.4", groups=groups)


@pytest.mark.parametrize("usage", [ResumptionPSKUsage.REINIT, ResumptionPSKUsage.BRANCH])
def test_reinit_or_branch_psk_outside_a_new_group(usage: ResumptionPSKUsage) -> None:
    groups = f.make_group(3, config=CFG)
    pid = PreSharedKeyID.resumption(usage, groups[0].group_id, 0, nonce(groups[0]))
    rejects([PreSharedKey(pid)], usage.name.lower(), "§12.1.4", groups=groups)


def test_application_psk_of_another_group_that_we_do_not_hold() -> None:
    # The epoch is one this group knows; the group id is not this group's (§8.6).
    groups = f.make_group(3, config=CFG)
    pid = PreSharedKeyID.resumption(ResumptionPSKUsage.APPLICATION, b"another-group",
                                    groups[0].epoch, nonce(groups[0]))
    rejects([PreSharedKey(pid)], "another group is unknown", "§8.6", groups=groups)


def test_application_psk_of_another_group_from_the_configuration() -> None:
    # The positive case: another group's PSK that every member holds is usable.
    other = (b"another-group", 7)
    cfg = GroupConfig(psks={PSK_ID: PSK}, resumption_psks={other: b"\x05" * 32})
    a, b, _c = f.make_group(3, config=cfg)
    out = a.commit([PreSharedKey(PreSharedKeyID.resumption(ResumptionPSKUsage.APPLICATION,
                                                           *other, nonce(a)))])
    a.merge_pending_commit()
    b.process(out.commit)
    assert b.epoch_authenticator == a.epoch_authenticator


def test_reinit_to_an_older_version() -> None:
    rejects([ReInit(b"new", 0, 1)], "older protocol version", "§12.1.5")


def test_group_context_extension_members_do_not_support() -> None:
    rejects([GroupContextExtensions((Extension(0xFF00, b""),))], "does not support", "§12.1.7")


def test_required_capabilities_members_do_not_support() -> None:
    req = RequiredCapabilities(extension_types=(0xFF01,))
    rejects([GroupContextExtensions((Extension(ExtensionType.REQUIRED_CAPABILITIES,
                                               req.serialize()),))],
            "required capabilities", "§11.1")


def test_proposal_type_not_allowed_for_an_external_sender() -> None:
    cs = f.CipherSuite(1, f.P)
    server = Signer.generate(cs, b"ds/1")
    a, b = f.make_group(2, extensions=(Extension(
        ExtensionType.EXTERNAL_SENDERS, encode_external_senders(
            (ExternalSender(server.signature_pub, server.credential),))),))
    fc = f.framed(a, ContentType.PROPOSAL, an_update(a), sender=Sender(SenderType.EXTERNAL, 0))
    bad = f.public(a, f.sign(a, WireFormat.PUBLIC_MESSAGE, fc,
                             signature_priv=server.signature_priv))
    f.assert_rejected(b, bad, ValidationError, "§12.1.8", "EXTERNAL sender",
                      then=lambda: f.public_proposal(a, Remove(0)))


# The sending side (mls.group.external) refuses what receivers would reject (§12.1.8).
def server_and_group() -> tuple[Signer, Group, Group]:
    cs = f.CipherSuite(1, f.P)
    server = Signer.generate(cs, b"ds/1")
    a, b = f.make_group(2, extensions=(Extension(
        ExtensionType.EXTERNAL_SENDERS, encode_external_senders(
            (ExternalSender(server.signature_pub, server.credential),))),))
    return server, a, b


def test_external_sender_refuses_a_type_it_may_not_send() -> None:
    server, a, b = server_and_group()
    with pytest.raises(ValidationError, match=r"EXTERNAL sender is not allowed \(§12\.1\.8\)"):
        external_proposal(a.cipher_suite, a.context, server, an_update(a))
    b.process(external_proposal(a.cipher_suite, a.context, server, Remove(0)))  # allowed


def test_external_sender_must_be_listed_by_the_group() -> None:
    _server, a, _b = server_and_group()
    stranger = Signer.generate(a.cipher_suite, b"ds/2")
    with pytest.raises(ValidationError, match=r"not in the group's external_senders"):
        external_proposal(a.cipher_suite, a.context, stranger, Remove(0))


def test_external_proposal_in_another_cipher_suite() -> None:
    server, a, _b = server_and_group()
    with pytest.raises(ValidationError, match="cipher suite differs"):
        external_proposal(f.CipherSuite(3, f.P), a.context, server, Remove(0))


def test_new_member_add_proposal_in_another_cipher_suite() -> None:
    a, b = f.make_group(2)
    cs3 = f.CipherSuite(3, f.P)
    with pytest.raises(ValidationError, match=r"cipher suite differs .*\(§12\.1\.8\)"):
        new_member_add_proposal(cs3, a.context, f.key_package(cs3, b"new/3"))
    b.process(new_member_add_proposal(a.cipher_suite, a.context,
                                      f.key_package(a.cipher_suite, b"new/1")))


def test_new_member_proposal_must_be_an_add() -> None:
    a, b = f.make_group(2)
    fc = f.framed(a, ContentType.PROPOSAL, Remove(0),
                  sender=Sender(SenderType.NEW_MEMBER_PROPOSAL))
    bad = f.public(a, f.sign(a, WireFormat.PUBLIC_MESSAGE, fc))
    f.assert_rejected(b, bad, ValidationError, "§12.1.8", "only propose Add",
                      then=lambda: f.public_proposal(a, Remove(0)))


def test_external_init_sent_as_a_proposal() -> None:
    a, b = f.make_group(2)
    ei, _ = f.external_init(a)
    f.assert_rejected(b, f.public_proposal(a, ei), ValidationError, "§12.1",
                      then=lambda: f.public_proposal(a, Remove(0)))


def test_commit_from_our_own_leaf_that_we_did_not_make() -> None:
    a, b = f.make_group(2)
    forged = f.forge_commit(a, sender=Sender.member(1))
    f.assert_rejected(b, forged.message, StateError, "§6.2", then=f.genuine_commit(a))


# -- external commits (§12.4.3.2) ------
def joiner(g: Group, identity: bytes = b"ext/1") -> Signer:
    return Signer.generate(g.cipher_suite, identity)


def test_external_commit_with_two_external_inits() -> None:
    a, b = f.make_group(2)
    ei, _ = f.external_init(a)
    forged = f.forge_external_commit(a, joiner(a), [ei])
    f.assert_rejected(b, forged.message, ValidationError, "§12.4.3.2", "exactly one",
                      then=lambda: f.forge_external_commit(a, joiner(a)).message)


def test_external_commit_with_an_add() -> None:
    a, b = f.make_group(2)
    kp = f.key_package(a.cipher_suite, b"other/1")
    forged = f.forge_external_commit(a, joiner(a), [Add(kp.key_package)])
    f.assert_rejected(b, forged.message, ValidationError, "§12.4.3.2", "must not contain",
                      then=lambda: f.forge_external_commit(a, joiner(a)).message)


def test_external_commit_by_reference() -> None:
    a, b, c = f.make_group(3)
    prop = f.public_proposal(c, Remove(1))
    for g in (a, b):
        g.process(prop)
    forged = f.forge_external_commit(a, joiner(a), [f.proposal_ref(c, prop)])
    f.assert_rejected(a, forged.message, ValidationError, "§12.4.3.2", "by value",
                      then=lambda: f.forge_external_commit(a, joiner(a)).message)


def test_external_commit_without_a_path() -> None:
    a, b = f.make_group(2)
    forged = f.forge_external_commit(a, joiner(a), path=False)
    f.assert_rejected(b, forged.message, ValidationError, "§12.4.3.2", "path",
                      then=lambda: f.forge_external_commit(a, joiner(a)).message)


def test_resync_removes_only_the_joiners_own_leaf() -> None:
    a, b, c = f.make_group(3)
    # c's credential rejoins, but removes b instead of its own old leaf.
    forged = f.forge_external_commit(a, joiner(a, b"m/2"), [Remove(1)])
    f.assert_rejected(a, forged.message, ValidationError, "§12.4.3.2", "own old leaf",
                      then=lambda: f.forge_external_commit(a, joiner(a, b"m/2"),
                                                           [Remove(2)]).message)
    del b, c


def test_external_commit_removes_at_most_one_member() -> None:
    a, b, _c = f.make_group(3)
    forged = f.forge_external_commit(a, joiner(a, b"m/2"), [Remove(2), Remove(1)])
    f.assert_rejected(a, forged.message, ValidationError, "§12.4.3.2", "at most one",
                      then=lambda: f.forge_external_commit(a, joiner(a)).message)
    del b


def test_external_commit_invalid_kem_output() -> None:
    a, b = f.make_group(2)
    forged = f.forge_commit(a, [ExternalInit(b"\x00" * 32)], joiner=joiner(a))
    f.assert_rejected(b, forged.message, ValidationError, "§8.3",
                      then=lambda: f.forge_external_commit(a, joiner(a)).message)
