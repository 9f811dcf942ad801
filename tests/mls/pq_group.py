"""A whole group's life in one cipher suite, runtime-neutral.

``tests/mls/test_pq_group.py`` runs it on CPython for every post-quantum suite and
``tests/browser/test_pq_pyodide.py`` sends this file's source to Pyodide. Every
step is checked as it happens (an AssertionError names the step); the result is a
summary of what was exercised and the sizes seen, for the caller to check.
"""

from __future__ import annotations

from typing import Any

from mls.crypto import CipherSuite, CryptoProvider
from mls.group import (
    ApplicationMessage,
    CommitMessage,
    Group,
    OwnMessage,
    ProposalMessage,
    Signer,
    create_key_package,
    join_external,
    join_from_welcome,
)
from mls.proposals import Add, Remove


def _same_epoch(groups: list[Group], step: str) -> None:
    assert len({g.epoch for g in groups}) == 1, f"{step}: epochs differ"
    assert len({g.epoch_authenticator for g in groups}) == 1, f"{step}: authenticators differ"
    assert len({g.export_secret(b"pq", b"ctx", 32) for g in groups}) == 1, f"{step}: exporters"


def _deliver(message: bytes, groups: list[Group], step: str) -> None:
    for g in groups:
        assert isinstance(g.process(message), CommitMessage), f"{step}: not a commit"


def _chat(sender: Group, receivers: list[Group], text: bytes) -> None:
    ct = sender.encrypt(text)
    for r in receivers:
        got = r.process(ct)
        assert isinstance(got, ApplicationMessage) and got.data == text, f"message {text!r}"


def run_scenario(provider: CryptoProvider, suite: int) -> dict[str, Any]:
    """Create, add by Welcome (with and without the ratchet tree in it), update by
    commit and by proposal, remove, external commit, application messages, and a
    restart from exported state."""
    cs = CipherSuite(suite, provider)
    sizes: dict[str, int] = {}
    a = Group.create(provider, suite, b"pq group", Signer.generate(cs, b"alice"))
    b_kp = create_key_package(cs, Signer.generate(cs, b"bob"))
    c_kp = create_key_package(cs, Signer.generate(cs, b"carol"))
    sizes["key_package"] = len(b_kp.key_package.serialize())
    hpke_keys = {len(b_kp.key_package.init_key), len(b_kp.key_package.leaf_node.encryption_key)}
    assert hpke_keys == {cs.hpke_public_key_length}, "KeyPackage HPKE keys have the KEM's Npk"

    out = a.commit([Add(b_kp.key_package), Add(c_kp.key_package)])
    a.merge_pending_commit()
    assert out.welcome is not None
    sizes["welcome_2_members"] = len(out.welcome)
    b = join_from_welcome(provider, out.welcome, b_kp)
    c = join_from_welcome(provider, out.welcome, c_kp)
    _same_epoch([a, b, c], "add by Welcome")
    _chat(a, [b, c], b"hello, post-quantum world")

    # An update with a full UpdatePath: every other member decapsulates one path secret.
    out = b.commit()
    b.merge_pending_commit()
    sizes["commit_update_3"] = len(out.commit)
    _deliver(out.commit, [a, c], "update commit")
    _same_epoch([a, b, c], "update commit")

    # An Update proposal, committed by someone else.
    prop = c.propose_update()
    for g in (a, b):
        assert isinstance(g.process(prop), ProposalMessage), "update proposal"
    assert isinstance(c.process(prop), OwnMessage)
    out = a.commit()
    a.merge_pending_commit()
    _deliver(out.commit, [b, c], "commit of an update proposal")
    _same_epoch([a, b, c], "commit of an update proposal")
    _chat(c, [a, b], b"updated")

    # Add without the ratchet tree in the Welcome (the joiner gets it from GroupInfo).
    d_kp = create_key_package(cs, Signer.generate(cs, b"dave"))
    out = b.commit([Add(d_kp.key_package)], with_ratchet_tree=False)
    b.merge_pending_commit()
    assert out.welcome is not None
    _deliver(out.commit, [a, c], "add without tree")
    d = join_from_welcome(provider, out.welcome, d_kp, ratchet_tree=b.tree.serialize())
    _same_epoch([a, b, c, d], "add without tree")

    # Remove.
    out = d.commit([Remove(c.leaf_index)])
    d.merge_pending_commit()
    sizes["commit_remove_4"] = len(out.commit)
    _deliver(out.commit, [a, b], "remove")
    removed = c.process(out.commit)
    assert isinstance(removed, CommitMessage) and removed.removed_self, "removed member"
    _same_epoch([a, b, d], "remove")

    # External commit (the joiner encapsulates to the group's external_pub).
    gi = a.group_info()
    ej = join_external(provider, gi, Signer.generate(cs, b"erin"))
    sizes["external_commit"] = len(ej.commit)
    _deliver(ej.commit, [a, b, d], "external commit")
    e = ej.group
    _same_epoch([a, b, d, e], "external commit")
    _chat(e, [a, b, d], b"joined from outside")

    # A member restarts from its exported state and keeps going.
    a = Group.from_state(provider, a.export_state())
    _chat(a, [b, d, e], b"after restart")
    out = a.commit()
    a.merge_pending_commit()
    _deliver(out.commit, [b, d, e], "commit after restart")
    _same_epoch([a, b, d, e], "commit after restart")
    return {"suite": suite, "epoch": a.epoch, "members": len(a.members()), "sizes": sizes}
