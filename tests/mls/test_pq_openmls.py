"""Two-way interop with OpenMLS (openmls 0.9.2, libcrux provider) in the hybrid
suites both implement: 0x004D, 0x004E, 0x004F.

The OpenMLS side is ``tools/openmls_pq`` (``peer``: one OpenMLS member per process,
driven line by line), built on first use with cargo into
``~/.cache/intellacc-interop/target`` (shared with the other Rust peers, outside the
clone). Every step compares both sides' epoch authenticators and an exported secret,
so a difference anywhere in the key schedule, TreeKEM or the KEM shows at once.

Covered both ways: Welcome (OpenMLS adds Python; Python adds OpenMLS), application
messages, commits with an UpdatePath (each side decapsulates the other's X-Wing
ciphertexts and checks the public keys derived from the path secrets, which is where
the key derivation must agree), removal, and external commits (each side joins the
other's group from a GroupInfo).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mls.crypto import CipherSuite
from mls.crypto.cpython import CPythonProvider
from mls.group import (
    ApplicationMessage,
    CommitMessage,
    Group,
    Signer,
    create_key_package,
    join_external,
    join_from_welcome,
)
from mls.key_package import KeyPackage
from mls.message import MLSMessage
from mls.proposals import Add, Remove

ROOT = Path(__file__).resolve().parents[2]
CRATE = ROOT / "tools" / "openmls_pq"
TARGET = Path(
    os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "intellacc-interop" / "target")
)
P = CPythonProvider()
OPENMLS_SUITES = [0x004D, 0x004E, 0x004F]


@pytest.fixture(scope="module")
def peer_binary() -> Path:
    cargo = shutil.which("cargo")
    assert cargo is not None, "cargo is needed for the OpenMLS interop test (Rust toolchain)"
    subprocess.run(
        [cargo, "build", "--release", "--quiet", "--bin", "peer"],
        cwd=CRATE, env={**os.environ, "CARGO_TARGET_DIR": str(TARGET)}, check=True,
        timeout=3600,
    )
    return TARGET / "release" / "peer"


class OpenMLS:
    """One OpenMLS member in its own process."""

    def __init__(self, binary: Path) -> None:
        self.proc = subprocess.Popen(
            [str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def __call__(self, *words: str | bytes | int) -> list[str]:
        line = " ".join(w.hex() if isinstance(w, bytes) else str(w) for w in words)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().split()
        assert answer and answer[0] == "ok", f"OpenMLS {words[0]!r}: {' '.join(answer)}"
        return answer[1:]

    def bytes(self, *words: str | bytes | int) -> bytes:
        (out,) = self(*words)
        return bytes.fromhex(out)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture
def openmls(peer_binary: Path) -> Iterator[list[OpenMLS]]:
    peers = [OpenMLS(peer_binary) for _ in range(3)]
    yield peers
    for p in peers:
        p.close()


def agree(groups: list[Group], peers: list[OpenMLS]) -> None:
    auths = {g.epoch_authenticator for g in groups} | {p.bytes("auth") for p in peers}
    assert len(auths) == 1, "epoch authenticators differ"
    ctx = b"pq interop"
    exported = {g.export_secret(b"intellacc", ctx, 32) for g in groups}
    exported |= {p.bytes("export", b"intellacc", ctx) for p in peers}
    assert len(exported) == 1, "exported secrets differ"


def py_receives(group: Group, message: bytes) -> None:
    assert isinstance(group.process(message), CommitMessage)


@pytest.mark.parametrize("suite", OPENMLS_SUITES, ids=lambda s: f"{s:#06x}")
def test_two_way_interop(suite: int, openmls: list[OpenMLS]) -> None:
    o1, o2, o3 = openmls
    cs = CipherSuite(suite, P)

    # OpenMLS creates the group and adds Python: Python decapsulates OpenMLS's Welcome.
    o1("create", suite)
    py_kp = create_key_package(cs, Signer.generate(cs, b"python"))
    _, welcome = o1("add", MLSMessage.wrap(py_kp.key_package).serialize())
    py = join_from_welcome(P, bytes.fromhex(welcome), py_kp)
    agree([py], [o1])

    # Application messages both ways.
    got = o1("process", py.encrypt(b"from python"))
    assert got == ["app", b"from python".hex()]
    r = py.process(o1.bytes("send", b"from openmls"))
    assert isinstance(r, ApplicationMessage) and r.data == b"from openmls"

    # Python commits with an UpdatePath: OpenMLS decapsulates and re-derives the keys.
    out = py.commit()
    py.merge_pending_commit()
    assert o1("process", out.commit) == ["commit"]
    agree([py], [o1])

    # OpenMLS commits with an UpdatePath: Python does the same.
    py_receives(py, o1.bytes("update"))
    agree([py], [o1])

    # Python adds an OpenMLS member: OpenMLS decapsulates Python's Welcome.
    kp = o2.bytes("keypackage", suite)
    kp_msg = MLSMessage.deserialize(kp)
    assert isinstance(kp_msg.body, KeyPackage)
    out = py.commit([Add(kp_msg.body)])
    py.merge_pending_commit()
    assert out.welcome is not None
    assert o1("process", out.commit) == ["commit"]
    o2("join", out.welcome)
    agree([py], [o1, o2])

    # OpenMLS removes its peer; everyone else follows.
    (leaf,) = o2("leaf")
    commit = o1.bytes("remove", leaf)
    py_receives(py, commit)
    agree([py], [o1])

    # External commit into the group from OpenMLS's GroupInfo, by Python ...
    ej = join_external(P, o1.bytes("groupinfo"), Signer.generate(cs, b"python 2"))
    assert o1("process", ej.commit) == ["commit"]
    py_receives(py, ej.commit)
    agree([py, ej.group], [o1])

    # ... and by OpenMLS from Python's GroupInfo (encapsulating to external_pub).
    commit = o3.bytes("external_join", py.group_info())
    for g in (py, ej.group):
        py_receives(g, commit)
    assert o1("process", commit) == ["commit"]
    agree([py, ej.group], [o1, o3])

    # And Python removes a member in the end; the last messages still flow.
    out = py.commit([Remove(ej.group.leaf_index)])
    py.merge_pending_commit()
    for o in (o1, o3):
        assert o("process", out.commit) == ["commit"]
    agree([py], [o1, o3])
    assert o3("process", py.encrypt(b"bye")) == ["app", b"bye".hex()]

