"""Vector types and their checkers."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from ..crypto import CryptoProvider

Case = dict[str, Any]
Checker = Callable[[Case, CryptoProvider], None]


class VectorMismatch(Exception):
    """A computed value differs from the vector's."""


#: Vector type (as named in test-vectors.md) -> module implementing ``check``.
TYPES: dict[str, str] = {
    "tree-math": "tree_math",
    "crypto-basics": "crypto_basics",
    "secret-tree": "secret_tree",
    "message-protection": "message_protection",
    "key-schedule": "key_schedule",
    "psk_secret": "psk_secret",
    "transcript-hashes": "transcript_hashes",
    "welcome": "welcome",
    "tree-operations": "tree_operations",
    "tree-validation": "tree_validation",
    "treekem": "treekem",
    "messages": "messages",
    "deserialization": "deserialization",
    "passive-client-welcome": "passive_client",
    "passive-client-handling-commit": "passive_client",
    "passive-client-random": "passive_client",
}

_ALIASES = {t.replace("_", "-"): t for t in TYPES} | {t.replace("-", "_"): t for t in TYPES}


def type_for_path(path: str) -> str | None:
    """The vector type named by a file name, or ``None``."""
    stem = PurePath(path).name
    for suffix in (".json.gz", ".json"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return _ALIASES.get(stem)


def normalize_type(name: str) -> str | None:
    return _ALIASES.get(name)


def checker(vector_type: str) -> Checker:
    module = importlib.import_module(f"{__package__}.{TYPES[vector_type]}")
    fn: Checker = module.check
    return fn


def run_case(vector_type: str, case: Case, provider: CryptoProvider) -> None:
    """Run one case; raises :class:`VectorMismatch` (or an MLS error) on failure."""
    checker(vector_type)(case, provider)
