"""build.py: the bundle's contents, the wheel, idempotence and clear failures."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .harness import ROOT


def _build(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "build.py"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = _build("--out", out)
    assert proc.returncode == 0, proc.stderr
    return out


def test_bundle_contents(built: Path) -> None:
    for name in ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip"):
        assert (built / "pyodide" / name).is_file(), name
    manifest = json.loads((built / "build.json").read_text())
    imports = manifest["importmap"]["imports"]
    for specifier in ("libsodium-wrappers-sumo", "libsodium-sumo", "@noble/curves/", "pyodide"):
        target = built / imports[specifier]
        assert target.exists(), (specifier, target)
    # The libraries' own bare imports resolve through the map.
    assert (built / imports["@noble/hashes/"] / "sha2.js").is_file()
    page = (built / "selfcheck.html").read_text()
    assert "<!-- importmap -->" not in page
    found = re.search(r'<script type="importmap">(.*?)</script>', page, re.S)
    assert found is not None
    assert json.loads(found[1]) == manifest["importmap"]
    wheel = (built / manifest["wheel"]).read_bytes()
    digest = base64.b64encode(hashlib.sha384(wheel).digest()).decode()
    assert manifest["wheel_integrity"] == f"sha384-{digest}"


def test_wheel_is_valid_and_importable(built: Path) -> None:
    manifest = json.loads((built / "build.json").read_text())
    wheel = built / manifest["wheel"]
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        record_name = next(n for n in names if n.endswith(".dist-info/RECORD"))
        rows = list(csv.reader(io.StringIO(zf.read(record_name).decode())))
        for name, hash_, size in rows:
            if name == record_name:
                continue
            data = zf.read(name)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert hash_ == f"sha256={want}" and int(size) == len(data), name
        assert {r[0] for r in rows} == set(names)
    assert "mls/__init__.py" in names and "corecrypto/__init__.py" in names
    assert not [n for n in names if n.startswith("delivery/") or "__pycache__" in n]
    # A pure wheel is importable straight from the zip: prove it holds working code.
    code = "import mls.codec, mls.crypto.ciphersuite, corecrypto; print(mls.codec.__file__)"
    proc = subprocess.run(
        [sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {str(wheel)!r}); {code}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert str(wheel) in proc.stdout


def test_rebuild_writes_nothing_and_prunes(built: Path) -> None:
    (built / "stale.txt").write_text("left over from an older build")
    proc = _build("--out", built)
    assert proc.returncode == 0, proc.stderr
    assert " 1 removed" in proc.stdout and not (built / "stale.txt").exists(), proc.stdout
    # Nothing changed since (the wheel is reproducible): nothing is written.
    proc = _build("--out", built)
    assert " 0 written" in proc.stdout and " 0 removed" in proc.stdout, proc.stdout


def test_missing_node_modules_fails_clearly(tmp_path: Path) -> None:
    proc = _build("--out", tmp_path / "dist", "--node-modules", tmp_path / "node_modules")
    assert proc.returncode == 1
    assert "pyodide is not installed" in proc.stderr and "bootstrap.sh" in proc.stderr
    assert not (tmp_path / "dist").exists()


def test_refuses_to_prune_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("not ours")
    proc = _build("--out", tmp_path)
    assert proc.returncode == 1 and "not a bundle directory" in proc.stderr
    assert (tmp_path / "precious.txt").exists()


def test_sources_name_no_external_origin() -> None:
    """Everything is served from our origin: no URL of another host in what we ship."""
    dist = ROOT / "web" / "dist"
    sources = [ROOT / "build.py", *(ROOT / "web").rglob("*")]
    offenders = [
        f"{path.relative_to(ROOT)}: {m[0]}"
        for path in sources
        if path.is_file() and dist not in path.parents
        for m in re.finditer(r"\b(?:https?|wss?)://[^\s\"'`)]+", path.read_text(errors="replace"))
    ]
    assert not offenders, offenders
