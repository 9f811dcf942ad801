"""This library against OpenMLS 0.9.2 with its libcrux provider (interop/openmls
built with the ``libcrux`` feature) in the hybrid post-quantum suites both implement:
0x004D (X-Wing, ChaCha20-Poly1305, SHA-256), 0x004E (ML-KEM-768 + X25519, AES-256-GCM,
SHA-384) and 0x004F (ML-KEM-768 + X25519, AES-128-GCM, SHA-256), every scenario in both
directions and both handshake modes (docs/pq.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mls.interop.runner import GrpcEndpoint, summary

from . import matrix
from .defects import OPENMLS, check
from .peers import openmls_peer, python_peer

PQ_SUITES = [0x004D, 0x004E, 0x004F]


@pytest.fixture(scope="module")
def peers() -> Iterator[tuple[GrpcEndpoint, GrpcEndpoint]]:
    with python_peer() as py, openmls_peer("libcrux") as om:
        assert om.suites >= {1, 3, *PQ_SUITES}, om.suites
        assert py.suites >= set(PQ_SUITES), py.suites
        yield py, om


@pytest.mark.parametrize("suite", PQ_SUITES, ids=lambda s: f"{s:#06x}")
def test_every_scenario_pq(peers: tuple[GrpcEndpoint, GrpcEndpoint], suite: int) -> None:
    results = matrix.run(peers, [suite], matrix.BOTH)
    print(summary(results))
    check(results, OPENMLS)
    assert {r.pairing for r in results} == {"python>openmls", "openmls>python"}
    assert any(r.ok for r in results)
