"""``scripts/mutation_equivalent.txt`` names each equivalent mutant by
``file:line:operator``: an entry left behind when its check moves would excuse
nothing and fail the next mutation run (``scripts/mutate_checks.py``). Checked
here, in the test command, instead of 10 minutes later."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _mutate_checks() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "mutate_checks", ROOT / "scripts" / "mutate_checks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("mutate_checks", module)
    spec.loader.exec_module(module)
    return module


def test_every_equivalent_entry_names_a_current_mutant() -> None:
    mc = _mutate_checks()
    mutants = {m.key: m for m in mc.find_mutants()}
    equivalent = mc.load_equivalent()
    assert equivalent, "the list of equivalent mutants is empty or missing"
    stale = sorted(k for k in equivalent if k not in mutants)
    assert not stale, f"entries that name no check (did it move?): {stale}"
    for key, reason in equivalent.items():
        assert reason, f"{key}: an equivalent mutant needs its reason"
