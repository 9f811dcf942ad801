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
    manifest = json.loads((built / "build.json").read_text())
    for name in ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip"):
        assert (built / manifest["pyodide"] / name).is_file(), name
    for name in ("micropython.mjs", "micropython.wasm"):
        assert (built / manifest["micropython"] / name).is_file(), name
    imports = manifest["imports"]
    for specifier in ("libsodium-wrappers-sumo", "libsodium-sumo", "@noble/curves/", "pyodide"):
        target = built / imports[specifier]
        assert target.exists(), (specifier, target)
    # The libraries' own bare imports were linked to the hashed files.
    assert (built / imports["@noble/hashes/"] / "sha2.js").is_file()
    nist = (built / imports["@noble/curves/"] / "nist.js").read_text()
    assert "from '@noble/hashes/" not in nist and "noble-hashes." in nist
    page = (built / "index.html").read_text()
    assert 'src="js/' not in page and f'src="{manifest["modules"]["app_boot.mjs"]}"' in page
    wheel = (built / manifest["wheel"]).read_bytes()
    digest = base64.b64encode(hashlib.sha384(wheel).digest()).decode()
    assert manifest["wheel_integrity"] == f"sha384-{digest}"


_SPEC = re.compile(r"""^(?:(?:import|export)\b[^'";]*?\bfrom\s*|import\s*)['"]([^'"]+)['"]""",
                   re.MULTILINE)


def test_every_asset_is_content_addressed_and_linked(built: Path) -> None:
    """assets/ holds only hashed names, every module import of ours and of the
    libraries resolves to a file of the bundle, and the precache list holds the
    complete module graph of the page (an offline start needs all of it)."""
    manifest = json.loads((built / "build.json").read_text())
    for path in (built / "assets").iterdir():
        _, _, rest = path.name.partition(".")
        digest = rest.split(".")[0]
        assert len(digest) == 16 and int(digest, 16) >= 0, path.name
        if path.is_file():
            assert hashlib.sha256(path.read_bytes()).hexdigest()[:16] == digest, path.name
    precache = set(manifest["precache"])
    for rel in precache - {"./"}:
        path = built / rel
        assert path.is_file(), rel
        if rel.endswith((".js", ".mjs")):
            for spec in _SPEC.findall(path.read_text()):
                assert spec.startswith("."), (rel, spec)  # nothing bare is left
                target = (path.parent / spec).resolve().relative_to(built.resolve()).as_posix()
                assert target in precache, (rel, spec)
    assert manifest["modules"]["core_worker.mjs"] in precache
    sw = (built / "sw.js").read_text()
    assert manifest["build"] in sw and manifest["wheel"] in sw


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
