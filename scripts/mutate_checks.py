#!/usr/bin/env python3
"""Mutation testing of the validation code of ``src/mls``: every check must be
killed by a test when it is disabled or inverted.

A check is an ``if CONDITION: raise ...`` whose exception is an ``MLSError``
(or ``ValueError`` turned into one), plus the boolean verifiers listed in
``VERIFIERS``. For each check the script makes these mutants:

* ``disable``: the condition becomes ``False`` (the check is deleted);
* ``invert``: the condition becomes ``not (CONDITION)``;
* ``accept``: a verifier returns ``True`` whatever it was given.

How a mutant is tested (made for a 2-core shared machine):

1. Once per version of ``src/mls`` + ``tests/mls``, all of ``tests/mls`` runs with the
   ``scripts/mutation_trace.py`` plugin, which records the lines of ``src/mls`` each
   test executes and its duration (about a minute; cached in the temp directory,
   ``--retrace`` rebuilds it).
2. Each mutant runs only the tests that execute the mutated line, with ``-x`` (the
   first failure kills it): for a deleted check the tests that reach its ``raise``
   (the rejection tests) come first, then the others, the quickest first.
3. Only a survivor (or a mutant no test executes) is retried against all of
   ``tests/mls``.

Mutants are written into a scratch copy of a snapshot of ``src/mls`` taken at the
start (put first on ``PYTHONPATH``; the tests run from the worktree, so do not edit
``src/mls`` or ``tests/mls`` during a run); the worktree is never written, and an
interrupted run (Ctrl-C, SIGTERM, SIGHUP) kills its pytest processes and removes
its temp directories. ``-j auto`` (the default) runs 2 mutants at a time when the
1-minute load average is below 1, else 1; never more than 2. A pytest run that
exceeds ``--timeout`` plus 10 times its tests' own duration counts as killed
(the mutant hangs).

Survivors that are equivalent (no input reaches them or tells them apart) are
listed with the reason in ``scripts/mutation_equivalent.txt``
(``file:line:operator  reason``); any other survivor makes the exit status 1.

    .venv/bin/python scripts/mutate_checks.py                 # all mutants
    .venv/bin/python scripts/mutate_checks.py --only group/validation.py --operator disable
    .venv/bin/python scripts/mutate_checks.py --key group/join.py:106:disable
    .venv/bin/python scripts/mutate_checks.py --list          # what would be mutated

Last full run: 286 mutants, 268 killed, 18 survivors (all in
mutation_equivalent.txt), 16.3 min with -j 2 at a load average of about 10 on two
cores (the trace included).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import importlib
import json
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "mls"

#: The validation code: where the checks of RFC 9420 live.
FILES = [
    "group/validation.py", "group/receive.py", "group/join.py", "group/epoch.py",
    "group/base.py", "key_package.py", "leaf_node.py", "signature_key.py", "treekem.py",
    "private_message.py", "public_message.py", "secret_tree.py", "ratchet_tree.py",
    "transcript.py", "extensions.py", "message.py", "group/external.py",
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
    ("private_message.py", "OpenedContent.verify"),
    ("crypto/ciphersuite.py", "CipherSuite.verify_with_label"),
]
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
    raise_line: int  # the check's raise (disable/invert); the def line (accept)
    end: int  # last line of the mutated node

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
                for op in ("disable", "invert"):
                    out.append(Mutant(rel, node.lineno, op, src, i, node.body[0].lineno,
                                      node.end_lineno or node.lineno))
        names = _qualnames(tree)
        funcs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
        for i, fn in enumerate(funcs):
            if (rel, names.get(fn)) in VERIFIERS:
                out.append(Mutant(rel, fn.lineno, "accept", f"def {names[fn]}", i, fn.lineno,
                                  fn.end_lineno or fn.lineno))
    return out


def mutated_source(base: Path, m: Mutant) -> str:
    tree = ast.parse((base / m.file).read_text())
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


def _digest(root: Path, pattern: str = "*.py") -> str:
    h = hashlib.sha256()
    for f in sorted(root.rglob(pattern)):
        if "__pycache__" not in f.parts:
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def _env(pkg_root: Path) -> dict[str, str]:
    # The mutant package first, then the worktree's other packages (corecrypto, ...).
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(pkg_root), str(ROOT / "src")]),
            "PYTHONDONTWRITEBYTECODE": "1"}


_RUNNING: set[subprocess.Popen[Any]] = set()
_LOCK = threading.Lock()


def run_tests(pkg_root: Path, tests: list[str], timeout: float,
              extra_env: dict[str, str] | None = None, fail_fast: bool = True
              ) -> tuple[str, str]:
    """Run pytest on ``tests`` against the package under ``pkg_root``: ("passed", "")
    when the mutant survives them, else ("failed" or "timeout", the first failing test)."""
    cmd = [sys.executable, "-m", "pytest", *PYTEST_ARGS, *(["-x"] if fail_fast else []),
           *tests]
    proc = subprocess.Popen(  # noqa: S603 - our interpreter, our test files
        cmd, cwd=ROOT, env={**_env(pkg_root), **(extra_env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    with _LOCK:
        _RUNNING.add(proc)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        return "timeout", ""  # a hang counts as detected
    finally:
        with _LOCK:
            _RUNNING.discard(proc)
    if proc.returncode == 0:
        return "passed", ""
    return "failed", _first_failure(out.decode(errors="replace"))


def _kill(proc: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# -- a pytest fork server per worker ---------------------------------------------------------
#: Imported once by each server, so a mutant's pytest run skips their start-up (never mls).
PRELOAD = ["pytest", "_pytest.python", "_pytest.assertion.rewrite", "hypothesis",
           "pytest_asyncio", "anyio", "cryptography.hazmat.primitives.asymmetric.ec",
           "cryptography.hazmat.primitives.asymmetric.ed25519",
           "cryptography.hazmat.primitives.ciphers.aead", "cryptography.hazmat.primitives.hmac"]
PYTEST_ARGS = ["-q", "-p", "no:cacheprovider", "-p", "no:xdist"]


def serve() -> int:
    """``--serve``: preload pytest and the test dependencies, then for each request (one
    JSON line on stdin: pkg_root, args, timeout) run pytest in a forked child with the
    mutant package first on ``sys.path``, and answer one JSON line (status, output).
    A fresh interpreter per mutant costs about 1.5 s of CPU before the first test; a
    fork of this one about a third of that."""
    import pytest  # noqa: PLC0415 - only the server needs it

    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    os.chdir(ROOT)
    for line in sys.stdin:
        req = json.loads(line)
        out_path = Path(req["pkg_root"]) / "pytest.out"
        pid = os.fork()
        if pid == 0:  # the child: one pytest run, then exit without cleanup handlers
            code = 3
            try:
                sys.path[:0] = [req["pkg_root"], str(ROOT / "src")]
                fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                code = int(pytest.main(req["args"]))
            finally:
                os._exit(code)
        pidfd = os.pidfd_open(pid)
        ready, _, _ = select.select([pidfd], [], [], req["timeout"])
        if not ready:
            os.kill(pid, signal.SIGKILL)
        _, wstatus = os.waitpid(pid, 0)
        os.close(pidfd)
        rc = os.waitstatus_to_exitcode(wstatus)
        status = "timeout" if not ready else "passed" if rc == 0 else "failed"
        output = out_path.read_text(errors="replace") if out_path.exists() else ""
        print(json.dumps({"status": status, "output": output[-20000:]}), flush=True)
    return 0


class Server:
    """A ``--serve`` process (its own session: killing its group kills its children)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our interpreter, this script
            [sys.executable, __file__, "--serve"], cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONDONTWRITEBYTECODE": "1"},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        with _LOCK:
            _RUNNING.add(self.proc)

    def run(self, pkg_root: Path, tests: list[str], timeout: float) -> tuple[str, str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        req = {"pkg_root": str(pkg_root), "args": [*PYTEST_ARGS, "-x", *tests],
               "timeout": timeout}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        if not reply:
            raise RuntimeError("the pytest fork server died")
        data = json.loads(reply)
        return data["status"], _first_failure(data["output"])

    def close(self) -> None:
        with _LOCK:
            _RUNNING.discard(self.proc)
        _kill(self.proc)


def _first_failure(output: str) -> str:
    return next((ln.split(" - ")[0].split(" ", 1)[1] for ln in output.splitlines()
                 if ln.startswith(("FAILED ", "ERROR "))), "")


# -- which tests can kill a mutant -------------------------------------------------------------
@dataclass
class Trace:
    """Per test: its duration and the lines of src/mls it executes (scripts/mutation_trace.py)."""

    durations: dict[str, float]
    lines: dict[str, dict[str, frozenset[int]]]  # test -> file -> lines

    def covering(self, file: str, lines: range) -> list[str]:
        return [t for t, files in self.lines.items()
                if not files.get(file, frozenset()).isdisjoint(lines)]

    def plan(self, m: Mutant) -> list[str]:
        """The tests that execute the mutated code, quickest first; for a deleted check,
        those that reach its ``raise`` (the rejection tests) before the others."""
        cover = self.covering(m.file, range(m.line, m.end + 1) if m.operator == "accept"
                              else range(m.line, m.line + 1))
        first = set(self.covering(m.file, range(m.raise_line, m.raise_line + 1))
                    if m.operator == "disable" else cover)
        return sorted(cover, key=lambda t: (t not in first, self.durations[t]))


def load_trace(base: Path, rebuild: bool) -> Trace:
    """The trace map of the unmutated sources, built once per version of src/mls and
    tests/mls (about a minute) and kept in the temp directory."""
    key = _digest(base) + _digest(ROOT / "tests" / "mls")
    path = Path(tempfile.gettempdir()) / f"mls-mutation-trace-{key}.json"
    if rebuild or not path.exists():
        print("tracing which tests run which lines of src/mls ...", flush=True)
        tmp = path.with_suffix(".part")
        status, first = run_tests(base.parent, ["-p", "mutation_trace", *FULL], 1800.0, {
            "MUTATION_TRACE_SRC": str(base), "MUTATION_TRACE_OUT": str(tmp),
            "PYTHONPATH": os.pathsep.join([str(base.parent), str(ROOT / "src"),
                                           str(ROOT / "scripts")]),
        }, fail_fast=False)
        if status != "passed":
            sys.exit(f"the unmutated tests do not pass ({status} {first}): fix them first")
        text = tmp.read_text()
        tmp.unlink()
        path.write_text(text)
    data = json.loads(path.read_text())["tests"]
    return Trace({t: v["duration"] for t, v in data.items()},
                 {t: {f: frozenset(ls) for f, ls in v["lines"].items()}
                  for t, v in data.items()})


def check_mutant(m: Mutant, base: Path, trace: Trace, timeout: float,
                 servers: queue.Queue[Server]) -> tuple[str, str]:
    """(verdict, killer): run the covering tests (-x), then all of tests/mls for a survivor."""
    with tempfile.TemporaryDirectory(prefix="mls-mutant-") as tmp:
        pkg = Path(tmp) / "mls"
        shutil.copytree(base, pkg)
        (pkg / m.file).write_text(mutated_source(base, m))
        tests = trace.plan(m)
        if tests:
            budget = timeout + 10 * sum(trace.durations[t] for t in tests)
            status, killer = _serve(servers, Path(tmp), tests, budget)
            if status != "passed":
                return ("killed" if status == "failed" else "timeout"), killer
        budget = timeout + 10 * sum(trace.durations.values())
        status, killer = _serve(servers, Path(tmp), FULL, budget)
        if status != "passed":
            return ("killed (full)" if status == "failed" else "timeout"), killer
        return ("survived" if tests else "uncovered"), ""


def _serve(servers: queue.Queue[Server], pkg_root: Path, tests: list[str], timeout: float
           ) -> tuple[str, str]:
    server = servers.get()
    try:
        return server.run(pkg_root, tests, timeout)
    except (RuntimeError, OSError, ValueError):
        server.close()  # a broken server is replaced; this run goes through a fresh pytest
        server = Server()
        return run_tests(pkg_root, tests, timeout)
    finally:
        servers.put(server)


def load_resume(path: str) -> dict[str, tuple[str, str]]:
    """The kills in the output of an earlier run over the same ``src/mls`` (``--resume``);
    its survivors are tested again (tests may have been added since)."""
    out: dict[str, tuple[str, str]] = {}
    for line in Path(path).read_text().splitlines():
        if line[:14].strip() in ("killed", "killed (full)", "timeout") and len(line) > 15:
            key, _, killer = line[15:].partition("  ")
            out[key.strip()] = (line[:14].strip(), killer.strip())
    return out


def load_equivalent() -> dict[str, str]:
    path = ROOT / "scripts" / "mutation_equivalent.txt"
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, reason = line.partition(" ")
                out[key] = reason.strip()
    return out


def _workers(requested: str) -> int:
    """At most 2 (the machine has two shared cores); 1 when it is already busy."""
    if requested == "auto":
        return 1 if os.getloadavg()[0] >= 1.0 else 2
    return max(1, min(2, int(requested)))


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("-j", default="auto", help="mutants at once: 1, 2 or auto (default: "
                    "2 when the 1-minute load average is below 1, else 1)")
    ap.add_argument("--only", help="one file, relative to src/mls")
    ap.add_argument("--operator", choices=("disable", "invert", "accept"),
                    help="only this kind of mutant")
    ap.add_argument("--key", action="append", help="only this mutant (file:line:operator)")
    ap.add_argument("--slice", default="", metavar="START:STOP",
                    help="only mutants START..STOP-1 of the list (to split a run)")
    ap.add_argument("--list", action="store_true", help="list the mutants and stop")
    ap.add_argument("--retrace", action="store_true", help="rebuild the test/line map")
    ap.add_argument("--resume", metavar="LOG", help="reuse the verdicts in the output of an "
                    "interrupted run over the same sources")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds per pytest run, plus 10 times the tests' own duration")
    args = ap.parse_args()
    if args.serve:
        return serve()
    mutants = [m for m in find_mutants(args.only)
               if (args.operator is None or m.operator == args.operator)
               and (not args.key or m.key in args.key)]
    if args.slice:
        lo, _, hi = args.slice.partition(":")
        mutants = mutants[int(lo or 0):int(hi) if hi else None]
    if args.list:
        for m in mutants:
            print(f"{m.key}  {m.source}")
        print(f"{len(mutants)} mutants")
        return 0
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGHUP, _interrupted)
    start = time.monotonic()
    equivalent = load_equivalent()
    counts: dict[str, int] = {}
    unexplained: list[Mutant] = []
    worktree = _digest(SRC) + _digest(ROOT / "tests" / "mls")
    # Mutants are made from a snapshot: editing src/mls during a run changes nothing,
    # and the worktree is never written (an interrupted run leaves nothing behind).
    with tempfile.TemporaryDirectory(prefix="mls-mutation-base-") as snap:
        base = Path(snap) / "mls"
        shutil.copytree(SRC, base, ignore=shutil.ignore_patterns("__pycache__"))
        trace = load_trace(base, args.retrace)
        jobs = _workers(args.j)
        print(f"{len(mutants)} mutants, {jobs} at a time, source {_digest(base)}", flush=True)
        done = load_resume(args.resume) if args.resume else {}
        servers: queue.Queue[Server] = queue.Queue()
        for _ in range(jobs):
            servers.put(Server())

        def one(m: Mutant) -> tuple[Mutant, str, str]:
            if m.key in done:
                return (m, *done[m.key])
            return (m, *check_mutant(m, base, trace, args.timeout, servers))

        pool = ThreadPoolExecutor(max_workers=jobs)
        try:
            results = pool.map(one, mutants)
            for m, verdict, killer in results:
                counts[verdict] = counts.get(verdict, 0) + 1
                if verdict in ("survived", "uncovered"):
                    reason = equivalent.get(m.key)
                    print(f"SURVIVED {m.key}  {m.source}  ({verdict})" +
                          (f"  [equivalent: {reason}]" if reason else ""), flush=True)
                    if reason is None:
                        unexplained.append(m)
                else:
                    print(f"{verdict:14} {m.key}  {killer}", flush=True)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            with _LOCK:
                for proc in list(_RUNNING):
                    _kill(proc)
            print("interrupted", flush=True)
            return 130
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            while not servers.empty():
                servers.get().close()
            if _digest(SRC) + _digest(ROOT / "tests" / "mls") != worktree:
                # The tests run from the worktree: one that needs a newer src/mls than the
                # snapshot fails for every mutant. Rerun (--resume keeps the kills).
                print("WARNING: src/mls or tests/mls changed during the run: verdicts may be "
                      "stale; run again", flush=True)
    survived = counts.get("survived", 0) + counts.get("uncovered", 0)
    killed = len(mutants) - survived if sum(counts.values()) == len(mutants) else 0
    minutes = (time.monotonic() - start) / 60
    print(f"{len(mutants)} mutants, {killed} killed "
          f"({counts.get('timeout', 0)} by timeout, {counts.get('killed (full)', 0)} only by "
          f"the full tests/mls), {survived} survived ({survived - len(unexplained)} "
          f"equivalent, {len(unexplained)} unexplained), {minutes:.1f} min")
    return 1 if unexplained else 0


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
