"""Small helpers shared by the vector checkers."""

from __future__ import annotations

from typing import Any

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
