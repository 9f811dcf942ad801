"""Forged inputs, part 1: signatures, MACs and tags (RFC 9420 §5.1.2, §6.1, §6.2,
§7.3, §10.1, §12.4.2, §12.4.3). Each forgery is valid everywhere except in the
one value under test; the controls first show that the toolkit's unmodified
forgeries are accepted, so every rejection below comes from the check named."""

from __future__ import annotations

from dataclasses import replace

from mls.errors import ConfirmationTagError, MembershipTagError, SignatureError
from mls.extensions import Extension, ExtensionType, ExternalSender, encode_external_senders
from mls.framing import ContentType, Sender, SenderType, WireFormat
from mls.group import ApplicationMessage, CommitMessage, ProposalMessage, Signer, join_external
from mls.group_info import GroupInfo
from mls.leaf_node import LeafNodeSource
from mls.proposals import Add, Remove, Update

from . import forge as f
from .forge import P


def other_key(g: f.Group) -> bytes:
    return g.cipher_suite.generate_signature_key_pair()[0]


# -- controls: the toolkit's forgeries are valid when nothing is changed ------
def test_control_forged_messages_are_accepted_unmodified() -> None:
    a, b, c = f.make_group(3)
    assert isinstance(b.process(f.application(a, b"plain")), ApplicationMessage)
    assert isinstance(b.process(f.public_proposal(a, Remove(2))), ProposalMessage)
    forged = f.forge_commit(a, [Remove(2)])
    assert isinstance(b.process(forged.message), CommitMessage)
    assert b.tree == forged.tree
    forged_private = f.forge_commit(c, wire=WireFormat.PRIVATE_MESSAGE)
    assert isinstance(a.process(forged_private.message), CommitMessage)


def test_control_forged_external_commit_welcome_and_group_info_are_accepted() -> None:
    a, b = f.make_group(2)
    joiner = Signer.generate(a.cipher_suite, b"ext/1")
    assert isinstance(b.process(f.forge_external_commit(a, joiner).message), CommitMessage)
    (x,) = f.make_group(1)
    bundle = f.key_package(x.cipher_suite)
    out = x.commit([Add(bundle.key_package)])
    welcome = f.reforge_welcome(out.welcome or b"", bundle, x.state.signature_priv)
    assert welcome != out.welcome  # re-encrypted: fresh HPKE randomness
    assert f.join_from_welcome_(welcome, bundle).epoch == 1
    (y,) = f.make_group(1)
    gi = f.reforge_group_info(y, lambda gi: gi)
    assert join_external(P, gi, Signer.generate(y.cipher_suite, b"z/1")).group.epoch == 1


# -- FramedContent signatures (§6.1) ------
def test_public_message_member_signature() -> None:
    a, b, _ = f.make_group(3)
    fc = f.framed(a, ContentType.PROPOSAL, Remove(2))
    ac = f.sign(a, WireFormat.PUBLIC_MESSAGE, fc, signature_priv=other_key(a))
    f.assert_rejected(b, f.public(a, ac), SignatureError, "§6.1",
                      then=lambda: f.public_proposal(a, Remove(2)))


def test_public_message_commit_signature() -> None:
    a, b, _ = f.make_group(3)
    forged = f.forge_commit(a, signature_priv=other_key(a))
    f.assert_rejected(b, forged.message, SignatureError, "§6.1", then=f.genuine_commit(a))


def test_new_member_proposal_signature() -> None:
    a, b = f.make_group(2)
    bundle = f.key_package(a.cipher_suite)
    fc = f.framed(a, ContentType.PROPOSAL, Add(bundle.key_package),
                  sender=Sender(SenderType.NEW_MEMBER_PROPOSAL))
    good = f.public(a, f.sign(a, WireFormat.PUBLIC_MESSAGE, fc,
                              signature_priv=bundle.signature_priv))
    bad = f.public(a, f.sign(a, WireFormat.PUBLIC_MESSAGE, fc, signature_priv=other_key(a)))
    f.assert_rejected(b, bad, SignatureError, "§6.1", then=lambda: good)


def test_new_member_commit_signature() -> None:
    a, b = f.make_group(2)
    joiner = Signer.generate(a.cipher_suite, b"ext/1")
    bad = f.forge_external_commit(a, joiner, signature_priv=other_key(a))
    f.assert_rejected(b, bad.message, SignatureError, "§6.1",
                      then=lambda: f.forge_external_commit(a, joiner).message)


def test_external_sender_signature() -> None:
    cs = f.CipherSuite(1, P)
    server = Signer.generate(cs, b"ds/1")
    exts = (Extension(ExtensionType.EXTERNAL_SENDERS, encode_external_senders(
        (ExternalSender(server.signature_pub, server.credential),))),)
    a, b = f.make_group(2, extensions=exts)
    fc = f.framed(a, ContentType.PROPOSAL, Remove(1), sender=Sender(SenderType.EXTERNAL, 0))
    bad = f.public(a, f.sign(a, WireFormat.PUBLIC_MESSAGE, fc, signature_priv=other_key(a)))
    good = f.public(a, f.sign(a, WireFormat.PUBLIC_MESSAGE, fc,
                              signature_priv=server.signature_priv))
    f.assert_rejected(b, bad, SignatureError, "§6.1", then=lambda: good)


def test_private_message_signature() -> None:
    a, b, _ = f.make_group(3)
    ac = f.sign(a, WireFormat.PRIVATE_MESSAGE, f.framed(a, ContentType.APPLICATION, b"x"),
                signature_priv=other_key(a))
    f.assert_rejected(b, f.private(a, ac), SignatureError, "§6.1", then=f.genuine_app(a))


# -- LeafNode and KeyPackage signatures (§7.3, §10.1) ------
def test_key_package_leaf_signature() -> None:
    a, b = f.make_group(2)
    cs = a.cipher_suite
    bundle = f.key_package(cs)
    stranger = other_key(a)
    # The leaf carries someone else's signature; the KeyPackage signature over it is valid.
    kp = f.resign_key_package(cs, bundle, leaf=lambda leaf: leaf)
    kp = replace(kp, leaf_node=kp.leaf_node.signed(cs, stranger)).signed(cs, bundle.signature_priv)
    forged = f.forge_commit(a, [Add(kp)])
    f.assert_rejected(b, forged.message, SignatureError, "§7.3", "leaf node signature",
                      then=f.genuine_commit(a))


def test_key_package_signature() -> None:
    a, b = f.make_group(2)
    cs = a.cipher_suite
    bundle = f.key_package(cs)
    kp = replace(bundle.key_package, signature=bundle.key_package.signed(
        cs, other_key(a)).signature)
    forged = f.forge_commit(a, [Add(kp)])
    f.assert_rejected(b, forged.message, SignatureError, "§10.1", then=f.genuine_commit(a))


def test_update_leaf_signature() -> None:
    a, b, c = f.make_group(3)
    cs = a.cipher_suite
    old = c.member(2)
    assert old is not None
    new_key = cs.generate_hpke_key_pair()[1]
    # Signed by carol, but for leaf 1: the signature does not verify for leaf 2 (§7.3).
    leaf = f.resign_leaf(cs, old, c.state.signature_priv, c.group_id, 1,
                         encryption_key=new_key, leaf_node_source=LeafNodeSource.UPDATE,
                         lifetime=None, parent_hash=b"")
    prop = f.public_proposal(c, Update(leaf))
    ref = f.proposal_ref(c, prop)
    for g in (a, b):
        g.process(prop)
    forged = f.forge_commit(a, [ref])
    f.assert_rejected(b, forged.message, SignatureError, "§7.3", then=f.genuine_commit(a))


def test_commit_path_leaf_signature() -> None:
    a, b, _ = f.make_group(3)
    cs = a.cipher_suite

    def wrong_index(path: f.UpdatePath, tree: f.RatchetTree) -> f.UpdatePath:
        return replace(path, leaf_node=path.leaf_node.signed(
            cs, a.state.signature_priv, a.group_id, 5))

    forged = f.forge_commit(a, tamper_path=wrong_index)
    f.assert_rejected(b, forged.message, SignatureError, "§7.3", then=f.genuine_commit(a))


def test_group_info_signature_on_welcome() -> None:
    (a,) = f.make_group(1)
    bundle = f.key_package(a.cipher_suite)
    out = a.commit([Add(bundle.key_package)])
    assert out.welcome is not None
    bad = f.reforge_welcome(out.welcome, bundle, other_key(a))
    f.assert_join_rejected(lambda: f.join_from_welcome_(bad, bundle), SignatureError,
                           "§12.4.3.1")
    assert f.join_from_welcome_(out.welcome, bundle).epoch == 1


def test_group_info_signature_on_external_join() -> None:
    a, b = f.make_group(2)
    cs = a.cipher_suite

    def stranger_signed(gi: GroupInfo) -> GroupInfo:
        return gi.signed(cs, other_key(a))

    bad = f.reforge_group_info(a, stranger_signed, resign=False)
    joiner = Signer.generate(cs, b"ext/1")
    f.assert_join_rejected(lambda: join_external(P, bad, joiner), SignatureError, "§12.4.3.1")
    assert join_external(P, a.group_info(), joiner).group.epoch == a.epoch + 1
    del b


# -- MACs and tags ------
def test_membership_tag() -> None:
    a, b, _ = f.make_group(3)
    ac = f.sign(a, WireFormat.PUBLIC_MESSAGE, f.framed(a, ContentType.PROPOSAL, Remove(2)))
    bad = f.public(a, ac, membership_key=bytes(32))
    f.assert_rejected(b, bad, MembershipTagError, "§6.2",
                      then=lambda: f.public_proposal(a, Remove(2)))


def test_commit_confirmation_tag() -> None:
    a, b, _ = f.make_group(3)
    good = f.forge_commit(a)
    tag = good.ac.auth.confirmation_tag
    assert tag is not None
    bad = f.forge_commit(a, confirmation_tag=bytes([tag[0] ^ 1]) + tag[1:])
    f.assert_rejected(b, bad.message, ConfirmationTagError, "§12.4.2", then=f.genuine_commit(a))


def test_welcome_group_info_confirmation_tag() -> None:
    (a,) = f.make_group(1)
    bundle = f.key_package(a.cipher_suite)
    out = a.commit([Add(bundle.key_package)])
    assert out.welcome is not None

    def flip_tag(gi: GroupInfo) -> GroupInfo:
        return replace(gi, confirmation_tag=bytes([gi.confirmation_tag[0] ^ 1])
                       + gi.confirmation_tag[1:])

    bad = f.reforge_welcome(out.welcome, bundle, a.state.signature_priv, group_info=flip_tag,
                            fix_tag=False)
    f.assert_join_rejected(lambda: f.join_from_welcome_(bad, bundle), ConfirmationTagError,
                           "§12.4.3.1")
    assert f.join_from_welcome_(out.welcome, bundle).epoch == 1
