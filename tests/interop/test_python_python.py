"""This library against itself, as two separate ``mls.interop serve`` processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mls.interop.runner import GrpcEndpoint, summary

from . import matrix
from .defects import check
from .peers import python_peer


@pytest.fixture(scope="module")
def peers() -> Iterator[tuple[GrpcEndpoint, GrpcEndpoint]]:
    with python_peer("python-a") as a, python_peer("python-b") as b:
        yield a, b


@pytest.mark.parametrize("suite", range(1, 8))
def test_every_scenario(peers: tuple[GrpcEndpoint, GrpcEndpoint], suite: int) -> None:
    results = matrix.run(peers, [suite], matrix.BOTH)
    print(summary(results))
    check(results, ())
    assert {r.pairing for r in results} == {"python-a>python-b", "python-b>python-a"}


def test_deep_random(peers: tuple[GrpcEndpoint, GrpcEndpoint]) -> None:
    results = matrix.run(peers, [1], matrix.BOTH if matrix.FULL else matrix.PUBLIC,
                         deep_random_steps=300)
    print(summary(results))
    check(results, ())
