"""Tree math vectors (RFC 9420 Appendix C)."""

from __future__ import annotations

from .. import tree_math as tm
from ..crypto import CryptoProvider
from .registry import Case
from .util import expect


def _opt(fn: object, *args: int) -> int | None:
    try:
        return fn(*args)  # type: ignore[operator, no-any-return]
    except ValueError:
        return None


def check(case: Case, provider: CryptoProvider) -> None:
    n = case["n_leaves"]
    width = tm.node_width(n)
    expect("n_nodes", width, case["n_nodes"])
    expect("root", tm.root(n), case["root"])
    for i in range(width):
        expect(f"left[{i}]", _opt(tm.left, i), case["left"][i])
        expect(f"right[{i}]", _opt(tm.right, i), case["right"][i])
        expect(f"parent[{i}]", _opt(tm.parent, i, n), case["parent"][i])
        expect(f"sibling[{i}]", _opt(tm.sibling, i, n), case["sibling"][i])
