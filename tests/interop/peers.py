"""The interop peers as real processes: this library (``python -m mls.interop
serve``), OpenMLS (``interop/openmls``, built once per machine into
``~/.cache/intellacc-interop``) and ts-mls (``interop/ts-mls``, node).

Each peer is started on port 0 and tells its port on its first stdout line;
:func:`start` waits for that line (never a fixed sleep) and the fixture kills
the process by its pid afterwards.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from mls.interop.runner import GrpcEndpoint

ROOT = Path(__file__).resolve().parents[2]
INTEROP = ROOT / "interop"
CONFIGS = INTEROP / "configs"
START_TIMEOUT = 120.0
BUILD_TIMEOUT = 40 * 60.0


def openmls_binary(provider: str = "rust-crypto") -> Path:
    """The OpenMLS peer binary with ``provider`` (``rust-crypto`` or ``libcrux``, which
    has the hybrid post-quantum suites); the first call on a machine builds it."""
    out = subprocess.run([str(INTEROP / "openmls" / "build.sh"), provider], check=True,
                         capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    return Path(out.stdout.strip().splitlines()[-1])


def tsmls_dir() -> Path:
    """interop/ts-mls with its pinned npm packages (bootstrap installs them)."""
    d = INTEROP / "ts-mls"
    if not (d / "node_modules" / "ts-mls").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=d,
                       check=True, timeout=600)
    return d


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        lines.put(proc.stdout.readline())

    threading.Thread(target=read, daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        raise TimeoutError(f"{proc.args} did not report its port in {timeout}s") from None


@contextmanager
def start(label: str, argv: Sequence[str], cwd: Path = ROOT) -> Iterator[GrpcEndpoint]:
    """Run one MLSClient peer and yield an endpoint connected to it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([*argv, "--port", "0"], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    endpoint = None
    try:
        line = _first_line(proc, START_TIMEOUT)
        if not line.startswith("listening on "):
            raise RuntimeError(f"{label} peer failed to start (exit {proc.poll()}): {line!r}")
        endpoint = GrpcEndpoint(line.split()[-1], label=label)
        yield endpoint
    finally:
        if endpoint is not None:
            endpoint.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def python_peer(label: str = "python") -> AbstractContextManager[GrpcEndpoint]:
    return start(label, [sys.executable, "-m", "mls.interop", "serve"])


def openmls_peer(provider: str = "rust-crypto") -> AbstractContextManager[GrpcEndpoint]:
    # One label for both providers: the same OpenMLS, so the same known defects.
    return start("openmls", [str(openmls_binary(provider))])


def tsmls_peer(workarounds: bool = True) -> AbstractContextManager[GrpcEndpoint]:
    d = tsmls_dir()
    extra = [] if workarounds else ["--no-workarounds"]
    return start("ts-mls", ["node", str(d / "peer.mjs"), *extra], cwd=d)
