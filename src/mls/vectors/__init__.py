"""Runner for the MLS working group's test vectors (mlswg/mls-implementations).

``python -m mls.vectors FILE...`` verifies every case of every file and prints
one line per failing case, then ``N passed, M failed``. The vector type comes
from the file name as spelled in ``test-vectors.md`` (``tree-math.json``,
``passive-client-welcome.json``, ...) or from ``--type``.

Each checker module exposes ``check(case, provider)``; it computes the values
the format describes and raises :class:`VectorMismatch` naming the first field
that differs. Nothing is skipped: an unknown cipher suite is a failure.
"""

from __future__ import annotations

from .registry import TYPES, VectorMismatch, run_case, type_for_path

__all__ = ["TYPES", "VectorMismatch", "run_case", "type_for_path"]
