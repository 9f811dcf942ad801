"""Every official test vector file through the same runner as the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mls.crypto import default_provider
from mls.vectors.__main__ import run_files
from mls.vectors.registry import type_for_path

from ..conftest import ROOT, vectors_dir

FILES = sorted(p.name for p in vectors_dir().glob("*.json"))


@pytest.mark.parametrize("name", FILES)
def test_vector_file(name: str, vectors: Path) -> None:
    path = vectors / name
    cases = json.loads(path.read_text())
    out: list[str] = []
    passed, failed, usable = run_files([str(path)], None, default_provider(), out)
    assert usable, out
    assert failed == 0, "\n".join(out[:20])
    assert passed == len(cases)


def test_all_fourteen_types_are_present() -> None:
    types = {type_for_path(n) for n in FILES}
    assert None not in types
    assert len(FILES) == 15


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mls.vectors", *args], capture_output=True,
                          text=True, cwd=ROOT, check=False)


def test_cli_counts_every_case(vectors: Path) -> None:
    names = ["tree-math.json", "deserialization.json", "crypto-basics.json"]
    r = _cli(*(str(vectors / n) for n in names))
    assert r.returncode == 0
    assert r.stdout.strip().splitlines()[-1] == "31 passed, 0 failed"


def test_cli_reports_a_tampered_case(tmp_path: Path, vectors: Path) -> None:
    cases = json.loads((vectors / "key-schedule.json").read_text())
    epoch = cases[2]["epochs"][1]
    epoch["epoch_authenticator"] = "00" + epoch["epoch_authenticator"][2:]
    bad = tmp_path / "renamed.json"
    bad.write_text(json.dumps(cases))
    r = _cli("--type", "key-schedule", str(bad))
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 1
    assert lines[-1] == f"{len(cases) - 1} passed, 1 failed"
    assert lines[0].startswith(f"FAIL {bad} case 2 (cipher_suite 3)")
    assert "epoch_authenticator" in lines[0]


def test_cli_unknown_type_and_unreadable_file(tmp_path: Path) -> None:
    odd = tmp_path / "something.json"
    odd.write_text("[]")
    r = _cli(str(odd))
    assert r.returncode != 0
    assert "unknown vector type" in r.stdout
    r = _cli("--type", "tree-math", str(tmp_path / "missing.json"))
    assert r.returncode != 0
    assert "cannot read" in r.stdout
    r = _cli("--type", "no-such-type", str(odd))
    assert r.returncode != 0
