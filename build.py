#!/usr/bin/env python3
"""Assemble the browser bundle in ``web/dist/`` (git-ignored): ``python build.py``.

Everything the page loads is served from its own origin, so the bundle holds all of it.
Every file the pages load, except the pages themselves, the service worker and
``build.json``, lives under ``assets/`` with the hash of its content in its name (a
file ``assets/NAME.HASH.EXT``, or a directory ``assets/NAME.HASH/`` for a package whose
files find each other by name), so the server can mark ``assets/`` immutable and a
new deploy is new URLs:

* ``pyodide.HASH/``: the Pyodide runtime from ``node_modules/pyodide`` (only the files
  the worker needs; no Pyodide packages: the client is pure Python over the stdlib);
* ``micropython.HASH/``: MicroPython (the PyScript variant of its WebAssembly port),
  which runs the page's UI on the main thread;
* ``<package>.HASH/``: the JS libraries (libsodium, @noble/* including
  @noble/post-quantum's ML-KEM, the QR encoder);
* ``client.HASH.whl``: a pure-Python wheel of ``mls`` + ``corecrypto``;
  ``worker.HASH.zip``: the worker's Python (``web/app/chatworker``);
  ``ui.HASH.json``: the UI's Python sources (``web/app/chatui``) for MicroPython;
  ``passwords.HASH.json``: the server's password rules and common-password list
  (``delivery.security``: one list, used by both sides);
* ``NAME.HASH.mjs`` / ``.css``: the files of ``web/js`` and ``web/css``, and
  ``manifest.HASH.mjs``, generated, naming the files above for the code that loads them.

There is no bundler and no import map (module workers cannot use one): the build links
ES modules itself. Every import specifier, bare (``"@noble/curves/ed25519.js"``,
``"pyodide"``) or relative to ``web/js`` (``"./vault.mjs"``), and every
``new URL("./x.mjs", import.meta.url)``, is rewritten to the hashed file's relative
URL; a module's hash covers its rewritten text, so a change anywhere below it changes
its name too. Only top-level ``import``/``export`` statements at the start of a line are
linked (documentation examples in comments are not).

``sw.js`` (the service worker, from ``web/sw.js``) gets the list of files to precache:
the pages' module graphs, the runtimes and the Python; its bytes change with every
deploy, which is how browsers notice one. ``build.json`` describes the build.

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
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT_NODE_MODULES = ROOT / "node_modules"
WEB = ROOT / "web"
DEFAULT_OUT = WEB / "dist"
ASSETS = "assets"
HASH_CHARS = 16

#: The Pyodide files the worker loads (pyodide.mjs imports pyodide.asm.mjs, which fetches
#: the rest). The lock file is passed inline (no Pyodide packages are used).
PYODIDE_FILES = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip")
MICROPYTHON = "@micropython/micropython-webassembly-pyscript"
MICROPYTHON_FILES = ("micropython.mjs", "micropython.wasm")
#: npm package -> its ES-module entry file, for packages imported by bare name.
ESM_ENTRIES = {
    "libsodium-wrappers-sumo": "dist/modules-sumo-esm/libsodium-wrappers.mjs",
    "libsodium-sumo": "dist/modules-sumo-esm/libsodium-sumo.mjs",
    "qrcode-generator": "dist/qrcode.mjs",  # the safety-number QR code, drawn locally
}
#: npm packages imported by subpath (``@noble/curves/nist.js``): all their modules.
ESM_TREES = ("@noble/ciphers", "@noble/curves", "@noble/hashes", "@noble/post-quantum")
#: Python packages of the browser wheel.
WHEEL_PACKAGES = ("mls", "corecrypto")
#: Subpackages left out of the browser wheel: mls.interop is a gRPC adapter for
#: CPython (grpcio), nothing in the browser imports it.
WHEEL_EXCLUDED = frozenset({"__pycache__", "interop"})
WHEEL_NAME = "intellacc_e2ee_client"
#: web/app/: the UI (MicroPython, main thread) and the worker's side (Pyodide).
UI_PACKAGE = "chatui"
WORKER_PACKAGE = "chatworker"
#: The pages and the service worker keep their names; the pages' module scripts and
#: stylesheets are rewritten to the hashed names.
SERVICE_WORKER = "sw.js"
#: What the worker's Pyodide memory snapshot has imported (scripts/make_snapshot.mjs).
SNAPSHOT_IMPORTS = ("import corecrypto.messenger, corecrypto.vault, corecrypto.vault.browser, "
                    "corecrypto.transport.browser, mls.group, chatworker.browser")
SNAPSHOT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "intellacc-web"
MANIFEST_SPECIFIER = "./manifest.mjs"  # the generated module, as web/js imports it
PRELOAD_MARKER = "<!-- preload -->"
_LOCK = ".build.lock"  # an empty file in the output directory, for flock
# Fixed zip timestamps make archives a function of their contents: an unchanged
# source tree gives identical bytes, hence no rewrite and a stable name.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Static imports at the start of a line: `import x from "s"`, `export {a} from 's'`,
# `import "s"`. Not `;` or a quote before `from`, so one statement is never crossed.
_IMPORT_RE = re.compile(
    r"""^(?P<head>(?:import|export)\b[^'";]*?\bfrom\s*|import\s*)(?P<q>['"])(?P<spec>[^'"\n]+)(?P=q)""",
    re.MULTILINE,
)
_NEW_URL_RE = re.compile(
    r"""(?P<head>new\s+URL\(\s*)(?P<q>['"])(?P<spec>\.{1,2}/[^'"\n]+)(?P=q)(?=\s*,\s*import\.meta\.url\s*\))"""
)
_ATTR_RE = re.compile(r"""(?P<head>\b(?:src|href)=)(?P<q>["'])(?P<spec>[^"']+)(?P=q)""")


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


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:HASH_CHARS]


def _sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def _hashed_name(path: str, data: bytes) -> str:
    """``dir/name.ext`` -> ``dir/name.HASH.ext`` (the first dot starts the extension)."""
    head, _, tail = path.rpartition("/")
    stem, dot, ext = tail.partition(".")
    name = f"{stem}.{_digest(data)}{dot}{ext}"
    return f"{head}/{name}" if head else name


def _is_module(path: str) -> bool:
    return path.endswith((".js", ".mjs"))


def _specifiers(text: str) -> list[str]:
    return [m["spec"] for m in _IMPORT_RE.finditer(text)] + [
        m["spec"] for m in _NEW_URL_RE.finditer(text)
    ]


def _rewrite(text: str, resolve: dict[str, str]) -> str:
    """Replace the import specifiers (and new URL(...) targets) found in ``resolve``."""

    def sub(m: re.Match[str]) -> str:
        spec = m["spec"]
        new = resolve.get(spec, spec)
        return f"{m['head']}{m['q']}{new}{m['q']}"

    return _NEW_URL_RE.sub(sub, _IMPORT_RE.sub(sub, text))


# --- packages from node_modules ---------------------------------------------------------


@dataclass
class Package:
    """An npm package shipped as one hashed directory ``assets/<slug>.HASH/``."""

    name: str
    files: dict[str, Path]  # path inside the directory -> source file
    entry: str | None = None  # the file a bare ``import "name"`` means; None: by subpath
    #: Set by the linker: the directory, relative to the bundle root (ends with "/").
    dir: str = ""
    outputs: dict[str, Output] = field(default_factory=dict)
    #: Every file's relative imports resolved, for the precache graph: file -> targets.
    edges: dict[str, list[str]] = field(default_factory=dict)

    short: str = ""  # the directory's name, if not derived from the package's

    @property
    def slug(self) -> str:
        return self.short or self.name.lstrip("@").replace("/", "-")


def _packages(node_modules: Path) -> dict[str, Package]:
    packages: dict[str, Package] = {}
    src = node_modules / "pyodide"
    missing = [f for f in PYODIDE_FILES if not (src / f).is_file()]
    if missing:
        raise BuildError(f"node_modules/pyodide lacks {', '.join(missing)}: run `npm ci`")
    packages["pyodide"] = Package("pyodide", {f: src / f for f in PYODIDE_FILES}, "pyodide.mjs")
    src = node_modules / MICROPYTHON
    missing = [f for f in MICROPYTHON_FILES if not (src / f).is_file()]
    if missing:
        raise BuildError(f"node_modules/{MICROPYTHON} lacks {', '.join(missing)}: run `npm ci`")
    packages[MICROPYTHON] = Package(
        MICROPYTHON, {f: src / f for f in MICROPYTHON_FILES}, "micropython.mjs",
        short="micropython",
    )
    for pkg, entry in ESM_ENTRIES.items():
        path = node_modules / pkg / entry
        if not path.is_file():
            raise BuildError(f"node_modules/{pkg}/{entry} is missing: run `npm ci`")
        files = {path.name: path}
        if (node_modules / pkg / "LICENSE").is_file():  # else the header carries it
            files["LICENSE"] = node_modules / pkg / "LICENSE"
        packages[pkg] = Package(pkg, files, path.name)
    for pkg in ESM_TREES:
        base = node_modules / pkg
        # The compiled .js modules only; src/ holds the TypeScript sources.
        files = {
            p.relative_to(base).as_posix(): p
            for p in _tree(base, (".js",), frozenset({"src", "node_modules"}))
        }
        files["LICENSE"] = base / "LICENSE"
        packages[pkg] = Package(pkg, files)
    return packages


def _bare_target(spec: str, packages: dict[str, Package], *, strict: bool = False
                 ) -> tuple[Package, str] | None:
    """The package and file a bare specifier names, or None if it is not ours (or, unless
    ``strict``, names no file: an example in a library's comment)."""
    if spec in packages and packages[spec].entry is not None:
        pkg = packages[spec]
        assert pkg.entry is not None
        return pkg, pkg.entry
    for pkg in packages.values():
        if pkg.entry is None and spec.startswith(pkg.name + "/"):
            sub = spec[len(pkg.name) + 1 :]
            if sub not in pkg.files:
                if strict:
                    raise BuildError(f"{spec!r} is imported but {pkg.name} has no file {sub}")
                return None
            return pkg, sub
    return None


def _relative(from_file: str, to_file: str) -> str:
    """The relative URL of ``to_file`` from ``from_file`` (both bundle paths)."""
    rel = posixpath.relpath(to_file, posixpath.dirname(from_file))
    return rel if rel.startswith("../") else f"./{rel}"


def _link_package(pkg: Package, packages: dict[str, Package], stack: tuple[str, ...]) -> None:
    """Give ``pkg`` its hashed directory, after the packages it imports (recursively)."""
    if pkg.dir:
        return
    if pkg.name in stack:
        raise BuildError(f"import cycle between packages: {' -> '.join((*stack, pkg.name))}")
    texts: dict[str, str] = {}
    for rel, src in pkg.files.items():
        if not _is_module(rel):
            continue
        texts[rel] = src.read_text(encoding="utf-8")
        for spec in _specifiers(texts[rel]):
            target = _bare_target(spec, packages)
            if target is not None and target[0] is not pkg:
                _link_package(target[0], packages, (*stack, pkg.name))
    # The directory's name is a hash of its contents; paths inside are known relative
    # to it before it has a name: assets/<slug>.HASH/<rel>, depth 2 + rel's depth.
    contents: dict[str, bytes | Path] = {}
    for rel, src in pkg.files.items():
        if rel not in texts:
            contents[rel] = src
            continue
        here = f"{ASSETS}/{pkg.slug}.X/{rel}"
        resolve: dict[str, str] = {}
        edges: list[str] = []
        for spec in _specifiers(texts[rel]):
            target = _bare_target(spec, packages)
            if target is not None:
                dep, sub = target
                where = f"{ASSETS}/{pkg.slug}.X/{sub}" if dep is pkg else dep.dir + sub
                resolve[spec] = _relative(here, where)
                edges.append(where if dep is not pkg else f"\0{sub}")
            elif spec.startswith("."):
                edges.append("\0" + posixpath.normpath(posixpath.join(posixpath.dirname(rel),
                                                                      spec)))
        new = _rewrite(texts[rel], resolve)
        contents[rel] = new.encode() if new != texts[rel] else src
        pkg.edges[rel] = edges
    digest = hashlib.sha256()
    for rel in sorted(contents):
        item = contents[rel]
        data = item if isinstance(item, bytes) else item.read_bytes()
        digest.update(f"{rel}\0{len(data)}\0".encode())
        digest.update(data)
    pkg.dir = f"{ASSETS}/{pkg.slug}.{digest.hexdigest()[:HASH_CHARS]}/"
    for rel, item in contents.items():
        pkg.outputs[pkg.dir + rel] = item if isinstance(item, bytes) else Copy(item)
    # Edges within the package become full paths now that the directory has a name.
    pkg.edges = {pkg.dir + rel: [pkg.dir + t[1:] if t.startswith("\0") else t for t in targets]
                 for rel, targets in pkg.edges.items()}


# --- Python archives ---------------------------------------------------------------------


def _project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        version: str = tomllib.load(f)["project"]["version"]
    return version


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _zip(files: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


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
    return f"{WHEEL_NAME}-{version}-py3-none-any.whl", _zip(files)


def _app_sources(package: str) -> list[tuple[str, bytes]]:
    base = WEB / "app"
    if not (base / package / "__init__.py").is_file():
        raise BuildError(f"web/app/{package} is not a Python package")
    return [(p.relative_to(base).as_posix(), p.read_bytes())
            for p in _tree(base / package, (".py",), frozenset({"__pycache__"}))]


def build_worker_zip() -> bytes:
    """The worker's Python (web/app/chatworker), as a reproducible zip for Pyodide."""
    return _zip(_app_sources(WORKER_PACKAGE))


def build_ui_sources() -> bytes:
    """The UI's Python (web/app/chatui) as JSON {path: source}: MicroPython has no
    zipimport, so the page writes the files into its file system."""
    files = {name: data.decode("utf-8") for name, data in _app_sources(UI_PACKAGE)}
    return json.dumps(files, sort_keys=True, separators=(",", ":")).encode()


def build_password_rules() -> bytes:
    """The account password rules of the server (``delivery.security``), for the
    client's vault password check: one list and one set of limits for both."""
    sys.path.insert(0, str(ROOT / "src"))
    try:
        from delivery import security  # noqa: PLC0415 - the server's, only here
    except ImportError as e:
        raise BuildError(f"cannot import delivery.security ({e}): run ./scripts/bootstrap.sh "
                         "and build with .venv/bin/python") from None
    finally:
        sys.path.remove(str(ROOT / "src"))
    common = sorted(security._common_passwords())
    rules = {"min": security.PASSWORD_MIN, "max": security.PASSWORD_MAX, "common": common}
    return json.dumps(rules, separators=(",", ":")).encode()


def build_snapshot(pyodide: Path, wheel: bytes, worker: bytes) -> bytes:
    """The worker's Pyodide memory snapshot, gzipped: Python started with the client
    imported (scripts/make_snapshot.mjs, on Node). Cached by its inputs, so a build
    with the same Pyodide, wheel and worker code does not make it again."""
    script = ROOT / "scripts" / "make_snapshot.mjs"
    key = hashlib.sha256()
    for part in (script.read_bytes(), SNAPSHOT_IMPORTS.encode(), wheel, worker,
                 *((pyodide / f).read_bytes() for f in PYODIDE_FILES)):
        key.update(hashlib.sha256(part).digest())
    cached = SNAPSHOT_CACHE / f"snapshot-{key.hexdigest()[:32]}.gz"
    if cached.is_file():
        return cached.read_bytes()
    node = shutil.which("node")
    if node is None:
        raise BuildError("node is not installed (it makes the worker's Python snapshot): "
                         "run ./scripts/bootstrap.sh")
    SNAPSHOT_CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "client.whl").write_bytes(wheel)
        (Path(tmp) / "worker.zip").write_bytes(worker)
        proc = subprocess.run(  # noqa: S603 - our script, our arguments
            [node, str(script), str(pyodide), f"{tmp}/client.whl", f"{tmp}/worker.zip",
             SNAPSHOT_IMPORTS, str(cached)],
            capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0 or not cached.is_file():
        raise BuildError(f"making the Pyodide snapshot failed:\n{proc.stderr[-2000:]}")
    return cached.read_bytes()


# --- our modules, pages, service worker ----------------------------------------------------


@dataclass
class Linked:
    """The result of linking: every output, and the graph for precaching."""

    outputs: dict[str, Output]
    edges: dict[str, list[str]]  # bundle path -> bundle paths it loads
    static: dict[str, list[str]]  # the same, imports only (no worker scripts)
    modules: dict[str, str]  # web/js file name -> its hashed bundle path
    imports: dict[str, str]  # bare specifier -> bundle path ("name/" for prefixes)


def _link_modules(packages: dict[str, Package], manifest_path: str,
                  manifest: bytes) -> Linked:
    sources = {p.name: p for p in sorted((WEB / "js").glob("*.mjs"))}
    done: dict[str, str] = {}
    outputs: dict[str, Output] = {manifest_path: manifest}
    edges: dict[str, list[str]] = {manifest_path: []}
    static: dict[str, list[str]] = {manifest_path: []}

    def link(name: str, stack: tuple[str, ...]) -> str:
        if name in done:
            return done[name]
        if name in stack:
            raise BuildError(f"import cycle in web/js: {' -> '.join((*stack, name))}")
        text = sources[name].read_text(encoding="utf-8")
        resolve: dict[str, str] = {}
        targets: list[str] = []
        workers = {m["spec"] for m in _NEW_URL_RE.finditer(text)}
        for spec in _specifiers(text):
            if spec == MANIFEST_SPECIFIER:
                target = manifest_path
            elif spec.startswith("./") and "/" not in spec[2:]:
                if spec[2:] not in sources:
                    raise BuildError(f"web/js/{name} imports {spec}, which does not exist")
                target = link(spec[2:], (*stack, name))
            elif (found := _bare_target(spec, packages, strict=True)) is not None:
                _link_package(found[0], packages, ())
                target = found[0].dir + found[1]
            else:
                raise BuildError(f"web/js/{name} imports {spec!r}: not a file of web/js "
                                 "nor a package build.py ships")
            # Every module of ours lives directly in assets/.
            resolve[spec] = _relative(f"{ASSETS}/{name}", target)
            targets.append(target)
        data = _rewrite(text, resolve).encode()
        path = _hashed_name(f"{ASSETS}/{name}", data)
        outputs[path] = data
        edges[path] = targets
        static[path] = [t for spec, t in zip(_specifiers(text), targets, strict=True)
                        if spec not in workers]
        done[name] = path
        return path

    for name in sources:
        link(name, ())
    imports: dict[str, str] = {}
    for pkg in packages.values():
        _link_package(pkg, packages, ())
        outputs |= pkg.outputs
        edges |= pkg.edges
        static |= pkg.edges
        if pkg.entry is not None:
            imports[pkg.name] = pkg.dir + pkg.entry
        else:
            imports[pkg.name + "/"] = pkg.dir
    return Linked(outputs, edges, static, done, imports)


def _closure(roots: list[str], edges: dict[str, list[str]]) -> list[str]:
    seen: list[str] = []
    todo = list(roots)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.append(path)
        todo.extend(edges.get(path, []))
    return seen


def _page(path: Path, linked: Linked, styles: dict[str, str]) -> tuple[bytes, list[str]]:
    """A page with its module scripts and stylesheets pointing at the hashed files, the
    modules they import preloaded; and the bundle paths it needs."""
    html = path.read_text(encoding="utf-8")
    needed: list[str] = []
    entries: list[str] = []

    def sub(m: re.Match[str]) -> str:
        spec = m["spec"]
        if spec.startswith("js/") and spec[3:] in linked.modules:
            new = linked.modules[spec[3:]]
            entries.append(new)
        elif spec in styles:
            new = styles[spec]
            needed.append(new)
        else:
            return m[0]
        return f"{m['head']}{m['q']}{new}{m['q']}"

    html = _ATTR_RE.sub(sub, html)
    graph = _closure(entries, linked.edges)
    # Preload what the page itself imports (not the worker's modules: another realm).
    modules = [p for p in _closure(entries, linked.static) if p not in entries]
    if PRELOAD_MARKER in html:
        links = "\n  ".join(f'<link rel="modulepreload" href="{p}">' for p in sorted(modules))
        html = html.replace(PRELOAD_MARKER, links)
    return html.encode(), [*needed, *graph]


def plan(out: Path, node_modules: Path = DEFAULT_NODE_MODULES) -> dict[str, Output]:
    """Every file of the bundle, by path relative to ``out``."""
    del out  # the layout does not depend on where the bundle goes
    check_node_modules(node_modules, [*ESM_ENTRIES, *ESM_TREES, MICROPYTHON, "pyodide"])
    packages = _packages(node_modules)
    for pkg in packages.values():
        _link_package(pkg, packages, ())

    data_files: dict[str, bytes] = {}
    wheel_name, wheel = build_wheel()
    worker = build_worker_zip()
    data = {
        "wheel": ("client.whl", wheel),
        "worker": ("worker.zip", worker),
        "snapshot": ("core.snap", build_snapshot(node_modules / "pyodide", wheel, worker)),
        "ui": ("ui.json", build_ui_sources()),
        "passwords": ("password-rules.json", build_password_rules()),
    }
    lock = json.loads((node_modules / "pyodide" / "pyodide-lock.json").read_text())
    manifest: dict[str, object] = {
        "pyodide": packages["pyodide"].dir,
        # No Pyodide packages are used: the worker passes this lock file inline instead
        # of fetching the 120 KB one.
        "pyodide_lock": {"info": lock["info"], "packages": {}},
        "pyodide_version": _pinned_versions()["pyodide"],
        "micropython": packages[MICROPYTHON].dir,
    }
    for key, (name, blob) in data.items():
        path = _hashed_name(f"{ASSETS}/{name}", blob)
        data_files[path] = blob
        manifest[key] = path
        manifest[f"{key}_integrity"] = _sri(blob)
    manifest_js = (
        "// Generated by build.py: the bundle's files, relative to the bundle's root.\n"
        f"export default Object.freeze({json.dumps(manifest, indent=2, sort_keys=True)});\n"
    ).encode()
    manifest_path = _hashed_name(f"{ASSETS}/manifest.mjs", manifest_js)
    linked = _link_modules(packages, manifest_path, manifest_js)

    outputs: dict[str, Output] = dict(linked.outputs)
    outputs |= data_files
    styles: dict[str, str] = {}
    for css in sorted((WEB / "css").glob("*.css")):
        blob = css.read_bytes()
        path = _hashed_name(f"{ASSETS}/{css.name}", blob)
        outputs[path] = blob
        styles[f"css/{css.name}"] = path

    runtime = [
        *(packages["pyodide"].dir + f for f in PYODIDE_FILES),
        *(packages[MICROPYTHON].dir + f for f in MICROPYTHON_FILES),
        *data_files,
    ]
    precache: list[str] = []
    for page in sorted(WEB.glob("*.html")):
        html, needed = _page(page, linked, styles)
        outputs[page.name] = html
        if page.name == "index.html":
            precache += ["./", *needed]
    precache += [p for p in _closure(precache + runtime, linked.edges) if p not in precache]
    precache = sorted(set(precache), key=precache.index)
    for path in precache:
        if path != "./" and path not in outputs:
            raise BuildError(f"the precache list names {path}, which the bundle lacks")
    index = outputs["index.html"]
    assert isinstance(index, bytes)
    build_id = _digest(json.dumps(precache).encode() + index)
    sw = (WEB / SERVICE_WORKER).read_text(encoding="utf-8")
    for marker, value in (("/*BUILD*/\"\"", json.dumps(build_id)),
                          ("/*PRECACHE*/[]", json.dumps(precache, indent=1))):
        if marker not in sw:
            raise BuildError(f"web/{SERVICE_WORKER} lacks the marker {marker}")
        sw = sw.replace(marker, value)
    outputs[SERVICE_WORKER] = sw.encode()

    build_json = {
        "build": build_id,
        "wheel_name": wheel_name,
        **manifest,
        "manifest": manifest_path,
        "modules": linked.modules,
        "imports": linked.imports,
        "precache": precache,
    }
    outputs["build.json"] = (json.dumps(build_json, indent=2, sort_keys=True) + "\n").encode()
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
    # Assets first, the pages, the service worker and build.json last: a page never
    # names a file that is not there yet.
    last = ("build.json", SERVICE_WORKER)
    order = sorted(outputs, key=lambda p: (p in last, p.endswith(".html"), p))
    for rel in order:
        output = outputs[rel]
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
