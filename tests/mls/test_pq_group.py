"""Whole groups in every post-quantum suite on CPython (``pq_group.run_scenario``);
the same scenario runs under Pyodide in ``tests/browser/test_pq_pyodide.py``."""

from __future__ import annotations

import pytest

from mls.crypto import CipherSuite
from mls.crypto.ciphersuite import PQ_SUITES
from mls.crypto.cpython import CPythonProvider

from .pq_group import run_scenario

P = CPythonProvider()


@pytest.mark.parametrize("suite", sorted(PQ_SUITES), ids=lambda s: f"{s:#06x}")
def test_group_life_in_pq_suite(suite: int) -> None:
    result = run_scenario(P, suite)
    assert result["members"] == 4
    cs = CipherSuite(suite, P)
    # KeyPackage: init_key and encryption_key of Npk bytes each.
    assert result["sizes"]["key_package"] > 2 * cs.hpke_public_key_length


def test_suite_1_runs_the_same_scenario() -> None:
    """The scenario itself is suite-independent: it passes in the default suite too."""
    assert run_scenario(P, 1)["members"] == 4
