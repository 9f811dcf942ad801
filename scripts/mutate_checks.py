#!/usr/bin/env python3
"""Mutation testing of the validation code of ``src/mls``: every check must be
killed by a test when it is disabled or inverted.

A check is an ``if CONDITION: raise ...`` whose exception is an ``MLSError``
(or ``ValueError`` turned into one), plus the boolean verifiers listed in
``VERIFIERS``. For each check the script makes these mutants:

* ``disable``: the condition becomes ``False`` (the check is deleted);
* ``invert``: the condition becomes ``not (CONDITION)``;
* ``accept``: a verifier returns ``True`` whatever it was given.

Each mutant is a copy of ``src/mls`` with one change, put first on
``PYTHONPATH``; the fast tests run first (``-x``: the first failure kills the
mutant) and a survivor is retried against all of ``tests/mls``. Survivors that
are equivalent (no input can tell them apart) are listed with the reason in
``scripts/mutation_equivalent.txt`` (``file:line:operator  reason``); any
other survivor makes the exit status 1.

    .venv/bin/python scripts/mutate_checks.py [-j 2] [--only FILE] [--list]
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "mls"

#: The validation code: where the checks of RFC 9420 live.
FILES = [
    "group/validation.py", "group/receive.py", "group/join.py", "group/epoch.py",
    "group/base.py", "key_package.py", "leaf_node.py", "signature_key.py", "treekem.py",
    "private_message.py", "public_message.py", "secret_tree.py", "ratchet_tree.py",
    "transcript.py", "extensions.py", "message.py",
]
#: Functions whose boolean result is a security decision (file, qualified name).
VERIFIERS = [
    ("group/validation.py", "supports_required"),
    ("group/validation.py", "proposal_sender_allowed"),
    ("public_message.py", "PublicMessage.verify_membership_tag"),
    ("ratchet_tree.py", "RatchetTree.verify_parent_hashes"),
    ("ratchet_tree.py", "RatchetTree._linked"),
    ("leaf_node.py", "LeafNode.verify"),
    ("key_package.py", "KeyPackage.verify_signature"),
    ("group_info.py", "GroupInfo.verify"),
    ("framing.py", "AuthenticatedContent.verify"),
    ("crypto/ciphersuite.py", "CipherSuite.verify_with_label"),
]
FAST = ["tests/mls/test_group.py", "tests/mls/test_forged_auth.py",
        "tests/mls/test_forged_tree.py", "tests/mls/test_forged_framing.py",
        "tests/mls/test_forged_proposals.py", "tests/mls/test_forged_leaves.py"]
FULL = ["tests/mls"]
ERRORS = {"MLSError", "DecodeError", "ValidationError", "CryptoError", "SignatureError",
          "DecryptionError", "MembershipTagError", "ConfirmationTagError", "StateError",
          "EpochError", "ReplayError", "PendingCommitError", "UnsupportedError",
          "PublicKeyError"}


@dataclass(frozen=True)
class Mutant:
    file: str
    line: int
    operator: str
    source: str
    index: int  # which matching node of the file (in ast.walk order)

    @property
    def key(self) -> str:
        return f"{self.file}:{self.line}:{self.operator}"


def _raises_check(node: ast.If) -> bool:
    first = node.body[0]
    if not isinstance(first, ast.Raise) or first.exc is None:
        return False
    exc = first.exc.func if isinstance(first.exc, ast.Call) else first.exc
    return isinstance(exc, ast.Name) and exc.id in ERRORS


def _qualnames(tree: ast.Module) -> dict[ast.AST, str]:
    names: dict[ast.AST, str] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                names[child] = name
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return names


def find_mutants(only: str | None = None) -> list[Mutant]:
    out: list[Mutant] = []
    files = sorted({*FILES, *(f for f, _ in VERIFIERS)})
    for rel in files:
        if only and rel != only:
            continue
        text = (SRC / rel).read_text()
        tree = ast.parse(text)
        lines = text.splitlines()
        ifs = [n for n in ast.walk(tree) if isinstance(n, ast.If)]
        for i, node in enumerate(ifs):
            if _raises_check(node):
                src = lines[node.lineno - 1].strip()
                out.append(Mutant(rel, node.lineno, "disable", src, i))
                out.append(Mutant(rel, node.lineno, "invert", src, i))
        names = _qualnames(tree)
        funcs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
        for i, fn in enumerate(funcs):
            if (rel, names.get(fn)) in VERIFIERS:
                out.append(Mutant(rel, fn.lineno, "accept", f"def {names[fn]}", i))
    return out


def mutated_source(m: Mutant) -> str:
    tree = ast.parse((SRC / m.file).read_text())
    if m.operator == "accept":
        fn = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)][m.index]
        for node in ast.walk(fn):
            if isinstance(node, ast.Return) and node.value is not None:
                node.value = ast.Constant(True)
    else:
        node = [n for n in ast.walk(tree) if isinstance(n, ast.If)][m.index]
        node.test = (ast.Constant(False) if m.operator == "disable"
                     else ast.UnaryOp(ast.Not(), node.test))
    return ast.unparse(ast.fix_missing_locations(tree))


def run_tests(pkg_root: Path, tests: list[str], timeout: float) -> bool:
    """True when the tests pass (the mutant survives)."""
    env = {**os.environ, "PYTHONPATH": str(pkg_root), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           "-p", "no:xdist", *tests]
    try:
        r = subprocess.run(  # noqa: S603 - our interpreter, our test files
            cmd, cwd=ROOT, env=env, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False  # a hang counts as detected
    return r.returncode == 0


def check_mutant(m: Mutant, timeout: float) -> tuple[Mutant, str]:
    with tempfile.TemporaryDirectory(prefix="mls-mutant-") as tmp:
        pkg = Path(tmp) / "mls"
        shutil.copytree(SRC, pkg, ignore=shutil.ignore_patterns("__pycache__"))
        (pkg / m.file).write_text(mutated_source(m))
        if not run_tests(Path(tmp), FAST, timeout):
            return m, "killed"
        if not run_tests(Path(tmp), FULL, timeout * 4):
            return m, "killed (full)"
        return m, "survived"


def load_equivalent() -> dict[str, str]:
    path = ROOT / "scripts" / "mutation_equivalent.txt"
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, reason = line.partition(" ")
                out[key] = reason.strip()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-j", type=int, default=2, help="mutants tested at once")
    ap.add_argument("--only", help="one file, relative to src/mls")
    ap.add_argument("--operator", choices=("disable", "invert", "accept"),
                    help="only this kind of mutant")
    ap.add_argument("--list", action="store_true", help="list the mutants and stop")
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()
    mutants = [m for m in find_mutants(args.only)
               if args.operator is None or m.operator == args.operator]
    if args.list:
        for m in mutants:
            print(f"{m.key}  {m.source}")
        print(f"{len(mutants)} mutants")
        return 0
    start = time.monotonic()
    equivalent = load_equivalent()
    killed = survived = 0
    unexplained = []
    with ThreadPoolExecutor(max_workers=args.j) as pool:
        for m, verdict in pool.map(lambda x: check_mutant(x, args.timeout), mutants):
            if verdict == "survived":
                survived += 1
                reason = equivalent.get(m.key)
                print(f"SURVIVED {m.key}  {m.source}" + (f"  [equivalent: {reason}]"
                                                          if reason else ""), flush=True)
                if reason is None:
                    unexplained.append(m)
            else:
                killed += 1
                print(f"{verdict:14} {m.key}", flush=True)
    minutes = (time.monotonic() - start) / 60
    print(f"{len(mutants)} mutants, {killed} killed, {survived} survived "
          f"({survived - len(unexplained)} equivalent, {len(unexplained)} unexplained), "
          f"{minutes:.1f} min")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
