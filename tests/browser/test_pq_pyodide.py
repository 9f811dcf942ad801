"""The post-quantum known-answer checks through the Pyodide provider (Pyodide under
Node; ML-KEM from @noble/post-quantum): the same vectors and checks as
``tests/mls/test_pq_kem.py`` runs on CPython (``tests/mls/pq_kat.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mls.crypto.ciphersuite import PQ_SUITES
from mls.vectors.pyodide_runtime import run_python

from ..mls import pq_group, pq_kat


def _run_in_pyodide(module: Any, calls: str, files: list[Path]) -> Any:
    source = Path(module.__file__).read_text(encoding="utf-8")
    # Run as the module it is (pq_kat's __file__ locates the OpenMLS vectors).
    code = (
        f"__file__ = {str(Path(module.__file__))!r}\n"
        f"exec(compile({source!r}, __file__, 'exec'))\n"
        "from mls.crypto import default_provider\n"
        "provider = default_provider()\n"
        "assert provider.name == 'pyodide-js', provider.name\n"
        f"{calls}\n"
    )
    proc = run_python(code, [str(f) for f in files], capture=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_pq_known_answers_in_pyodide() -> None:
    paths = pq_kat.vector_paths()
    files = [paths["mlkem768"], paths["mlkem1024"], paths["hpke_pq"], pq_kat.OPENMLS_VECTORS]
    calls = (
        "import json\n"
        "from mls.crypto import KemAlg\n"
        "out = {\n"
        f"  'mlkem768': check_mlkem(provider, KemAlg.MLKEM768, Path({str(files[0])!r})),\n"
        f"  'mlkem1024': check_mlkem(provider, KemAlg.MLKEM1024, Path({str(files[1])!r})),\n"
        f"  'hpke_pq': check_hpke_pq(provider, Path({str(files[2])!r})),\n"
        "  'openmls': check_openmls(provider),\n"
        "}\n"
        "print(json.dumps(out))"
    )
    got = _run_in_pyodide(pq_kat, calls, files)
    assert got["mlkem768"] == [1000, []]
    assert got["mlkem1024"] == [1000, []]
    assert got["hpke_pq"] == [3, []]
    assert got["openmls"] == [12, []]


def test_pq_group_life_in_pyodide() -> None:
    """Every post-quantum suite: create, Welcome, updates, remove, external commit,
    messages and a restart, all under the Pyodide provider."""
    suites = sorted(PQ_SUITES)
    calls = (
        "import json\n"
        f"print(json.dumps([run_scenario(provider, s) for s in {suites!r}]))"
    )
    got = _run_in_pyodide(pq_group, calls, [])
    assert [r["suite"] for r in got] == suites
    assert all(r["members"] == 4 for r in got)
