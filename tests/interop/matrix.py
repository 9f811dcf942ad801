"""What the interop tests run, and where (see README "Interop").

The default tier keeps the whole test suite within its time budget on two
busy cores; ``INTEROP_FULL=1`` runs everything (every suite with both
handshake modes, and deep_random to its last step).

| pairing          | suites | handshakes                 | deep_random           |
| ---------------- | ------ | -------------------------- | --------------------- |
| Python x Python  | 1-7    | public + private           | first 300 steps, s1   |
| Python x OpenMLS | 1-3    | public + private           | first 400 steps, s1   |
| Python x OpenMLS | 0x004D-0x004F (libcrux build) | public + private | -          |
| Python x ts-mls  | 1-7    | s1 both; s2-7 public only  | first 400 steps, s1   |

Every script runs in both directions (the runner's ``rotate`` mode).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from mls.interop.runner import Matrix, Result, load_scripts
from mls.interop.scenario import Endpoint

from .peers import CONFIGS

FULL = os.environ.get("INTEROP_FULL") == "1"
BOTH = (False, True)
PUBLIC = (False,)


def run(endpoints: Sequence[Endpoint], suites: Sequence[int], handshakes: Sequence[bool],
        deep_random_steps: int | None = None) -> list[Result]:
    """Every script but deep_random; deep_random alone when ``deep_random_steps`` is set."""
    files = sorted(CONFIGS.glob("*.json"))
    if deep_random_steps is None:
        scripts = [s for s in load_scripts(files) if s.file != "deep_random"]
    else:
        scripts = load_scripts(files, ["deep_random"], None if FULL else deep_random_steps)
    matrix = Matrix(endpoints, suites, handshakes)
    for script in scripts:
        matrix.run_script(script)
    assert matrix.results, "nothing ran"
    return matrix.results
