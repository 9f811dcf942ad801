"""Runs the MLS working group's scenario files against ``MLSClient`` endpoints.

Every script runs in every cipher suite that all endpoints of the run
support, with handshake messages public and private, and with each
assignment of endpoints to actors that the chosen mode yields:

* ``rotate`` (default): actor *i* (in order of first appearance) is played by
  endpoint ``(i + r) mod k`` for every rotation ``r``. With two endpoints that
  is both directions: A creates and B joins, then B creates and A joins, and
  later actors alternate, so every kind of message crosses both ways.
* ``all``: every assignment (k^actors runs; for small scripts).
* ``random``: one seeded random assignment per suite and mode.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import proto
from .scenario import RPC_TIMEOUT, Endpoint, Run, StepError, script_actors


class GrpcEndpoint:
    """An ``MLSClient`` reached over gRPC."""

    def __init__(self, address: str, connect_timeout: float = 60.0,
                 label: str | None = None) -> None:
        """``address`` is ``HOST:PORT``; ``label`` names the endpoint in results
        (default: the name the endpoint reports)."""
        import grpc

        self.address = address
        self.pb, services = proto.load()
        self._rpc_error = grpc.RpcError
        self._channel = grpc.insecure_channel(address)
        grpc.channel_ready_future(self._channel).result(timeout=connect_timeout)
        self._stub = services.MLSClientStub(self._channel)
        self.name: str = label or self.call("Name").name
        self.suites = frozenset(self.call("SupportedCiphersuites").ciphersuites)

    def call(self, rpc: str, **fields: Any) -> Any:
        request_type = {
            "Name": "NameRequest", "SupportedCiphersuites": "SupportedCiphersuitesRequest",
            "AddProposal": "AddProposalRequest", "Commit": "CommitRequest",
            "ReInitCommit": "CommitRequest", "HandleCommit": "HandleCommitRequest",
            "HandleReInitCommit": "HandleCommitRequest",
            "HandlePendingCommit": "HandlePendingCommitRequest",
            "HandlePendingReInitCommit": "HandlePendingCommitRequest",
        }.get(rpc, f"{rpc}Request")
        msg = getattr(self.pb, request_type)(**fields)
        try:
            return getattr(self._stub, rpc)(msg, timeout=RPC_TIMEOUT)
        except self._rpc_error as e:
            raise StepError(f"{e.code().name}: {e.details()}") from e

    def close(self) -> None:
        self._channel.close()


@dataclass(frozen=True)
class Script:
    file: str  # the config's stem, e.g. "commit"
    name: str  # the script's key, e.g. "add"
    steps: tuple[Mapping[str, Any], ...]

    @property
    def id(self) -> str:
        return f"{self.file}/{self.name}"


def endpoint(spec: str) -> GrpcEndpoint:
    """An endpoint from ``HOST:PORT`` or ``LABEL=HOST:PORT``."""
    label, _, address = spec.rpartition("=")
    return GrpcEndpoint(address, label=label or None)


def load_scripts(paths: Sequence[Path], only: Sequence[str] = (),
                 max_steps: int | None = None) -> list[Script]:
    """Scripts of the config files; ``only`` keeps ``file`` or ``file/name``
    entries; ``max_steps`` cuts long scripts (``deep_random``) to a prefix."""
    out = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        for name, steps in data["scripts"].items():
            s = Script(Path(path).stem, name, tuple(steps[:max_steps] if max_steps else steps))
            if not only or s.file in only or s.id in only:
                out.append(s)
    return out


@dataclass
class Result:
    script: str
    suite: int
    encrypt: bool
    actors: dict[str, str]
    ok: bool
    seconds: float
    rpcs: int
    failed_step: int | None = None
    failed_action: str | None = None
    endpoint: str | None = None  # the endpoint whose RPC failed, if one did
    rpc: str | None = None
    error: str | None = None

    @property
    def pairing(self) -> str:
        """Endpoint names in order of the actors, e.g. ``python>openmls`` for
        the creator on python and the next actor on openmls."""
        names = list(dict.fromkeys(self.actors.values()))
        return ">".join(names)


@dataclass
class Matrix:
    endpoints: Sequence[Endpoint]
    suites: Sequence[int] | None = None  # None: every suite some endpoint supports
    handshakes: Sequence[bool] = (False, True)  # encrypt_handshake values
    mode: str = "rotate"
    seed: int = 0
    results: list[Result] = field(default_factory=list)

    def assignments(self, actors: list[str], eps: Sequence[Endpoint],
                    rng: random.Random) -> Iterator[dict[str, Endpoint]]:
        k = len(eps)
        if self.mode == "all":
            for combo in itertools.product(range(k), repeat=len(actors)):
                yield {a: eps[c] for a, c in zip(actors, combo, strict=True)}
        elif self.mode == "random":
            yield {a: eps[rng.randrange(k)] for a in actors}
        else:
            for r in range(k):
                yield {a: eps[(i + r) % k] for i, a in enumerate(actors)}

    def run_script(self, script: Script) -> list[Result]:
        rng = random.Random(f"{self.seed}/{script.id}")  # noqa: S311 - picks roles, not keys
        actors = script_actors(script.steps)
        all_suites = sorted(set().union(*(ep.suites for ep in self.endpoints)))
        out = []
        for suite in self.suites or all_suites:
            eps = [ep for ep in self.endpoints if suite in ep.suites]
            if not eps or (len(self.endpoints) > 1 and len(eps) < 2):
                continue  # a pairing is only tested in the suites both sides have
            for encrypt in self.handshakes:
                for clients in self.assignments(actors, eps, rng):
                    out.append(run_once(script, suite, encrypt, clients))
        self.results.extend(out)
        return out


def run_once(script: Script, suite: int, encrypt: bool,
             clients: Mapping[str, Endpoint]) -> Result:
    run = Run(suite, encrypt, clients)
    start = time.monotonic()
    names = {a: ep.name for a, ep in clients.items()}
    for i, step in enumerate(script.steps):
        try:
            run.step(i, step)
        except StepError as e:
            return Result(script.id, suite, encrypt, names, False, time.monotonic() - start,
                          run.rpcs, i, str(step.get("action")), e.endpoint or None,
                          e.rpc or None, str(e))
    return Result(script.id, suite, encrypt, names, True, time.monotonic() - start, run.rpcs)


def summary(results: Sequence[Result]) -> str:
    """One line per script x pairing: passed/total per suite, and failures."""
    lines = []
    keyed: dict[tuple[str, str], dict[int, list[Result]]] = {}
    for r in results:
        keyed.setdefault((r.script, r.pairing), {}).setdefault(r.suite, []).append(r)
    for (script, pairing), by_suite in sorted(keyed.items()):
        cells = " ".join(f"s{s}:{sum(x.ok for x in rs)}/{len(rs)}"
                         for s, rs in sorted(by_suite.items()))
        lines.append(f"{script:45} {pairing:30} {cells}")
        for rs in by_suite.values():
            for x in rs:
                if not x.ok:
                    hs = "private" if x.encrypt else "public"
                    lines.append(f"    FAIL suite {x.suite} {hs} step {x.failed_step} "
                                 f"({x.failed_action}): {x.error}")
    passed = sum(r.ok for r in results)
    lines.append(f"{passed} passed, {len(results) - passed} failed")
    return "\n".join(lines)


def to_json(results: Sequence[Result]) -> str:
    return json.dumps([asdict(r) for r in results], indent=1)
