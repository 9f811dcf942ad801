"""What a non-member (the delivery service) can verify from GroupInfos and public
handshake messages: every check gets an input valid everywhere else and wrong
exactly there."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mls.credentials import Credential
from mls.crypto import CipherSuite, default_provider
from mls.errors import DecodeError, MLSError, SignatureError, ValidationError
from mls.extensions import Extension, ExtensionType
from mls.framing import AuthenticatedContent, FramedContentAuthData, WireFormat
from mls.group import Group, Signer, create_key_package, join_external, join_from_welcome
from mls.group_info import GroupInfo
from mls.message import MLSMessage
from mls.proposals import Add, ExternalInit, ProposalOrRef, Remove
from mls.public_group import (
    check_next_group_info,
    read_group_info,
    verify_external_commit,
    verify_member_message,
)
from mls.public_message import PublicMessage

P = default_provider()
CS = CipherSuite(1, P)


def two_members() -> tuple[Group, Group, Signer]:
    alice_signer = Signer.generate(CS, b"alice/1")
    alice = Group.create(P, 1, b"gid", alice_signer)
    bob_signer = Signer.generate(CS, b"bob/1")
    bundle = create_key_package(CS, bob_signer)
    out = alice.commit([Add(bundle.key_package)])
    alice.merge_pending_commit()
    assert out.welcome is not None
    bob = join_from_welcome(P, out.welcome, bundle)
    return alice, bob, bob_signer


def _same_user(old: Credential, new: Credential) -> bool:
    return old.identity.split(b"/")[0] == new.identity.split(b"/")[0]


def resign(message: bytes, signer: Signer, group: Group, **changes: object) -> bytes:
    """The same PublicMessage with its FramedContent changed and signed again by
    ``signer`` (a forger with a valid key, not a broken signature)."""
    msg = MLSMessage.deserialize(message).body
    assert isinstance(msg, PublicMessage)
    content = replace(msg.content, **changes)  # type: ignore[arg-type]
    ac = AuthenticatedContent.sign(CS, WireFormat.PUBLIC_MESSAGE, content, signer.signature_priv,
                                   group.context)
    ac = replace(ac, auth=FramedContentAuthData(ac.auth.signature, msg.auth.confirmation_tag))
    return MLSMessage.wrap(PublicMessage(ac.content, ac.auth, msg.membership_tag)).serialize()


def test_read_group_info_exposes_the_public_state() -> None:
    alice, bob, _ = two_members()
    pg = read_group_info(alice.group_info())
    assert pg.group_id == b"gid" and pg.epoch == 1
    assert [(m.leaf_index, m.identity) for m in pg.members()] == [(0, b"alice/1"), (1, b"bob/1")]
    assert pg.signer.identity == b"alice/1"
    assert read_group_info(bob.group_info()).signer.leaf_index == 1


def test_group_info_checks() -> None:
    alice, _, bob_signer = two_members()
    gi = MLSMessage.deserialize(alice.group_info()).body
    assert isinstance(gi, GroupInfo)

    def wrap(g: GroupInfo) -> bytes:
        return MLSMessage.wrap(g).serialize()

    with pytest.raises(SignatureError):  # signed by another member's key
        read_group_info(wrap(gi.signed(CS, bob_signer.signature_priv)))
    with pytest.raises(SignatureError):
        read_group_info(wrap(replace(gi, signature=bytes(64))))
    without_tree = tuple(e for e in gi.extensions if e.extension_type != ExtensionType.RATCHET_TREE)
    with pytest.raises(ValidationError, match="ratchet_tree"):
        read_group_info(wrap(replace(gi, extensions=without_tree).signed(
            CS, alice.state.signature_priv)))
    without_pub = tuple(e for e in gi.extensions if e.extension_type != ExtensionType.EXTERNAL_PUB)
    with pytest.raises(ValidationError, match="external_pub"):
        read_group_info(wrap(replace(gi, extensions=without_pub).signed(
            CS, alice.state.signature_priv)))
    twice = (*gi.extensions, gi.extensions[0])
    with pytest.raises(ValidationError, match="more than once"):
        read_group_info(wrap(replace(gi, extensions=twice).signed(CS, alice.state.signature_priv)))
    other_hash = replace(gi.group_context, tree_hash=bytes(32))
    with pytest.raises(ValidationError, match="tree_hash"):
        read_group_info(wrap(replace(gi, group_context=other_hash).signed(
            CS, alice.state.signature_priv)))
    with pytest.raises(ValidationError, match="signer"):
        read_group_info(wrap(replace(gi, signer=5).signed(CS, alice.state.signature_priv)))
    with pytest.raises(ValidationError, match="GroupInfo"):
        read_group_info(alice.encrypt(b"not a GroupInfo"))
    with pytest.raises(DecodeError):
        read_group_info(alice.group_info()[:-3])


def test_member_commit_and_its_group_info() -> None:
    alice, bob, bob_signer = two_members()
    before = read_group_info(alice.group_info())
    commit = alice.commit().commit
    after = read_group_info(alice.pending_group_info())
    assert verify_member_message(before, commit).identity == b"alice/1"
    check_next_group_info(before, commit, after, committer_leaf=0)

    # Bob re-signs Alice's commit with his own key: the signature is Bob's, the sender leaf 0.
    with pytest.raises(SignatureError):
        verify_member_message(before, resign(commit, bob_signer, alice))
    # Signed by the committer but not the committer's leaf.
    with pytest.raises(ValidationError, match="committer"):
        check_next_group_info(before, commit, after, committer_leaf=1)
    # The GroupInfo of the current epoch posted with the commit.
    with pytest.raises(ValidationError, match="epoch"):
        check_next_group_info(before, commit, before, committer_leaf=0)
    # A GroupInfo of another commit creating the same epoch.
    bob.commit()
    bob_after = read_group_info(bob.pending_group_info())
    with pytest.raises(ValidationError, match="confirmation_tag"):
        check_next_group_info(before, commit, bob_after, committer_leaf=1)
    # The right confirmation tag, but a transcript that does not follow the commit.
    forged = MLSMessage.deserialize(bob.pending_group_info()).body
    assert isinstance(forged, GroupInfo)
    tag = MLSMessage.deserialize(commit).body.auth.confirmation_tag  # type: ignore[union-attr]
    forged = replace(forged, confirmation_tag=tag, signer=1).signed(CS, bob_signer.signature_priv)
    with pytest.raises(ValidationError, match="transcript"):
        check_next_group_info(before, commit, read_group_info(MLSMessage.wrap(forged).serialize()),
                              committer_leaf=1)
    # Extensions that no proposal changed.
    gi = MLSMessage.deserialize(alice.pending_group_info()).body
    assert isinstance(gi, GroupInfo)
    ctx = replace(gi.group_context, extensions=(Extension(0xFF00, b"x"),))
    changed = replace(gi, group_context=ctx).signed(CS, alice.state.signature_priv)
    with pytest.raises(ValidationError):
        check_next_group_info(before, commit, read_group_info(MLSMessage.wrap(changed).serialize()),
                              committer_leaf=0)


def test_external_commit_verification() -> None:
    alice, _, _ = two_members()
    pg = read_group_info(alice.group_info())
    carol = Signer.generate(CS, b"carol/1")
    joined = join_external(P, alice.group_info(), carol)
    result = verify_external_commit(pg, joined.commit)
    assert result.joiner.identity == b"carol/1" and result.joiner.leaf_index == 2
    assert result.removed_leaf is None
    check_next_group_info(pg, joined.commit, read_group_info(joined.group.group_info()), 2)

    # A resync: the joiner (another device of the same user, as the application's
    # same_client rule allows) removes a leaf and takes the leftmost blank one (the
    # same), and is an active member there.
    bob2 = Signer.generate(CS, b"bob/2")
    alice.config = replace(alice.config, same_client=_same_user)
    resync = join_external(P, alice.group_info(), bob2, remove_prior=1, config=alice.config)
    result = verify_external_commit(pg, resync.commit)
    assert result.removed_leaf == 1 and result.joiner.leaf_index == 1
    alice.process(resync.commit)
    assert resync.group.process(alice.encrypt(b"welcome back")).data == b"welcome back"

    # Signed by someone else than the new leaf.
    mallory = Signer.generate(CS, b"mallory/1")
    with pytest.raises(SignatureError):
        verify_external_commit(pg, resign(joined.commit, mallory, alice))
    msg = MLSMessage.deserialize(joined.commit).body
    assert isinstance(msg, PublicMessage)
    commit = msg.content.content

    def with_proposals(*proposals: ProposalOrRef) -> bytes:
        return resign(joined.commit, carol, alice,
                      content=replace(commit, proposals=proposals))  # type: ignore[type-var]

    init = commit.proposals[0]  # type: ignore[union-attr]
    kp = create_key_package(CS, Signer.generate(CS, b"dave/1")).key_package
    cases = {
        "no ExternalInit": with_proposals(),
        "two ExternalInit": with_proposals(init, ProposalOrRef(proposal=ExternalInit(b"x" * 32))),
        "an Add": with_proposals(init, ProposalOrRef(proposal=Add(kp))),
        "by reference": with_proposals(init, ProposalOrRef(reference=bytes(32))),
        "blank Remove": with_proposals(init, ProposalOrRef(proposal=Remove(7))),
        "two Removes": with_proposals(init, ProposalOrRef(proposal=Remove(0)),
                                      ProposalOrRef(proposal=Remove(1))),
        "no path": resign(joined.commit, carol, alice,
                          content=replace(commit, path=None)),  # type: ignore[type-var]
        "old epoch": resign(joined.commit, carol, alice, epoch=0),
        "other group": resign(joined.commit, carol, alice, group_id=b"other"),
    }
    for name, data in cases.items():
        with pytest.raises(MLSError):
            verify_external_commit(pg, data)
            pytest.fail(name)
    # A member commit is not an external commit.
    with pytest.raises(ValidationError):
        verify_external_commit(pg, alice.commit().commit)
