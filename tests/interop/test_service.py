"""The MLSClient service's error mapping, the runner's reading of the configs,
and the browser wheel leaving the gRPC adapter out."""

from __future__ import annotations

import importlib.util
import io
import sys
import zipfile
from collections.abc import Iterator

import pytest

from mls.crypto import SUITES
from mls.interop.runner import GrpcEndpoint
from mls.interop.scenario import Params, StepError, script_actors

from .peers import ROOT, python_peer


@pytest.fixture(scope="module")
def py() -> Iterator[GrpcEndpoint]:
    with python_peer() as ep:
        yield ep


def test_name_and_suites(py: GrpcEndpoint) -> None:
    assert py.call("Name").name.startswith("intellacc-mls")
    assert py.suites == frozenset(SUITES)  # RFC 9420's and the post-quantum ones


def test_unknown_state_is_not_found(py: GrpcEndpoint) -> None:
    with pytest.raises(StepError, match=r"NOT_FOUND: unknown state id 4242"):
        py.call("Protect", state_id=4242, plaintext=b"x")


def test_bad_input_is_invalid_argument_and_changes_nothing(py: GrpcEndpoint) -> None:
    sid = py.call("CreateGroup", group_id=b"g", cipher_suite=1, identity=b"a").state_id
    before = py.call("StateAuth", state_id=sid).state_auth_secret
    with pytest.raises(StepError, match=r"INVALID_ARGUMENT: DecodeError"):
        py.call("HandleCommit", state_id=sid, commit=b"\x00\x01garbage")
    with pytest.raises(StepError, match=r"INVALID_ARGUMENT: .*cipher suite 9"):
        py.call("CreateGroup", group_id=b"g", cipher_suite=9, identity=b"a")
    with pytest.raises(StepError, match=r"INVALID_ARGUMENT: .*no pending commit"):
        py.call("HandlePendingCommit", state_id=sid)
    assert py.call("StateAuth", state_id=sid).state_auth_secret == before
    ct = py.call("Protect", state_id=sid, plaintext=b"still works").ciphertext
    assert ct


def test_params_match_both_spellings() -> None:
    p = Params({"force_path": True, "externalTree": True, "changeCiphersuite": True})
    assert p.flag("forcePath") and p.flag("external_tree") and p.flag("changeCipherSuite")
    assert not p.flag("removePrior")


def test_actors_in_order_of_appearance() -> None:
    steps = [{"action": "createGroup", "actor": "alice", "members": ["bob"]},
             {"action": "externalJoin", "actor": "bob", "joiner": "carol"},
             {"action": "addExternalSigner", "actor": "alice", "signer": "ds"},
             {"action": "reinit", "proposer": "dave", "committer": "bob", "welcomer": "alice",
              "members": ["carol"]}]
    assert script_actors(steps) == ["alice", "bob", "carol", "ds", "dave"]


def test_browser_wheel_leaves_the_grpc_adapter_out() -> None:
    spec = importlib.util.spec_from_file_location("intellacc_build", ROOT / "build.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = build  # its dataclasses look their module up
    try:
        spec.loader.exec_module(build)
    finally:
        del sys.modules[spec.name]
    _, wheel = build.build_wheel()
    names = zipfile.ZipFile(io.BytesIO(wheel)).namelist()
    assert "mls/group/group.py" in names
    assert not [n for n in names if n.startswith("mls/interop/")]
