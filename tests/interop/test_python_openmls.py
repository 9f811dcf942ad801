"""This library against OpenMLS 0.9.2 (interop/openmls, built once per machine)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mls.interop.runner import GrpcEndpoint, summary

from . import matrix
from .defects import OPENMLS, check
from .peers import openmls_peer, python_peer


@pytest.fixture(scope="module")
def peers() -> Iterator[tuple[GrpcEndpoint, GrpcEndpoint]]:
    with python_peer() as py, openmls_peer() as om:
        assert om.suites >= {1, 2, 3}
        yield py, om


@pytest.mark.parametrize("suite", [1, 2, 3])
def test_every_scenario(peers: tuple[GrpcEndpoint, GrpcEndpoint], suite: int) -> None:
    results = matrix.run(peers, [suite], matrix.BOTH)
    print(summary(results))
    check(results, OPENMLS)
    assert {r.pairing for r in results} == {"python>openmls", "openmls>python"}


def test_deep_random(peers: tuple[GrpcEndpoint, GrpcEndpoint]) -> None:
    results = matrix.run(peers, [1], matrix.BOTH if matrix.FULL else matrix.PUBLIC,
                         deep_random_steps=400)
    print(summary(results))
    check(results, OPENMLS)
    assert all(r.ok for r in results)
