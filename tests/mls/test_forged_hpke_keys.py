"""Forged inputs: HPKE public keys of the wrong size for the suite's KEM (RFC 9420
§5.1.1, RFC 9180 §7.1, draft-ietf-hpke-pq), e.g. an X25519-sized key in an X-Wing
group. Each KeyPackage below is correctly signed; only the key's length is wrong, and
it is refused where it arrives instead of breaking whoever encrypts to it later."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mls.crypto import CipherSuite
from mls.errors import PublicKeyError
from mls.group import GroupConfig
from mls.key_package import KeyPackage
from mls.proposals import Add

from . import forge as f
from .forge import P

NOW = 1_800_000_000
CFG = GroupConfig(clock=lambda: NOW)
SUITES = [1, 0x004F, 0xF0D6]


def _short(key: bytes) -> bytes:
    """The key cut to 32 bytes (an X25519 key's size) or, for X25519, to 31."""
    return key[:32] if len(key) > 32 else key[:31]


def _bad_init_key(cs: CipherSuite) -> KeyPackage:
    good = f.key_package(cs, b"new/1", now=NOW)
    return f.resign_key_package(cs, good, init_key=_short(good.key_package.init_key))


def _bad_encryption_key(cs: CipherSuite) -> KeyPackage:
    good = f.key_package(cs, b"new/1", now=NOW)
    return f.resign_key_package(cs, good, leaf=lambda lf: replace(
        lf, encryption_key=_short(lf.encryption_key)))


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: f"{s:#06x}")
@pytest.mark.parametrize("make", [_bad_init_key, _bad_encryption_key],
                         ids=["init_key", "encryption_key"])
def test_wrong_size_hpke_key_in_an_added_key_package(suite: int, make: object) -> None:
    cs = CipherSuite(suite, P)
    a, b = f.make_group(2, suite=suite, config=CFG)
    kp = make(cs)  # type: ignore[operator]
    forged = f.forge_commit(a, [Add(kp)])
    f.assert_rejected(b, forged.message, PublicKeyError, "§5.1.1",
                      rf"(init_key|encryption_key) must be .* of {cs.hpke_public_key_length} bytes",
                      then=f.genuine_commit(a))


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: f"{s:#06x}")
def test_committer_refuses_it_before_encrypting(suite: int) -> None:
    """The member asked to add such a KeyPackage refuses it with the same error and
    changes nothing (no pending commit), rather than failing inside HPKE."""
    cs = CipherSuite(suite, P)
    (a,) = f.make_group(1, suite=suite, config=CFG)
    with pytest.raises(PublicKeyError, match=r"init_key must be .*§5\.1\.1"):
        a.commit([Add(_bad_init_key(cs))])
    assert a.epoch == 0 and not a.has_pending_commit
