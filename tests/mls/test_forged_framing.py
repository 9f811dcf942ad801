"""Forged inputs, part 3: framing (RFC 9420 §6, §9.2, §12.4.2, §15.3): epochs,
padding, reuse guard, generations, sender data and content types."""

from __future__ import annotations

from mls.errors import DecodeError, DecryptionError, EpochError, ReplayError, ValidationError
from mls.framing import ContentType, WireFormat
from mls.group import GroupConfig
from mls.proposals import Remove
from mls.secret_tree import RatchetConfig

from . import forge as f


def test_commit_for_a_past_epoch() -> None:
    a, b, _c = f.make_group(3)
    forged = f.forge_commit(a, epoch=a.epoch - 1)
    f.assert_rejected(b, forged.message, EpochError, "§12.4.2", then=f.genuine_commit(a))


def test_commit_for_a_future_epoch() -> None:
    a, b, _c = f.make_group(3)
    forged = f.forge_commit(a, epoch=a.epoch + 1)
    f.assert_rejected(b, forged.message, EpochError, "§12.4.2", then=f.genuine_commit(a))


def test_private_handshake_for_a_past_epoch() -> None:
    # Past epochs are retained for application messages only (§15.3).
    a, b, _c = f.make_group(3)
    late = f.forge_commit(a, wire=WireFormat.PRIVATE_MESSAGE).message
    nxt = f.genuine_commit(a)()
    b.process(nxt)
    f.assert_rejected(b, late, EpochError, "§12.4.2", then=f.genuine_app(a))


def test_application_for_an_unknown_epoch() -> None:
    a, b, _c = f.make_group(3, config=GroupConfig(max_past_epochs=0))
    late = a.encrypt(b"late")
    b.process(f.genuine_commit(a)())
    f.assert_rejected(b, late, EpochError, "§15.3", then=f.genuine_app(a))


def test_nonzero_padding() -> None:
    a, b, _c = f.make_group(3)
    ac = f.sign(a, WireFormat.PRIVATE_MESSAGE, f.framed(a, ContentType.APPLICATION, b"pad"))
    assert b.process(f.private(a, ac, padding=bytes(7))).data == b"pad"  # type: ignore[union-attr]
    bad = f.private(a, ac, padding=bytes(6) + b"\x01", generation=1)
    f.assert_rejected(b, bad, DecodeError, "§6.3.1",
                      then=lambda: f.application(a, generation=2))


def test_reuse_guard_binds_the_nonce() -> None:
    # The sender data announces one reuse guard, the content was sealed under another.
    a, b, _c = f.make_group(3)
    ac = f.sign(a, WireFormat.PRIVATE_MESSAGE, f.framed(a, ContentType.APPLICATION, b"x"))
    bad = f.private(a, ac, reuse_guard=b"\x00\x00\x00\x01", content_guard=b"\x00\x00\x00\x02")
    f.assert_rejected(b, bad, DecryptionError, "§6.3.1", then=f.genuine_app(a))


def test_generation_beyond_the_forward_distance() -> None:
    cfg = GroupConfig(ratchet=RatchetConfig(max_forward_distance=5, out_of_order_tolerance=4))
    a, b, _c = f.make_group(3, config=cfg)
    assert b.process(f.application(a, generation=5)).data == b"forged"  # type: ignore[union-attr]
    far = f.application(a, generation=5 + 1 + 6)
    f.assert_rejected(b, far, ValidationError, "§9.2", "forward distance",
                      then=lambda: f.application(a, generation=7))


def test_replay_in_order() -> None:
    a, b, _c = f.make_group(3)
    msg = a.encrypt(b"once")
    b.process(msg)
    f.assert_rejected(b, msg, ReplayError, "§9.2", then=f.genuine_app(a))


def test_replay_out_of_order() -> None:
    a, b, _c = f.make_group(3)
    first, second, third = (a.encrypt(b"%d" % i) for i in range(3))
    b.process(third)
    b.process(first)  # a retained, skipped key: used once...
    f.assert_rejected(b, first, ReplayError, "§9.2", then=lambda: second)  # ...then gone


def test_sender_data_names_a_blank_leaf() -> None:
    a, b, c = f.make_group(4)[:3]
    out = a.commit([Remove(3)])
    a.merge_pending_commit()
    b.process(out.commit)
    # A message that decrypts with leaf 0's ratchet but whose sender data says leaf 3.
    del c
    ac = f.sign(a, WireFormat.PRIVATE_MESSAGE, f.framed(a, ContentType.APPLICATION, b"x"))
    bad = f.private(a, ac, sender_data_leaf=3)
    f.assert_rejected(b, bad, ValidationError, "§6.3.2", "not a member", then=f.genuine_app(a))


def test_sender_data_leaf_out_of_range() -> None:
    a, b, _c = f.make_group(3)
    ac = f.sign(a, WireFormat.PRIVATE_MESSAGE, f.framed(a, ContentType.APPLICATION, b"x"))
    bad = f.private(a, ac, sender_data_leaf=1000)
    f.assert_rejected(b, bad, ValidationError, "§6.3.2", then=f.genuine_app(a))


def test_application_data_in_a_public_message() -> None:
    a, b, _c = f.make_group(3)
    fc = f.framed(a, ContentType.APPLICATION, b"in the clear")
    ac = f.sign(a, WireFormat.PUBLIC_MESSAGE, fc)
    from mls.message import MLSMessage
    from mls.public_message import PublicMessage

    tag = a.cipher_suite.mac(a.state.keys.membership_key, PublicMessage._tbm(ac, a.context))
    bad = MLSMessage.wrap(PublicMessage(ac.content, ac.auth, tag)).serialize()
    f.assert_rejected(b, bad, ValidationError, "§6.2", then=f.genuine_app(a))


def test_message_for_another_group() -> None:
    a, b, _c = f.make_group(3)
    fc = f.framed(a, ContentType.PROPOSAL, Remove(2))
    fc = type(fc)(b"another-group", fc.epoch, fc.sender, b"", fc.content_type, fc.content)
    bad = f.public(a, f.sign(a, WireFormat.PUBLIC_MESSAGE, fc))
    f.assert_rejected(b, bad, ValidationError, "§6.1", "another group",
                      then=lambda: f.public_proposal(a, Remove(2)))


def test_proposal_from_our_own_leaf_that_we_did_not_send() -> None:
    a, b, _c = f.make_group(3)
    # A member forges a proposal in b's name (it knows the membership key, not b's key).
    fc = f.framed(a, ContentType.PROPOSAL, Remove(2), sender=f.Sender.member(1))
    bad = f.public(a, f.sign(a, WireFormat.PUBLIC_MESSAGE, fc))
    f.assert_rejected(b, bad, ValidationError, "§6.2", "did not send",
                      then=lambda: f.public_proposal(a, Remove(2)))
