"""This library against ts-mls 1.6.4 (interop/ts-mls), with its known defects.

The peer works around ts-mls' defects where that is possible outside the bytes
ts-mls signs; the rest are recorded in :mod:`.defects`. Without its workarounds
(``--no-workarounds``) the peer shows the raw defects, which
:func:`test_compressed_ecdsa_keys_are_rejected` pins down.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mls.interop.runner import GrpcEndpoint, Matrix, load_scripts, summary

from . import matrix
from .defects import TSMLS, check
from .peers import CONFIGS, python_peer, tsmls_peer


@pytest.fixture(scope="module")
def peers() -> Iterator[tuple[GrpcEndpoint, GrpcEndpoint]]:
    with python_peer() as py, tsmls_peer() as ts:
        assert ts.suites == frozenset(range(1, 8))
        yield py, ts


@pytest.mark.parametrize("suite", range(1, 8))
def test_every_scenario(peers: tuple[GrpcEndpoint, GrpcEndpoint], suite: int) -> None:
    handshakes = matrix.BOTH if suite == 1 or matrix.FULL else matrix.PUBLIC
    results = matrix.run(peers, [suite], handshakes)
    print(summary(results))
    check(results, TSMLS)
    assert {r.pairing for r in results} == {"python>ts-mls", "ts-mls>python"}


def test_deep_random(peers: tuple[GrpcEndpoint, GrpcEndpoint]) -> None:
    results = matrix.run(peers, [1], matrix.PUBLIC, deep_random_steps=400)
    print(summary(results))
    check(results, TSMLS)


def test_compressed_ecdsa_keys_are_rejected() -> None:
    """Known defect, RFC 9420 §5.1.1: ts-mls' own key generation (noble's default)
    gives compressed ECDSA public keys. Python must reject its KeyPackages in the
    ECDSA suites (2, 5, 7) and accept them in the EdDSA ones, where the same
    script passes; the peer's default mode generates uncompressed keys instead."""
    scripts = load_scripts([CONFIGS / "welcome_join.json"], ["welcome_join/no_path_secret"])
    with python_peer() as py, tsmls_peer(workarounds=False) as raw:
        m = Matrix([py, raw], suites=[1, 2, 5, 7], handshakes=matrix.PUBLIC)
        results = m.run_script(scripts[0])
    print(summary(results))
    by_suite: dict[int, list[bool]] = {}
    for r in results:
        by_suite.setdefault(r.suite, []).append(r.ok)
        if r.suite in (2, 5, 7) and r.pairing == "python>ts-mls":
            # alice (python) adds bob's (ts-mls) KeyPackage: rejected at the key.
            assert not r.ok and r.endpoint == "python" and r.rpc == "AddProposal", r
            assert "uncompressed" in (r.error or "") and "§5.1.1" in (r.error or ""), r
        elif r.suite in (2, 5, 7):
            # ts-mls creates the group; python joins and finds the creator's leaf.
            assert not r.ok and r.endpoint == "python" and r.rpc == "JoinGroup", r
            assert "uncompressed" in (r.error or ""), r
    assert by_suite[1] == [True, True]
