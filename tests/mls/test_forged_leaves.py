"""Forged inputs, part 5: KeyPackages and leaf nodes (RFC 9420 §5.1.1, §5.3.1,
§7.2, §7.3, §10.1, §13.4) arriving in Add and Update proposals, and the checks
of joining by Welcome (§12.4.3.1)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from mls.credentials import Credential, CredentialType
from mls.crypto import CipherSuite
from mls.errors import PublicKeyError, ValidationError
from mls.extensions import Extension, ExtensionType, ExternalPub, RequiredCapabilities
from mls.group import (
    Group,
    GroupConfig,
    KeyPackageBundle,
    Signer,
    create_key_package,
    default_capabilities,
    join_external,
    join_from_welcome,
)
from mls.group_info import GroupInfo
from mls.key_package import KeyPackage
from mls.leaf_node import MAX_LIFETIME, LeafNode, LeafNodeSource, Lifetime
from mls.message import MLSMessage
from mls.proposals import Add, Update
from mls.psk import PreSharedKeyID, ResumptionPSKUsage
from mls.welcome import GroupSecrets, Welcome

from . import forge as f
from .forge import P

NOW = 1_800_000_000
CFG = GroupConfig(clock=lambda: NOW)


def add_rejected(kp: KeyPackage, error: type[f.MLSError], section: str, match: str, *,
                 groups: list[Group] | None = None) -> None:
    a, b, *_ = groups or f.make_group(3, config=CFG)
    forged = f.forge_commit(a, [Add(kp)])
    f.assert_rejected(b, forged.message, error, section, match, then=f.genuine_commit(a))


def bundle(cs: CipherSuite | None = None, **kw: object) -> KeyPackageBundle:
    return f.key_package(cs or CipherSuite(1, P), b"new/1", now=NOW, **kw)


def leaf_changed(change: Callable[[LeafNode], LeafNode], **kp_changes: object) -> KeyPackage:
    b = bundle()
    return f.resign_key_package(CipherSuite(1, P), b, leaf=change, **kp_changes)


def caps(leaf: LeafNode, **changes: object) -> LeafNode:
    return replace(leaf, capabilities=replace(leaf.capabilities, **changes))  # type: ignore[arg-type]


# -- capabilities (§7.2, §7.3) ------
def test_leaf_without_the_groups_cipher_suite() -> None:
    add_rejected(leaf_changed(lambda lf: caps(lf, cipher_suites=(2, 3))), ValidationError,
                 "§7.2", "cipher suite")


def test_leaf_without_mls10() -> None:
    add_rejected(leaf_changed(lambda lf: caps(lf, versions=(2,))), ValidationError, "§7.2",
                 "mls10")


def test_leaf_without_its_own_credential_type() -> None:
    add_rejected(leaf_changed(lambda lf: caps(lf, credentials=(CredentialType.X509,))),
                 ValidationError, "§7.2", "own credential type")


def test_leaf_extension_not_in_capabilities() -> None:
    add_rejected(leaf_changed(lambda lf: replace(lf, extensions=(Extension(0xFF02, b""),))),
                 ValidationError, "§7.3", "not listed")


def test_duplicate_leaf_extension() -> None:
    add_rejected(leaf_changed(lambda lf: replace(
        lf, extensions=(Extension(ExtensionType.APPLICATION_ID, b"1"),
                        Extension(ExtensionType.APPLICATION_ID, b"2")))),
        ValidationError, "§13.4", "more than once")


def test_required_capabilities_of_the_group() -> None:
    req = RequiredCapabilities(extension_types=(ExtensionType.LAST_RESORT,))
    groups = f.make_group(3, config=CFG, extensions=(
        Extension(ExtensionType.REQUIRED_CAPABILITIES, req.serialize()),))
    kp = leaf_changed(lambda lf: caps(lf, extensions=()))
    add_rejected(kp, ValidationError, "§7.3", "required capabilities", groups=groups)


def x509_leaf(lf: LeafNode) -> LeafNode:
    return replace(caps(lf, credentials=(CredentialType.BASIC, CredentialType.X509)),
                   credential=Credential(CredentialType.X509, certificates=(b"cert",)))


def test_credential_type_members_do_not_support() -> None:
    # Without a path: no later check (the committer's new leaf) catches it instead.
    a, b, _c = f.make_group(3, config=CFG)
    forged = f.forge_commit(a, [Add(leaf_changed(x509_leaf))], path=False)
    f.assert_rejected(b, forged.message, ValidationError, "§7.3",
                      r"member \d+ does not support credential type 2",
                      then=f.genuine_commit(a))


def test_leaf_must_support_the_credential_types_in_use() -> None:
    both = replace(default_capabilities(), credentials=(CredentialType.BASIC,
                                                        CredentialType.X509))
    groups = f.make_group(3, config=CFG, capabilities=both)
    kp = leaf_changed(lambda lf: caps(x509_leaf(lf), credentials=(CredentialType.X509,)))
    add_rejected(kp, ValidationError, "§7.3", "leaf does not support credential type 1",
                 groups=groups)


def test_credential_rejected_by_the_authentication_service() -> None:
    def no_strangers(cred: Credential, key: bytes) -> bool:
        return cred.identity.startswith(b"m/")

    groups = f.make_group(3, config=GroupConfig(clock=lambda: NOW,
                                                credential_validator=no_strangers))
    add_rejected(bundle().key_package, ValidationError, "§5.3.1", "Authentication Service",
                 groups=groups)


# -- lifetimes (§7.2, §7.3) ------
@pytest.mark.parametrize("window", [(NOW - 100, NOW - 1), (NOW + 1, NOW + 100)],
                         ids=["expired", "not-yet-valid"])
def test_key_package_lifetime_must_cover_now(window: tuple[int, int]) -> None:
    add_rejected(leaf_changed(lambda lf: replace(lf, lifetime=Lifetime(*window))),
                 ValidationError, "§7.3", "current time")


def test_key_package_lifetime_longer_than_the_maximum() -> None:
    add_rejected(leaf_changed(lambda lf: replace(lf, lifetime=Lifetime(NOW - 10,
                                                                       NOW + MAX_LIFETIME))),
                 ValidationError, "§7.2", "exceeds the maximum")


def test_unbounded_lifetime_is_rejected_and_the_maximum_is_configurable() -> None:
    kp = leaf_changed(lambda lf: replace(lf, lifetime=Lifetime(0, 2**64 - 1)))
    add_rejected(kp, ValidationError, "§7.2", "exceeds the maximum")
    a, b, _ = f.make_group(3, config=GroupConfig(clock=lambda: NOW, max_lifetime=None))
    b.process(f.forge_commit(a, [Add(kp)]).message)


def test_leaves_this_library_creates_are_bounded() -> None:
    cs = CipherSuite(1, P)
    clock = GroupConfig(clock=lambda: NOW)
    g = Group.create(P, 1, b"g", Signer.generate(cs, b"a/1"), config=clock)
    kp = create_key_package(cs, Signer.generate(cs, b"b/1"))  # no now=: the system clock
    ej = join_external(P, g.group_info(), Signer.generate(cs, b"c/1"), config=clock)
    for leaf in (g.member(0), kp.key_package.leaf_node):
        assert leaf is not None and leaf.lifetime is not None
        assert 0 < leaf.lifetime.not_after - leaf.lifetime.not_before <= MAX_LIFETIME
    own = g.member(0)
    assert own is not None and own.lifetime is not None
    assert own.lifetime.not_before <= NOW <= own.lifetime.not_after
    assert ej.group.epoch == 1


# -- KeyPackage rules (§10.1) ------
def test_key_package_version() -> None:
    b = bundle()
    add_rejected(f.resign_key_package(CipherSuite(1, P), b, version=2), ValidationError,
                 "§10.1", "version")


def test_key_package_cipher_suite() -> None:
    b = bundle()
    add_rejected(f.resign_key_package(CipherSuite(1, P), b, cipher_suite=3), ValidationError,
                 "§10.1", "cipher suite")


def test_key_package_init_key_equals_leaf_key() -> None:
    b = bundle()
    kp = f.resign_key_package(CipherSuite(1, P), b,
                              init_key=b.key_package.leaf_node.encryption_key)
    add_rejected(kp, ValidationError, "§10.1", "init_key")


def test_key_package_leaf_source() -> None:
    cs = CipherSuite(1, P)
    b = bundle()
    leaf = replace(b.key_package.leaf_node, leaf_node_source=LeafNodeSource.UPDATE,
                   lifetime=None).signed(cs, b.signature_priv, b"forge-group", 3)
    kp = replace(b.key_package, leaf_node=leaf).signed(cs, b.signature_priv)
    add_rejected(kp, ValidationError, "§10.1", "key_package")


def test_duplicate_key_package_extension() -> None:
    ext = Extension(ExtensionType.LAST_RESORT, b"")
    add_rejected(f.resign_key_package(CipherSuite(1, P), bundle(), extensions=(ext, ext)),
                 ValidationError, "§13.4", "more than once")


def test_added_leaf_duplicates_a_members_encryption_key() -> None:
    groups = f.make_group(3, config=CFG)
    member = groups[2].member(2)
    assert member is not None
    kp = leaf_changed(lambda lf: replace(lf, encryption_key=member.encryption_key))
    add_rejected(kp, ValidationError, "§7.3", "encryption_key duplicates", groups=groups)


# -- leaves in Update proposals (§7.3, §12.1.2) ------
def update_from(c: Group, change: Callable[[LeafNode], LeafNode], priv: bytes | None = None
                ) -> Update:
    old = c.member(c.leaf_index)
    assert old is not None
    leaf = replace(old, leaf_node_source=LeafNodeSource.UPDATE, lifetime=None, parent_hash=b"",
                   encryption_key=c.cipher_suite.generate_hpke_key_pair()[1])
    return Update(change(leaf).signed(c.cipher_suite, priv or c.state.signature_priv,
                                      c.group_id, c.leaf_index))


def update_rejected(make: Callable[[list[Group]], Update], section: str, match: str) -> None:
    a, b, c = f.make_group(3, config=CFG)
    prop = f.public_proposal(c, make([a, b, c]))
    for g in (a, b):
        g.process(prop)
    forged = f.forge_commit(a, [f.proposal_ref(c, prop)])
    f.assert_rejected(b, forged.message, ValidationError, section, match,
                      then=f.genuine_commit(a))


def test_update_leaf_source_must_be_update() -> None:
    update_rejected(lambda gs: update_from(gs[2], lambda lf: replace(
        lf, leaf_node_source=LeafNodeSource.KEY_PACKAGE, lifetime=Lifetime(NOW - 1, NOW + 1))),
        "§7.3", "expected UPDATE")


def test_update_duplicates_a_members_signature_key() -> None:
    def steal_a_key(gs: list[Group]) -> Update:
        a_leaf = gs[0].member(0)
        assert a_leaf is not None
        return update_from(gs[2], lambda lf: replace(lf, signature_key=a_leaf.signature_key),
                           priv=gs[0].state.signature_priv)

    update_rejected(steal_a_key, "§7.3", "signature_key duplicates")


# -- SEC1 signature keys (§5.1.1) ------
def compressed(key: bytes) -> bytes:
    n = (len(key) - 1) // 2
    return bytes([2 + (key[-1] & 1)]) + key[1 : 1 + n]


@pytest.mark.parametrize("suite", [2, 5, 7])
def test_compressed_ecdsa_key_in_a_key_package(suite: int) -> None:
    cs = CipherSuite(suite, P)
    a, b = f.make_group(2, suite=suite, config=CFG)
    good = f.key_package(cs, b"new/1", now=NOW)
    kp = f.resign_key_package(cs, good, leaf=lambda lf: replace(
        lf, signature_key=compressed(lf.signature_key)))
    forged = f.forge_commit(a, [Add(kp)])
    f.assert_rejected(b, forged.message, PublicKeyError, "§5.1.1", "compressed",
                      then=f.genuine_commit(a))


@pytest.mark.parametrize("suite", [2, 5, 7])
def test_key_packages_are_refused_for_non_conformant_keys(suite: int) -> None:
    cs = CipherSuite(suite, P)
    s = Signer.generate(cs, b"x/1")
    pub = s.signature_pub
    for bad in (compressed(pub), pub[:-1] + bytes([pub[-1] ^ 1])):
        with pytest.raises(PublicKeyError, match=r"§5\.1\.1"):
            create_key_package(cs, replace(s, signature_pub=bad))
        with pytest.raises(PublicKeyError, match=r"§5\.1\.1"):
            Group.create(P, suite, b"g", replace(s, signature_pub=bad))


# -- joining by Welcome (§12.4.3.1) ------
def welcome_case() -> tuple[Group, bytes, KeyPackageBundle]:
    (a,) = f.make_group(1)
    kp = f.key_package(a.cipher_suite, b"joiner/1")
    out = a.commit([Add(kp.key_package)])
    a.merge_pending_commit()
    assert out.welcome is not None
    return a, out.welcome, kp


def join_rejected(change: dict[str, object], section: str, match: str) -> None:
    a, welcome, kp = welcome_case()
    bad = f.reforge_welcome(welcome, kp, a.state.signature_priv, **change)  # type: ignore[arg-type]
    f.assert_join_rejected(lambda: join_from_welcome(P, bad, kp), ValidationError, section, match)
    assert join_from_welcome(P, welcome, kp).epoch_authenticator == a.epoch_authenticator


def test_welcome_with_two_reinit_psks() -> None:
    def two(gs: GroupSecrets) -> GroupSecrets:
        pids = tuple(PreSharedKeyID.resumption(ResumptionPSKUsage.REINIT, b"old", 3, bytes(32))
                     for _ in range(2))
        return replace(gs, psks=pids)

    a, welcome, kp = welcome_case()
    bad = f.reforge_welcome(welcome, kp, a.state.signature_priv, secrets=two)
    f.assert_join_rejected(lambda: join_from_welcome(
        P, bad, kp, resumption_psks={(b"old", 3): bytes(32)}), ValidationError, "§12.4.3.1",
        "at most one")


@pytest.mark.parametrize("epoch", [1, 2])
def test_welcome_reinit_psk_only_for_epoch_1(epoch: int) -> None:
    # Epoch 1 is the control: the same forgery is accepted there (§12.4.3.1).
    (a,) = f.make_group(1)
    for _ in range(epoch - 1):
        a.commit()
        a.merge_pending_commit()
    kp = f.key_package(a.cipher_suite, b"joiner/1")
    out = a.commit([Add(kp.key_package)])
    a.merge_pending_commit()
    assert out.welcome is not None and a.epoch == epoch
    pid = PreSharedKeyID.resumption(ResumptionPSKUsage.REINIT, b"old", 3, bytes(32))
    value = b"\x09" * 32
    bad = f.reforge_welcome(out.welcome, kp, a.state.signature_priv,
                            secrets=lambda gs: replace(gs, psks=(pid,)), psks=[(pid, value)])

    def join() -> Group:
        return join_from_welcome(P, bad, kp, resumption_psks={(b"old", 3): value})

    if epoch == 1:
        assert join().epoch == 1
    else:
        f.assert_join_rejected(join, ValidationError, "§12.4.3.1", "joining epoch 1")
        assert join_from_welcome(P, out.welcome, kp).epoch_authenticator == a.epoch_authenticator


def test_welcome_group_info_signer_is_not_a_member() -> None:
    join_rejected({"group_info": lambda gi: replace(gi, signer=7)}, "§12.4.3.1", "signer")


def test_welcome_group_info_cipher_suite() -> None:
    join_rejected({"group_info": lambda gi: replace(gi, group_context=replace(
        gi.group_context, version=2))}, "§12.4.3.1", "version")


def test_welcome_whose_tree_lacks_our_leaf() -> None:
    (a,) = f.make_group(1)
    kp = f.key_package(a.cipher_suite, b"joiner/1")
    out = a.commit([Add(kp.key_package)], force_path=False)
    assert out.welcome is not None
    other = f.key_package(a.cipher_suite, b"joiner/1").key_package.leaf_node
    bad = f.reforge_welcome(out.welcome, kp, a.state.signature_priv,
                            tree=lambda t: f.set_node(t, 2, other))
    f.assert_join_rejected(lambda: join_from_welcome(P, bad, kp), ValidationError, "§12.4.3.1",
                           "not in the tree")
    assert join_from_welcome(P, out.welcome, kp).epoch == 1


def test_welcome_path_secret_that_does_not_match_the_tree() -> None:
    a, b = f.make_group(2)
    kp = f.key_package(a.cipher_suite, b"joiner/1")
    out = a.commit([Add(kp.key_package)])
    assert out.welcome is not None
    bad = f.reforge_welcome(out.welcome, kp, a.state.signature_priv,
                            secrets=lambda gs: replace(gs, path_secret=bytes(32)))
    f.assert_join_rejected(lambda: join_from_welcome(P, bad, kp), ValidationError, "§12.4.3.1",
                           "path secret")
    del b


def test_welcome_cipher_suite_differs_from_the_key_packages() -> None:
    # The suite field of a Welcome is not covered by any key: only the check names it.
    a, welcome, kp = welcome_case()
    w = MLSMessage.deserialize(welcome).body
    assert isinstance(w, Welcome) and w.cipher_suite == 1
    bad = MLSMessage.wrap(replace(w, cipher_suite=3)).serialize()
    f.assert_join_rejected(lambda: join_from_welcome(P, bad, kp), ValidationError, "§12.4.3.1",
                           "cipher suite differs")
    assert join_from_welcome(P, welcome, kp).epoch_authenticator == a.epoch_authenticator


def test_welcome_for_another_key_package() -> None:
    a, welcome, _kp = welcome_case()
    other = f.key_package(a.cipher_suite, b"joiner/2")
    f.assert_join_rejected(lambda: join_from_welcome(P, welcome, other), ValidationError,
                           "§12.4.3.1", "no secrets")


def test_external_join_needs_external_pub() -> None:
    a, _b = f.make_group(2)
    f.assert_join_rejected(lambda: join_external(P, a.group_info(with_external_pub=False),
                                                 Signer.generate(a.cipher_suite, b"x/1")),
                           ValidationError, "§12.4.3.2", "external_pub")


def test_external_pub_key_of_the_wrong_size() -> None:
    # A well-formed ExternalPub struct, signed by the member, whose key is one byte
    # short: what a bare 32-byte key starting with 0x1f parses as.
    a, _b = f.make_group(2)

    def short_key(gi: GroupInfo) -> GroupInfo:
        return replace(gi, extensions=tuple(
            Extension(ExtensionType.EXTERNAL_PUB,
                      ExternalPub(ExternalPub.deserialize(e.extension_data).external_pub[1:])
                      .serialize())
            if e.extension_type == ExtensionType.EXTERNAL_PUB else e for e in gi.extensions))

    bad = f.reforge_group_info(a, short_key)
    f.assert_join_rejected(lambda: join_external(P, bad, Signer.generate(a.cipher_suite, b"x/1")),
                           PublicKeyError, "§12.4.3.2", "external_pub")
    join_external(P, f.reforge_group_info(a, lambda gi: gi),
                  Signer.generate(a.cipher_suite, b"x/1"))


def test_unknown_cipher_suite() -> None:
    from mls.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="0x0099"):
        CipherSuite(0x99, P)
    a, b = f.make_group(2, config=CFG)
    kp = f.resign_key_package(CipherSuite(1, P), bundle(), cipher_suite=0x99)
    add_rejected(kp, ValidationError, "§10.1", "cipher suite", groups=[a, b])
