"""Forged inputs, part 6: the checks the mutation run (``scripts/mutate_checks.py``)
found without a test of their own, each fed input valid everywhere else and wrong
exactly there (RFC 9420 §5.1.1, §5.3.1, §6.2, §7.2, §7.3, §8.6, §12.1, §12.1.8.1, §12.2)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from mls.commit import Commit
from mls.credentials import Credential
from mls.crypto import CipherSuite
from mls.errors import DecodeError, MLSError, PublicKeyError, SignatureError, ValidationError
from mls.extensions import Extension, ExtensionType, RequiredCapabilities
from mls.framing import ContentType, FramedContentAuthData, Sender, SenderType, WireFormat
from mls.group import (
    Group,
    GroupConfig,
    KeyPackageBundle,
    Signer,
    default_capabilities,
    join_external,
    join_from_welcome,
)
from mls.leaf_node import Capabilities, LeafNode
from mls.nodes import ParentNode
from mls.proposals import Add, PreSharedKey, Remove
from mls.psk import PreSharedKeyID, ResumptionPSKUsage
from mls.ratchet_tree import RatchetTree

from . import forge as f
from .forge import P
from .test_forged_proposals import CFG, an_update, joiner, nonce, rejects, server_and_group


# -- receiving group messages (§6.2, §12.1, §12.1.8.1) ------
def test_process_refuses_a_message_that_is_not_for_a_group() -> None:
    a, b, _c = f.make_group(3)
    f.assert_rejected(b, a.group_info(), ValidationError, "", "GROUP_INFO is not a group message",
                      then=f.genuine_app(a))


def test_commit_path_leaf_with_an_unknown_leaf_node_source() -> None:
    """A commit whose UpdatePath leaf names leaf_node_source 4 (§7.2 defines
    1-3) is refused as undecodable, and changes nothing."""
    a, b, _c = f.make_group(3)
    out = a.commit()
    commit = out.commit
    leaf = a.state.pending_commit.next_state.tree.leaf(0)  # type: ignore[union-attr]
    assert leaf is not None
    content = leaf.content_bytes()
    # The source octet follows the keys, the credential and the capabilities.
    at = (len(LeafNode.deserialize(leaf.serialize()).encryption_key) + 1
          + len(leaf.signature_key) + 1 + len(leaf.credential.serialize())
          + len(leaf.capabilities.serialize()))
    assert content[at] == 3  # commit
    start = commit.index(content)
    bad = commit[:start + at] + bytes((4,)) + commit[start + at + 1:]
    f.assert_rejected(b, bad, DecodeError, "", "unknown leaf_node_source 4",
                      then=f.genuine_app(a))


def test_same_proposal_received_twice() -> None:
    a, b, _c = f.make_group(3)
    proposal = a.propose_remove(2)
    b.process(proposal)
    f.assert_rejected(b, proposal, ValidationError, "§12.1", "duplicate proposal",
                      then=f.genuine_app(a))


def test_public_message_from_a_blank_leaf() -> None:
    a, b, c, d = f.make_group(4)
    out = a.commit([Remove(2)])
    a.merge_pending_commit()
    for g in (b, d):
        g.process(out.commit)
    del c
    fc = f.framed(a, ContentType.PROPOSAL, Remove(3), sender=Sender.member(2))
    bad = f.public(a, f.sign(a, WireFormat.PUBLIC_MESSAGE, fc))  # a's valid membership tag
    f.assert_rejected(b, bad, ValidationError, "§6.2", "leaf 2 is not a member",
                      then=f.genuine_app(a))


def test_external_sender_sends_a_commit() -> None:
    server, a, b = server_and_group()
    fc = f.framed(a, ContentType.COMMIT, Commit((), None), sender=Sender(SenderType.EXTERNAL, 0))
    ac = f.sign(a, WireFormat.PUBLIC_MESSAGE, fc, signature_priv=server.signature_priv)
    ac = replace(ac, auth=FramedContentAuthData(ac.auth.signature, bytes(32)))
    f.assert_rejected(b, f.public(a, ac), ValidationError, "§12.1.8", "may only send proposals",
                      then=f.genuine_app(a))


def test_external_sender_index_not_in_the_group() -> None:
    server, a, b = server_and_group()
    fc = f.framed(a, ContentType.PROPOSAL, Remove(0), sender=Sender(SenderType.EXTERNAL, 1))
    bad = f.public(a, f.sign(a, WireFormat.PUBLIC_MESSAGE, fc,
                             signature_priv=server.signature_priv))
    f.assert_rejected(b, bad, ValidationError, "§12.1.8.1", "unknown external sender",
                      then=f.genuine_app(a))


# -- proposal lists (§12.2, §8.6) ------
def test_two_updates_from_one_leaf() -> None:
    a, b, c = f.make_group(3)
    refs = []
    for _ in range(2):
        proposal = f.public_proposal(b, an_update(b))
        for g in (a, c):
            g.process(proposal)
        refs.append(f.proposal_ref(b, proposal))
    forged = f.forge_commit(a, refs)
    f.assert_rejected(c, forged.message, ValidationError, "§12.2",
                      "multiple Update/Remove proposals for leaf 1", then=f.genuine_app(a))


def test_update_inside_an_external_commit() -> None:
    # Only members send Updates (§12.1.2); the §12.4.3.2 rule would also refuse it.
    a, b = f.make_group(2)
    forged = f.forge_external_commit(a, joiner(a), [an_update(a)])
    f.assert_rejected(b, forged.message, ValidationError, "§12.1.2", "only members",
                      then=lambda: f.forge_external_commit(a, joiner(a)).message)


def test_resumption_psk_of_an_epoch_this_group_does_not_keep() -> None:
    groups = f.make_group(3, config=CFG)
    pid = PreSharedKeyID.resumption(ResumptionPSKUsage.APPLICATION, groups[0].group_id, 99,
                                    nonce(groups[0]))
    rejects([PreSharedKey(pid)], "resumption PSK for epoch 99 is unknown", "§8.6", groups=groups)


def test_ed25519_signature_key_of_the_wrong_length() -> None:
    cs = CipherSuite(1, P)
    a, b = f.make_group(2)
    kp = f.resign_key_package(cs, f.key_package(cs, b"new/1"), leaf=lambda lf: replace(
        lf, signature_key=lf.signature_key + b"\x00"))
    f.assert_rejected(b, f.forge_commit(a, [Add(kp)]).message, PublicKeyError, "§5.1.1",
                      "must be 32 bytes", then=f.genuine_commit(a))


# -- joining (§12.4.3.1): the entry points and the leaves of the received tree ------
def test_join_from_welcome_given_a_group_info() -> None:
    a, _b = f.make_group(2)
    kp = f.key_package(a.cipher_suite, b"joiner/1")
    f.assert_join_rejected(lambda: join_from_welcome(P, a.group_info(), kp), ValidationError,
                           "", "expected a Welcome")


def test_join_external_given_a_welcome() -> None:
    a, _b = f.make_group(2)
    kp = f.key_package(a.cipher_suite, b"joiner/1")
    welcome = a.commit([Add(kp.key_package)]).welcome
    assert welcome is not None
    f.assert_join_rejected(lambda: join_external(P, welcome,
                                                 Signer.generate(a.cipher_suite, b"x/1")),
                           ValidationError, "", "expected a GroupInfo")


def three_and_a_joiner(required: int | None = None
                       ) -> tuple[Group, bytes, KeyPackageBundle, KeyPackageBundle]:
    """a alone adds c (leaf 1, KeyPackage source) and the joiner (leaf 2), without a
    path; with ``required``, the group requires that extension type of every leaf."""
    exts: tuple[Extension, ...] = ()
    caps: Capabilities | None = None
    if required is not None:
        exts = (Extension(ExtensionType.REQUIRED_CAPABILITIES,
                          RequiredCapabilities(extension_types=(required,)).serialize()),)
        base = default_capabilities()
        caps = replace(base, extensions=(*base.extensions, required))
    (a,) = f.make_group(1, extensions=exts, capabilities=caps)
    cs = a.cipher_suite
    c, joiner = (f.key_package(cs, b"c/1", capabilities=caps),
                 f.key_package(cs, b"joiner/1", capabilities=caps))
    out = a.commit([Add(c.key_package), Add(joiner.key_package)], force_path=False)
    a.merge_pending_commit()
    assert out.welcome is not None
    return a, out.welcome, c, joiner


def join_with_leaf_1(change: Callable[[LeafNode, KeyPackageBundle], LeafNode],
                     error: type[MLSError], section: str, match: str,
                     required: int | None = None) -> None:
    """Leaf 1 changed by ``change`` (then re-signed by its owner): the joiner refuses."""
    a, welcome, c, joiner = three_and_a_joiner(required)

    def tree(t: RatchetTree) -> RatchetTree:
        leaf = t.leaf(1)
        assert leaf is not None
        return f.set_node(t, 2, change(leaf, c))

    bad = f.reforge_welcome(welcome, joiner, a.state.signature_priv, tree=tree)
    f.assert_join_rejected(lambda: join_from_welcome(P, bad, joiner), error, section, match)
    assert join_from_welcome(P, welcome, joiner).epoch_authenticator == a.epoch_authenticator


def test_join_tree_leaf_with_an_invalid_signature() -> None:
    join_with_leaf_1(lambda lf, _c: replace(lf, signature=bytes(64)), SignatureError, "§7.3",
                     "leaf 1 signature is invalid")


def test_join_tree_leaf_without_the_groups_cipher_suite() -> None:
    def no_suite(lf: LeafNode, c: KeyPackageBundle) -> LeafNode:
        suites = tuple(s for s in lf.capabilities.cipher_suites if s != 1)
        return f.resign_leaf(CipherSuite(1, P), lf, c.signature_priv,
                             capabilities=replace(lf.capabilities, cipher_suites=suites))

    join_with_leaf_1(no_suite, ValidationError, "§7.2", "group's cipher suite")


def test_join_tree_credential_rejected_by_the_authentication_service() -> None:
    a, welcome, _c, joiner = three_and_a_joiner()

    def not_c(cred: Credential, _key: bytes) -> bool:
        return cred.identity != b"c/1"

    f.assert_join_rejected(lambda: join_from_welcome(
        P, welcome, joiner, config=GroupConfig(credential_validator=not_c)), ValidationError,
        "§5.3.1", "leaf 1 credential rejected")
    assert join_from_welcome(P, welcome, joiner).epoch_authenticator == a.epoch_authenticator


def test_join_tree_leaf_without_the_required_capabilities() -> None:
    def drop(lf: LeafNode, c: KeyPackageBundle) -> LeafNode:
        exts = tuple(e for e in lf.capabilities.extensions if e != 0xFF01)
        return f.resign_leaf(CipherSuite(1, P), lf, c.signature_priv,
                             capabilities=replace(lf.capabilities, extensions=exts))

    join_with_leaf_1(drop, ValidationError, "§7.3", "leaf 1 does not support the required",
                     required=0xFF01)


def test_join_tree_with_an_even_number_of_nodes() -> None:
    a, welcome, _c, joiner = three_and_a_joiner()

    def even(t: RatchetTree) -> RatchetTree:
        key = a.cipher_suite.generate_hpke_key_pair()[1]
        return RatchetTree(t.cs, [*t.nodes[:5], ParentNode(key)])

    bad = f.reforge_welcome(welcome, joiner, a.state.signature_priv, tree=even,
                            fix_tree_hash=False)
    f.assert_join_rejected(lambda: join_from_welcome(P, bad, joiner), ValidationError,
                           "§12.4.3.3", "even number of nodes")
    assert join_from_welcome(P, welcome, joiner).epoch_authenticator == a.epoch_authenticator


def test_join_tree_parent_node_reuses_a_leaf_key() -> None:
    # Node 1 takes b's leaf key; a's leaf gets the matching parent_hash and is signed again,
    # so the tree is parent-hash valid and wrong only in the duplicate key.
    a, _b = f.make_group(2)
    cs = a.cipher_suite
    bundle = f.key_package(cs, b"joiner/1")
    out = a.commit([Add(bundle.key_package)])
    a.merge_pending_commit()
    assert out.welcome is not None

    def reuse(t: RatchetTree) -> RatchetTree:
        fdp = t.filtered_direct_path(0)
        b_leaf, a_leaf, node = t.leaf(1), t.leaf(0), t.nodes[fdp[0]]
        assert b_leaf is not None and a_leaf is not None and isinstance(node, ParentNode)
        keys = [n.encryption_key for n in (t.nodes[x] for x in fdp) if n is not None]
        keys[0] = b_leaf.encryption_key
        _, ph = t.path_parent_hashes(0, fdp, keys)
        t = f.set_node(t, fdp[0], replace(node, encryption_key=keys[0]))
        return f.set_node(t, 0, f.resign_leaf(cs, a_leaf, a.state.signature_priv, a.group_id,
                                              0, parent_hash=ph))

    bad = f.reforge_welcome(out.welcome, bundle, a.state.signature_priv, tree=reuse)
    f.assert_join_rejected(lambda: join_from_welcome(P, bad, bundle), ValidationError,
                           "§12.4.3.1", "node 1 reuses an encryption key")
    assert join_from_welcome(P, out.welcome, bundle).epoch_authenticator == a.epoch_authenticator
