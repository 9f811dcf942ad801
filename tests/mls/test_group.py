"""The group state machine: every proposal type by value and by reference,
Welcome with and without the ratchet_tree extension, external commits,
ReInit, external senders, the pending-commit flow and its errors."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mls.crypto import CipherSuite, default_provider
from mls.errors import (
    DecodeError,
    EpochError,
    PendingCommitError,
    PublicKeyError,
    ReplayError,
    SignatureError,
    StateError,
    ValidationError,
)
from mls.extensions import (
    Extension,
    ExtensionType,
    ExternalSender,
    RequiredCapabilities,
    encode_external_senders,
)
from mls.framing import (
    AuthenticatedContent,
    ContentType,
    FramedContent,
    Sender,
    SenderType,
    WireFormat,
)
from mls.group import (
    ApplicationMessage,
    CommitMessage,
    Group,
    GroupConfig,
    OwnMessage,
    ProposalMessage,
    Signer,
    Status,
    create_key_package,
    join_external,
    join_from_welcome,
)
from mls.group_info import GroupInfo
from mls.key_schedule import external_key_pair
from mls.message import MLSMessage
from mls.proposals import Add, GroupContextExtensions, PreSharedKey, Remove
from mls.psk import PreSharedKeyID, ResumptionPSKUsage
from mls.public_message import PublicMessage
from mls.secret_tree import RatchetConfig

from . import forge

P = default_provider()


def setup(n: int = 3, suite: int = 1, config: GroupConfig | None = None,
          extensions: tuple[Extension, ...] = ()) -> list[Group]:
    cs = CipherSuite(suite, P)
    groups = [Group.create(P, suite, b"group", Signer.generate(cs, b"m/0"),
                           extensions=extensions, config=config)]
    bundles = [create_key_package(cs, Signer.generate(cs, f"m/{i}".encode()))
               for i in range(1, n)]
    if bundles:
        out = groups[0].commit([Add(b.key_package) for b in bundles])
        groups[0].merge_pending_commit()
        assert out.welcome is not None
        groups += [join_from_welcome(P, out.welcome, b, config=config) for b in bundles]
    return groups


def deliver(message: bytes, groups: list[Group]) -> None:
    for g in groups:
        g.process(message)


def same_epoch(groups: list[Group]) -> None:
    assert len({g.epoch for g in groups}) == 1
    assert len({g.epoch_authenticator for g in groups}) == 1
    assert len({g.export_secret(b"x", b"y", 32) for g in groups}) == 1


@pytest.mark.parametrize("suite", range(1, 8))
def test_every_cipher_suite_end_to_end(suite: int) -> None:
    a, b, c = setup(3, suite)
    same_epoch([a, b, c])
    out = b.commit()
    b.merge_pending_commit()
    deliver(out.commit, [a, c])
    same_epoch([a, b, c])
    r = c.process(a.encrypt(b"suite %d" % suite))
    assert isinstance(r, ApplicationMessage) and r.data == b"suite %d" % suite


def test_proposals_by_reference() -> None:
    a, b, c = setup(3)
    cs = a.cipher_suite
    d_bundle = create_key_package(cs, Signer.generate(cs, b"m/3"))
    add = b.propose_add(d_bundle.key_package)
    upd = c.propose_update()
    for g in (a, b, c):
        r = g.process(add)
        assert isinstance(r, ProposalMessage | OwnMessage)
    for g in (a, b, c):
        g.process(upd)
    assert len(a.pending_proposals) == 2
    out = a.commit()  # both by reference
    a.merge_pending_commit()
    for g in (b, c):
        r = g.process(out.commit)
        assert isinstance(r, CommitMessage) and r.added == [3]
    assert out.welcome is not None
    d = join_from_welcome(P, out.welcome, d_bundle)
    same_epoch([a, b, c, d])
    # carol's new leaf key from her Update is in place and works.
    assert c.process(d.encrypt(b"hi")).data == b"hi"  # type: ignore[union-attr]


def test_remove_by_reference_and_removed_member_goes_inactive() -> None:
    a, b, c = setup(3)
    prop = a.propose_remove(2)
    for g in (b, c):
        g.process(prop)
    out = b.commit()
    b.merge_pending_commit()
    a.process(out.commit)
    r = c.process(out.commit)
    assert isinstance(r, CommitMessage) and r.removed_self
    assert c.status == Status.REMOVED
    same_epoch([a, b])
    with pytest.raises(StateError):
        c.encrypt(b"x")
    with pytest.raises(StateError):
        c.process(a.encrypt(b"secret"))


def test_welcome_without_ratchet_tree_extension() -> None:
    a = Group.create(P, 1, b"g", Signer.generate(a_cs := CipherSuite(1, P), b"a/1"),
                     config=GroupConfig(ratchet_tree_extension=False))
    bundle = create_key_package(a_cs, Signer.generate(a_cs, b"b/1"))
    out = a.commit([Add(bundle.key_package)])
    a.merge_pending_commit()
    assert out.welcome is not None
    with pytest.raises(ValidationError, match="ratchet tree"):
        join_from_welcome(P, out.welcome, bundle)
    b = join_from_welcome(P, out.welcome, bundle, ratchet_tree=a.tree.serialize())
    same_epoch([a, b])


def test_external_psk_by_value_and_reference() -> None:
    psk_id, psk = b"shared-psk", b"\x07" * 32
    cfg = GroupConfig(psks={psk_id: psk})
    a, b = setup(2, config=cfg)
    cs = a.cipher_suite
    pid = PreSharedKeyID.external(psk_id, cs.random(cs.hash_length))
    out = a.commit([PreSharedKey(pid)])
    a.merge_pending_commit()
    b.process(out.commit)
    same_epoch([a, b])
    prop = b.propose_psk(PreSharedKeyID.external(psk_id, cs.random(cs.hash_length)))
    a.process(prop)
    out = a.commit()
    a.merge_pending_commit()
    b.process(out.commit)
    same_epoch([a, b])
    # Without the PSK a member cannot follow, and nothing changes.
    c = Group(b.state, GroupConfig())
    out = a.commit([PreSharedKey(PreSharedKeyID.external(psk_id, cs.random(32)))])
    before = c.export_state()
    with pytest.raises(ValidationError, match="PSK"):
        c.process(out.commit)
    assert c.export_state() == before


def test_resumption_psk_from_an_earlier_epoch() -> None:
    a, b = setup(2)
    cs = a.cipher_suite
    earlier = a.epoch
    out = a.commit()
    a.merge_pending_commit()
    b.process(out.commit)
    pid = PreSharedKeyID.resumption(ResumptionPSKUsage.APPLICATION, a.group_id, earlier,
                                    cs.random(cs.hash_length))
    out = b.commit([PreSharedKey(pid)])
    b.merge_pending_commit()
    a.process(out.commit)
    same_epoch([a, b])


def test_group_context_extensions_and_required_capabilities() -> None:
    a, b = setup(2)
    req = RequiredCapabilities(extension_types=(ExtensionType.LAST_RESORT,))
    exts = (Extension(ExtensionType.REQUIRED_CAPABILITIES, req.serialize()),)
    prop = b.propose_group_context_extensions(exts)
    a.process(prop)
    out = a.commit()
    a.merge_pending_commit()
    b.process(out.commit)
    assert a.context.extensions == exts == b.context.extensions
    same_epoch([a, b])
    # A requirement no member supports is refused before anything changes.
    bad = RequiredCapabilities(extension_types=(0xF0F0,))
    with pytest.raises(ValidationError, match="support"):
        a.commit([GroupContextExtensions(
            (Extension(ExtensionType.REQUIRED_CAPABILITIES, bad.serialize()),))])
    assert not a.has_pending_commit


def test_external_commit_join_and_resync() -> None:
    a, b = setup(2)
    cs = a.cipher_suite
    signer = Signer.generate(cs, b"ext/1")
    ej = join_external(P, a.group_info(), signer)
    for g in (a, b):
        r = g.process(ej.commit)
        assert isinstance(r, CommitMessage) and r.sender.sender_type == SenderType.NEW_MEMBER_COMMIT
    joiner = ej.group
    same_epoch([a, b, joiner])
    # The joiner's own commit echoed back by the delivery service is recognised.
    assert isinstance(joiner.process(ej.commit), OwnMessage)
    # Resync: b lost its state and rejoins externally, removing its old leaf.
    ej2 = join_external(P, a.group_info(), Signer.generate(cs, b"m/1"),
                        remove_prior=b.leaf_index)
    a.process(ej2.commit)
    joiner.process(ej2.commit)
    assert b.process(ej2.commit).removed_self  # type: ignore[union-attr]
    same_epoch([a, joiner, ej2.group])
    assert len(a.members()) == 3
    # Regression (interop deep_random): the new leaf took the removed leaf's
    # slot, and the rejoined member is active, not "removed".
    assert ej2.group.leaf_index == b.leaf_index and ej2.group.status == Status.ACTIVE
    assert a.process(ej2.group.encrypt(b"back")).data == b"back"  # type: ignore[union-attr]


def test_external_commit_needs_external_pub() -> None:
    (a,) = setup(1)
    gi = a.group_info(with_external_pub=False)
    with pytest.raises(ValidationError, match="external_pub"):
        join_external(P, gi, Signer.generate(a.cipher_suite, b"x/1"))


def test_external_pub_must_be_the_struct() -> None:
    """A GroupInfo whose external_pub holds the bare key (as ts-mls 1.6 sends it)
    instead of the ExternalPub struct is rejected with the rule's section."""
    (a,) = setup(1)
    st = a.state
    _, pub = external_key_pair(st.cs, st.keys.external_secret)
    if pub[0] == 0x1F:
        # A bare key starting with 31 reads as a whole ExternalPub of a 31-byte key,
        # refused for its size instead (test_external_pub_key_of_the_wrong_size).
        pub = b"\x20" + pub[1:]
    exts = (Extension(ExtensionType.RATCHET_TREE, st.tree.serialize()),
            Extension(ExtensionType.EXTERNAL_PUB, pub))
    gi = GroupInfo(st.context, exts, st.confirmation_tag, st.leaf_index).signed(
        st.cs, st.signature_priv)
    with pytest.raises(DecodeError, match=r"external_pub.*§12\.4\.3\.2"):
        join_external(P, MLSMessage.wrap(gi).serialize(),
                      Signer.generate(a.cipher_suite, b"x/1"))


@pytest.mark.parametrize("suite", [2, 5, 7])
def test_propose_add_refuses_a_bad_key_package(suite: int) -> None:
    """An Add of a KeyPackage the group would reject (here a compressed ECDSA key,
    RFC 9420 §5.1.1, as ts-mls 1.6 makes them) fails when proposed, with the
    reason, instead of being sent and then silently left out of every commit."""
    cs = CipherSuite(suite, P)
    good = forge.key_package(cs, b"ts/1")
    n = (len(good.key_package.leaf_node.signature_key) - 1) // 2
    kp = forge.resign_key_package(cs, good, leaf=lambda lf: replace(
        lf, signature_key=bytes([2 + (lf.signature_key[-1] & 1)]) + lf.signature_key[1:1 + n]))
    (a,) = setup(1, suite)
    before = a.export_state()
    with pytest.raises(PublicKeyError, match=r"uncompressed.*§5\.1\.1"):
        a.propose_add(kp)
    assert a.export_state() == before


def test_reinit_moves_the_group_to_a_new_suite() -> None:
    a, b = setup(2)
    prop = a.propose_reinit(b"group-v2", 3)
    b.process(prop)
    out = b.commit()
    b.merge_pending_commit()
    r = a.process(out.commit)
    assert isinstance(r, CommitMessage) and r.reinit
    assert a.status == Status.REINIT and a.pending_reinit is not None
    with pytest.raises(StateError, match="reinitialized"):
        a.encrypt(b"x")
    reinit = a.pending_reinit
    pid, psk = a.resumption_psk()
    cs2 = CipherSuite(reinit.cipher_suite, P)
    cfg = GroupConfig(resumption_psks={(a.group_id, a.epoch): psk})
    new_a = Group.create(P, cs2.id, reinit.group_id, Signer.generate(cs2, b"m/0"), config=cfg)
    b_bundle = create_key_package(cs2, Signer.generate(cs2, b"m/1"))
    out = new_a.commit([Add(b_bundle.key_package), PreSharedKey(pid)])
    new_a.merge_pending_commit()
    assert out.welcome is not None
    with pytest.raises(ValidationError, match="PSK"):
        join_from_welcome(P, out.welcome, b_bundle)
    _, b_psk = b.resumption_psk()
    new_b = join_from_welcome(P, out.welcome, b_bundle,
                              resumption_psks={(b.group_id, b.epoch): b_psk})
    same_epoch([new_a, new_b])
    assert new_a.cipher_suite.id == 3


def test_reinit_may_keep_the_group_id() -> None:
    """Regressions (found by interop reinit/change_ciphersuite): the new group's
    first commit takes the reinit PSK from the old group even when both groups
    have the same group_id (§11.2), not from the new group's own epochs; and
    the PSK nonce has the new suite's length (§8.4)."""
    a, b = setup(2)
    b.process(a.propose_reinit(a.group_id, 7))
    out = b.commit()
    b.merge_pending_commit()
    a.process(out.commit)
    pid, psk = a.resumption_psk()
    cs2 = CipherSuite(7, P)  # SHA-384: the PSK nonce must have the new suite's Nh (§8.4)
    assert len(pid.psk_nonce) == 48
    cfg = GroupConfig(resumption_psks={(a.group_id, a.epoch): psk})
    new_a = Group.create(P, 7, a.group_id, Signer.generate(cs2, b"m/0"), config=cfg)
    b_bundle = create_key_package(cs2, Signer.generate(cs2, b"m/1"))
    out = new_a.commit([Add(b_bundle.key_package), PreSharedKey(pid)])
    new_a.merge_pending_commit()
    assert out.welcome is not None
    _, b_psk = b.resumption_psk()
    new_b = join_from_welcome(P, out.welcome, b_bundle,
                              resumption_psks={(b.group_id, b.epoch): b_psk})
    same_epoch([new_a, new_b])
    assert new_a.group_id == a.group_id and new_a.cipher_suite.id == 7


def test_external_sender_proposal() -> None:
    cs = CipherSuite(1, P)
    server = Signer.generate(cs, b"delivery-service/1")
    exts = (Extension(ExtensionType.EXTERNAL_SENDERS, encode_external_senders(
        (ExternalSender(server.signature_pub, server.credential),))),)
    a, b = setup(2, extensions=exts)
    framed = FramedContent(a.group_id, a.epoch, Sender(SenderType.EXTERNAL, 0), b"",
                           ContentType.PROPOSAL, Remove(1))
    ac = AuthenticatedContent.sign(cs, WireFormat.PUBLIC_MESSAGE, framed, server.signature_priv,
                                   None)
    msg = MLSMessage.wrap(PublicMessage.protect(cs, ac, None, None)).serialize()
    for g in (a, b):
        assert isinstance(g.process(msg), ProposalMessage)
    out = a.commit()
    a.merge_pending_commit()
    assert b.process(out.commit).removed_self  # type: ignore[union-attr]
    # A forged external proposal (wrong key) is rejected.
    framed = FramedContent(a.group_id, a.epoch, Sender(SenderType.EXTERNAL, 0), b"",
                           ContentType.PROPOSAL, Remove(0))
    forged = AuthenticatedContent.sign(cs, WireFormat.PUBLIC_MESSAGE, framed,
                                       cs.generate_signature_key_pair()[0], None)
    with pytest.raises(SignatureError):
        a.process(MLSMessage.wrap(PublicMessage.protect(cs, forged, None, None)).serialize())


def test_pending_commit_flow_and_errors() -> None:
    a, b = setup(2)
    with pytest.raises(PendingCommitError):
        a.merge_pending_commit()
    with pytest.raises(PendingCommitError):
        a.clear_pending_commit()
    with pytest.raises(PendingCommitError):
        a.pending_group_info()  # no next epoch to describe (§12.4.3)
    mine = a.commit()
    with pytest.raises(PendingCommitError):
        a.commit()
    theirs = b.commit()
    b.merge_pending_commit()
    # b's commit won the epoch: a drops its own and follows b.
    a.clear_pending_commit()
    a.process(theirs.commit)
    same_epoch([a, b])
    with pytest.raises(EpochError):
        b.process(mine.commit)
    # Our own merged commit echoed back changes nothing.
    before = b.export_state()
    assert isinstance(b.process(theirs.commit), OwnMessage)
    assert b.export_state() == before


def test_own_pending_commit_echo_merges() -> None:
    a, b = setup(2)
    out = a.commit()
    r = a.process(out.commit)
    assert isinstance(r, CommitMessage) and r.own
    b.process(out.commit)
    same_epoch([a, b])


def test_invalid_commits_are_rejected_without_change() -> None:
    a, b, c = setup(3)
    before = a.export_state()
    with pytest.raises(ValidationError, match="committer"):
        a.commit([Remove(a.leaf_index)])
    with pytest.raises(ValidationError, match="blank or absent"):
        a.commit([Remove(17)])
    with pytest.raises(ValidationError, match="multiple"):
        a.commit([Remove(1), Remove(1)])
    dup = create_key_package(a.cipher_suite, Signer(b.member(1).credential,  # type: ignore[union-attr]
                                                    b.state.signature_priv,
                                                    b.member(1).signature_key))  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match=r"already in the group|duplicates"):
        a.commit([Add(dup.key_package)])
    assert a.export_state() == before
    del c


def test_application_messages_out_of_order_and_limits() -> None:
    a, b = setup(2, config=GroupConfig())
    msgs = [a.encrypt(b"%d" % i) for i in range(10)]
    for i in [3, 0, 9, 1, 2, 8, 4, 5, 7, 6]:
        assert b.process(msgs[i]).data == b"%d" % i  # type: ignore[union-attr]
    # Beyond the maximum forward distance the message is refused.
    a2, b2 = setup(2, config=GroupConfig(ratchet=RatchetConfig(max_forward_distance=5,
                                                                out_of_order_tolerance=2)))
    far = [a2.encrypt(b"x") for _ in range(8)]
    with pytest.raises(ValidationError, match="forward distance"):
        b2.process(far[7])
    assert b2.process(far[5]).data == b"x"  # type: ignore[union-attr]
    # Only the 2 most recent skipped keys are retained.
    assert b2.process(far[4]).data == b"x"  # type: ignore[union-attr]
    with pytest.raises(ReplayError):
        b2.process(far[0])


def test_state_export_is_deterministic_and_versioned() -> None:
    a, b = setup(2)
    s1 = a.export_state()
    assert Group.from_state(P, s1).export_state() == s1

    with pytest.raises(DecodeError):
        Group.from_state(P, b"XXXX" + s1[4:])
    with pytest.raises(DecodeError):
        Group.from_state(P, s1[:4] + b"\x00\x09" + s1[6:])
    with pytest.raises(DecodeError):
        Group.from_state(P, s1[:-1])
    # A pending commit survives the round trip and can be merged afterwards.
    out = a.commit()
    restored = Group.from_state(P, a.export_state())
    restored.merge_pending_commit()
    b.process(out.commit)
    same_epoch([restored, b])


def test_late_message_is_attributed_to_the_sender_of_its_epoch() -> None:
    a, b, c = setup(3)
    cs = a.cipher_suite
    d_bundle = create_key_package(cs, Signer.generate(cs, b"m/3"))
    # a removes b and adds d, who takes b's leaf.
    out = a.commit([Remove(b.leaf_index), Add(d_bundle.key_package)])
    a.merge_pending_commit()
    late = b.encrypt(b"sent before b saw its removal")
    c.process(out.commit)
    assert c.member(1) is not None and c.member(1).credential.identity == b"m/3"  # type: ignore[union-attr]
    r = c.process(late)
    assert isinstance(r, ApplicationMessage)
    assert r.credential.identity == b"m/1" and r.epoch == a.epoch - 1
    # Exported and restored, the past epoch still knows who was there.
    late2 = b.encrypt(b"again")
    restored = Group.from_state(P, c.export_state())
    assert restored.process(late2).credential.identity == b"m/1"  # type: ignore[union-attr]
