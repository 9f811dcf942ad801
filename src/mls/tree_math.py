"""Array-based left-balanced binary tree arithmetic (RFC 9420 §4.2, Appendix C).

Nodes are numbered in-order: leaves at even indices (leaf ``i`` is node
``2i``), parents at odd ones. The tree always has ``2**k`` leaves for some
``k``; ``n`` below is a number of leaves.
"""

from __future__ import annotations


def log2(x: int) -> int:
    return x.bit_length() - 1 if x > 0 else 0


def level(x: int) -> int:
    """Height of node ``x`` above the leaves (number of trailing 1 bits)."""
    # The lowest 0 bit of x is the lowest 1 bit of ~x & (x + 1).
    return (~x & (x + 1)).bit_length() - 1


def node_width(n: int) -> int:
    """Number of nodes in a tree with ``n`` leaves."""
    return 0 if n == 0 else 2 * (n - 1) + 1


def root(n: int) -> int:
    # (1 << log2(node_width(n))) - 1, without the calls: this runs for every path.
    return (1 << ((2 * n - 1).bit_length() - 1)) - 1 if n > 0 else 0


def left(x: int) -> int:
    k = level(x)
    if k == 0:
        raise ValueError("leaf node has no children")
    return x ^ (0x01 << (k - 1))


def right(x: int) -> int:
    k = level(x)
    if k == 0:
        raise ValueError("leaf node has no children")
    return x ^ (0x03 << (k - 1))


def parent(x: int, n: int) -> int:
    if x == root(n):
        raise ValueError("root node has no parent")
    k = level(x)
    b = (x >> (k + 1)) & 0x01
    return (x | (1 << k)) ^ (b << (k + 1))


def sibling(x: int, n: int) -> int:
    p = parent(x, n)
    return right(p) if x < p else left(p)


def is_leaf(x: int) -> bool:
    return x & 1 == 0


def leaf_to_node(leaf: int) -> int:
    return 2 * leaf


def node_to_leaf(x: int) -> int:
    return x >> 1


def direct_path(x: int, n: int) -> list[int]:
    """Parents of ``x`` up to and including the root (RFC 9420 §4.1)."""
    r = (1 << ((2 * n - 1).bit_length() - 1)) - 1 if n > 0 else 0  # root(n)
    d: list[int] = []
    # parent() and level() inlined: this runs for every tree edit and path.
    k = (~x & (x + 1)).bit_length() - 1
    while x != r:
        x = (x | (1 << k)) ^ (((x >> (k + 1)) & 1) << (k + 1))
        k += 1
        d.append(x)
    return d


def copath(x: int, n: int) -> list[int]:
    """Siblings of ``x`` and of its ancestors below the root."""
    r = (1 << ((2 * n - 1).bit_length() - 1)) - 1 if n > 0 else 0  # root(n)
    d: list[int] = []
    k = (~x & (x + 1)).bit_length() - 1  # level(x)
    while x != r:
        # The sibling of a node at level k differs from it in bit k + 1.
        d.append(x ^ (1 << (k + 1)))
        x = (x | (1 << k)) ^ (((x >> (k + 1)) & 1) << (k + 1))
        k += 1
    return d


def is_in_subtree(x: int, y: int) -> bool:
    """True when ``y`` lies in the subtree rooted at ``x``."""
    k = level(x)
    return (x >> (k + 1)) == (y >> (k + 1))


def common_ancestor(x: int, y: int) -> int:
    """Lowest common ancestor of two nodes (RFC 9420 Appendix C)."""
    if level(x) == 0 and x == y:
        return x
    xn, yn = x, y
    k = 0
    while xn != yn:
        xn >>= 1
        yn >>= 1
        k += 1
    return (xn << k) + (1 << (k - 1)) - 1


def leaves_of(x: int) -> range:
    """Leaf indices under node ``x``."""
    k = level(x)
    first = x - ((1 << k) - 1)  # leftmost node of the subtree, always a leaf
    return range(first // 2, first // 2 + (1 << k))
