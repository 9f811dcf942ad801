#!/usr/bin/env python3
"""Assemble the browser bundle in ``web/dist/`` (git-ignored): ``python build.py``.

Everything the page loads is served from its own origin, so the bundle holds all of it:

* ``pyodide/``: the Pyodide runtime from ``node_modules/pyodide`` (only the files a
  page needs; no Pyodide packages: the client is pure Python over the stdlib);
* ``py/``: a pure-Python wheel of the ``mls`` and ``corecrypto`` packages, built here
  (``delivery`` is the server's and stays out);
* ``vendor/``: the JS libraries as ES modules, loaded through an import map (no
  bundler): libsodium-wrappers-sumo and its ``libsodium-sumo``, @noble/ciphers,
  @noble/curves, @noble/hashes and @noble/post-quantum;
* the files under ``web/`` (the pages, ``web/js/``): in every ``.html`` file the
  comment ``<!-- importmap -->`` is replaced by the import map;
* ``build.json``: what ``web/js/mls_runtime.mjs`` needs to know (the wheel's name and
  its SRI hash) and the import map for reference.

The build is a sync: each output is compared with what is on disk (size and mtime
for copies, bytes for generated files) and only changed files are written, atomically;
files no longer produced are removed. A second run with nothing changed writes
nothing. It fails with a clear message if ``node_modules`` is missing or does not
hold the versions ``package.json`` pins.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import io
import json
import os
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT_NODE_MODULES = ROOT / "node_modules"
WEB = ROOT / "web"
DEFAULT_OUT = WEB / "dist"

#: The Pyodide files a page loads (pyodide.mjs imports pyodide.asm.mjs, which fetches
#: the rest). The npm package's source maps, UMD build and consoles are left out.
PYODIDE_FILES = (
    "pyodide.mjs",
    "pyodide.asm.mjs",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide-lock.json",
)
#: npm package -> its ES-module entry file, for packages imported by bare name.
ESM_ENTRIES = {
    "libsodium-wrappers-sumo": "dist/modules-sumo-esm/libsodium-wrappers.mjs",
    "libsodium-sumo": "dist/modules-sumo-esm/libsodium-sumo.mjs",
    "qrcode-generator": "dist/qrcode.mjs",  # the safety-number QR code, drawn locally
}
#: PyScript: its bundled ES modules and stylesheet (no source maps); the page's
#: config points its interpreter at our own pyodide/ instead of the CDN default.
PYSCRIPT = "@pyscript/core"
#: The web chat's Python sources (web/app/), shipped as one zip the page unpacks.
APP_DIR = "app"
#: npm packages imported by subpath (``@noble/curves/nist.js``): all their modules.
ESM_TREES = ("@noble/ciphers", "@noble/curves", "@noble/hashes", "@noble/post-quantum")
#: Python packages of the browser wheel.
WHEEL_PACKAGES = ("mls", "corecrypto")
#: Subpackages left out of the browser wheel: mls.interop is a gRPC adapter for
#: CPython (grpcio), nothing in the browser imports it.
WHEEL_EXCLUDED = frozenset({"__pycache__", "interop"})
WHEEL_NAME = "intellacc_e2ee_client"
IMPORTMAP_MARKER = "<!-- importmap -->"
_LOCK = ".build.lock"  # an empty file in the output directory, for flock
# Fixed zip timestamps make the wheel a function of its contents: an unchanged
# source tree gives identical bytes, hence no rewrite and a stable SRI hash.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class BuildError(Exception):
    """A precondition of the build is not met; the message says what to do."""


@dataclass(frozen=True)
class Copy:
    """An output copied from a file."""

    src: Path


Output = Copy | bytes


def _pinned_versions() -> dict[str, str]:
    with (ROOT / "package.json").open(encoding="utf-8") as f:
        deps: dict[str, str] = json.load(f)["dependencies"]
    return deps


def check_node_modules(node_modules: Path, packages: list[str]) -> None:
    """Fail unless every package is installed at the version package.json pins."""
    pinned = _pinned_versions()
    problems = []
    for name in packages:
        manifest = node_modules / name / "package.json"
        if not manifest.is_file():
            problems.append(f"{name} is not installed")
            continue
        installed = json.loads(manifest.read_text(encoding="utf-8"))["version"]
        want = pinned.get(name)
        if installed != want:
            problems.append(f"{name} {installed} is installed but package.json pins {want}")
    if problems:
        raise BuildError(
            "node_modules is not ready: "
            + "; ".join(problems)
            + ". Run ./scripts/bootstrap.sh (or `npm ci`) first."
        )


def _tree(src: Path, suffixes: tuple[str, ...], skip_dirs: frozenset[str]) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs)
        for name in sorted(filenames):
            if name.endswith(suffixes):
                yield Path(dirpath) / name


def _pyodide_outputs(node_modules: Path) -> dict[str, Output]:
    src = node_modules / "pyodide"
    missing = [f for f in PYODIDE_FILES if not (src / f).is_file()]
    if missing:
        raise BuildError(f"node_modules/pyodide lacks {', '.join(missing)}: run `npm ci`")
    return {f"pyodide/{name}": Copy(src / name) for name in PYODIDE_FILES}


def _vendor_outputs(node_modules: Path) -> tuple[dict[str, Output], dict[str, str]]:
    """The vendored JS modules and the import map that resolves their bare names."""
    outputs: dict[str, Output] = {}
    imports: dict[str, str] = {}
    for pkg, entry in ESM_ENTRIES.items():
        src = node_modules / pkg / entry
        if not src.is_file():
            raise BuildError(f"node_modules/{pkg}/{entry} is missing: run `npm ci`")
        outputs[f"vendor/{pkg}/{src.name}"] = Copy(src)
        if (node_modules / pkg / "LICENSE").is_file():  # else the header carries it
            outputs[f"vendor/{pkg}/LICENSE"] = Copy(node_modules / pkg / "LICENSE")
        imports[pkg] = f"./vendor/{pkg}/{src.name}"
    pyscript = node_modules / PYSCRIPT / "dist"
    if not (pyscript / "core.js").is_file():
        raise BuildError(f"node_modules/{PYSCRIPT}/dist/core.js is missing: run `npm ci`")
    for path in _tree(pyscript, (".js", ".css"), frozenset()):
        outputs[f"vendor/{PYSCRIPT}/dist/{path.name}"] = Copy(path)
    outputs[f"vendor/{PYSCRIPT}/LICENSE"] = Copy(node_modules / PYSCRIPT / "LICENSE")
    imports[PYSCRIPT] = f"./vendor/{PYSCRIPT}/dist/core.js"
    for pkg in ESM_TREES:
        base = node_modules / pkg
        # The compiled .js modules only; src/ holds the TypeScript sources.
        for path in _tree(base, (".js",), frozenset({"src", "node_modules"})):
            outputs[f"vendor/{pkg}/{path.relative_to(base).as_posix()}"] = Copy(path)
        outputs[f"vendor/{pkg}/LICENSE"] = Copy(base / "LICENSE")
        imports[f"{pkg}/"] = f"./vendor/{pkg}/"
    imports["pyodide"] = "./pyodide/pyodide.mjs"
    return outputs, imports


def _project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        version: str = tomllib.load(f)["project"]["version"]
    return version


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def build_wheel() -> tuple[str, bytes]:
    """A reproducible pure-Python wheel (PEP 427) of WHEEL_PACKAGES: (file name, bytes)."""
    version = _project_version()
    dist_info = f"{WHEEL_NAME}-{version}.dist-info"
    files: list[tuple[str, bytes]] = []
    for pkg in WHEEL_PACKAGES:
        base = ROOT / "src" / pkg
        if not (base / "__init__.py").is_file():
            raise BuildError(f"src/{pkg} is not a Python package")
        for path in _tree(base, (".py", "py.typed"), WHEEL_EXCLUDED):
            files.append((f"{pkg}/{path.relative_to(base).as_posix()}", path.read_bytes()))
    metadata = (
        "Metadata-Version: 2.1\n"
        f"Name: {WHEEL_NAME.replace('_', '-')}\n"
        f"Version: {version}\n"
        "Summary: The MLS library and the client core of Intellacc, for Pyodide\n"
        "Requires-Python: >=3.11\n"
    )
    wheel = (
        "Wheel-Version: 1.0\n"
        "Generator: intellacc build.py\n"
        "Root-Is-Purelib: true\n"
        "Tag: py3-none-any\n"
    )
    files.append((f"{dist_info}/METADATA", metadata.encode()))
    files.append((f"{dist_info}/WHEEL", wheel.encode()))
    files.append((f"{dist_info}/top_level.txt", "".join(f"{p}\n" for p in WHEEL_PACKAGES).encode()))
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files)
    files.append((f"{dist_info}/RECORD", (record + f"{dist_info}/RECORD,,\n").encode()))

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return f"{WHEEL_NAME}-{version}-py3-none-any.whl", buf.getvalue()


def build_app_zip() -> bytes:
    """The web chat's Python package(s) under web/app/, as a reproducible zip."""
    base = WEB / APP_DIR
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in _tree(base, (".py",), frozenset({"__pycache__"})):
            info = zipfile.ZipInfo(path.relative_to(base).as_posix(), date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def _sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def _importmap_tag(imports: dict[str, str]) -> str:
    body = json.dumps({"imports": imports}, indent=2, sort_keys=True)
    return f'<script type="importmap">\n{body}\n</script>'


def _web_outputs(out: Path, imports: dict[str, str]) -> dict[str, Output]:
    """The files under web/ (except the output), with the import map in the pages."""
    outputs: dict[str, Output] = {}
    tag = _importmap_tag(imports)
    for dirpath, dirnames, filenames in os.walk(WEB):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if (here / d).resolve() != out.resolve()
                             and (here / d).resolve() != (WEB / APP_DIR).resolve())
        for name in sorted(filenames):
            path = here / name
            rel = path.relative_to(WEB).as_posix()
            if name.endswith(".html"):
                page = path.read_text(encoding="utf-8")
                outputs[rel] = page.replace(IMPORTMAP_MARKER, tag).encode()
            else:
                outputs[rel] = Copy(path)
    return outputs


def plan(out: Path, node_modules: Path = DEFAULT_NODE_MODULES) -> dict[str, Output]:
    """Every file of the bundle, by path relative to ``out``."""
    check_node_modules(node_modules, [*ESM_ENTRIES, *ESM_TREES, PYSCRIPT, "pyodide"])
    outputs = _pyodide_outputs(node_modules)
    vendor, imports = _vendor_outputs(node_modules)
    outputs |= vendor
    wheel_name, wheel = build_wheel()
    outputs[f"py/{wheel_name}"] = wheel
    app = build_app_zip()
    outputs["py/app.zip"] = app
    outputs |= _web_outputs(out, imports)
    manifest = {
        "pyodide": _pinned_versions()["pyodide"],
        "wheel": f"py/{wheel_name}",
        "wheel_integrity": _sri(wheel),
        "app": "py/app.zip",
        "app_integrity": _sri(app),
        "importmap": {"imports": imports},
    }
    outputs["build.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    return outputs


def _up_to_date(dest: Path, output: Output) -> bool:
    try:
        st = dest.stat()
    except FileNotFoundError:
        return False
    if isinstance(output, Copy):
        src = output.src.stat()
        return st.st_size == src.st_size and st.st_mtime_ns == src.st_mtime_ns
    return st.st_size == len(output) and dest.read_bytes() == output


def _write(dest: Path, output: Output) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    if isinstance(output, Copy):
        tmp.write_bytes(output.src.read_bytes())
        st = output.src.stat()
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))  # the up-to-date check's key
    else:
        tmp.write_bytes(output)
    os.replace(tmp, dest)


def sync(out: Path, outputs: dict[str, Output]) -> tuple[int, int, int]:
    """Make ``out`` hold exactly ``outputs``: (written, unchanged, removed)."""
    present = {p.name for p in out.iterdir()} - {_LOCK} if out.is_dir() else set()
    if present and "build.json" not in present:
        # Stale files are deleted below: never do that to a directory we did not build.
        raise BuildError(f"{out} is not empty and holds no build.json: not a bundle directory")
    out.mkdir(parents=True, exist_ok=True)
    # Tests, run.sh and developers may build at the same time: one at a time.
    with (out / _LOCK).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _sync_locked(out, outputs)


def _sync_locked(out: Path, outputs: dict[str, Output]) -> tuple[int, int, int]:
    written = unchanged = removed = 0
    for rel, output in outputs.items():
        dest = out / rel
        if _up_to_date(dest, output):
            unchanged += 1
        else:
            _write(dest, output)
            written += 1
    for path in sorted(out.rglob("*"), reverse=True):  # children before parents
        rel = path.relative_to(out).as_posix()
        if path.is_dir():
            if not any(path.iterdir()):
                path.rmdir()
        elif rel not in outputs and rel != _LOCK:
            path.unlink()
            removed += 1
    return written, unchanged, removed


def build(
    out: Path = DEFAULT_OUT, node_modules: Path = DEFAULT_NODE_MODULES
) -> tuple[int, int, int]:
    """Build the bundle into ``out``; returns (written, unchanged, removed)."""
    return sync(out, plan(out, node_modules))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    ap.add_argument(
        "--node-modules", type=Path, default=DEFAULT_NODE_MODULES, help="npm packages to use"
    )
    ap.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    args = ap.parse_args(argv)
    try:
        written, unchanged, removed = build(args.out, args.node_modules)
    except BuildError as e:
        print(f"build.py: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"build.py: {args.out}: {written} written, {unchanged} unchanged, {removed} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
