"""Small helpers shared by the vector checkers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import MLSError
from .registry import VectorMismatch


def h(value: Any) -> bytes:
    """Hex field -> bytes."""
    if not isinstance(value, str):
        raise VectorMismatch(f"expected a hex string, got {type(value).__name__}")
    try:
        return bytes.fromhex(value)
    except ValueError as e:
        raise VectorMismatch(f"invalid hex: {e}") from None


def expect(name: str, got: object, want: object) -> None:
    if got != want:
        if isinstance(got, bytes) and isinstance(want, bytes):
            raise VectorMismatch(f"{name}: got {got.hex()[:64]}, want {want.hex()[:64]}")
        raise VectorMismatch(f"{name}: got {got!r}, want {want!r}")


def expect_true(name: str, ok: bool) -> None:
    if not ok:
        raise VectorMismatch(f"{name}: check failed")


def flip(data: bytes, index: int = -1) -> bytes:
    """``data`` with the low bit of one byte flipped (a corrupted variant)."""
    if not data:
        raise VectorMismatch("cannot corrupt an empty value")
    i = index % len(data)
    return data[:i] + bytes([data[i] ^ 1]) + data[i + 1 :]


def expect_rejected(name: str, error: type[Exception], fn: Callable[[], object]) -> None:
    """The library must reject a corrupted variant with ``error``."""
    try:
        fn()
    except error:
        return
    except MLSError as e:
        raise VectorMismatch(f"{name}: rejected with {type(e).__name__}, "
                             f"expected {error.__name__}: {e}") from None
    raise VectorMismatch(f"{name}: the corrupted variant was accepted")


def expect_false(name: str, ok: bool) -> None:
    """A corrupted variant's check must fail."""
    if ok:
        raise VectorMismatch(f"{name}: the corrupted variant was accepted")
