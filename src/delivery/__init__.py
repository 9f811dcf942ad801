"""The Delivery Service and Authentication Service of the MLS messenger.

An ASGI app (FastAPI) that authenticates users and devices, keeps a directory of
device identity keys and KeyPackages, and orders and fans out MLS messages per
group without ever holding a key: it parses MLS framing with :mod:`mls` and
trusts no client-declared metadata. Start it with
``python -m delivery serve --host H --port P``; see ``docs/delivery.md``.
"""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str) -> object:
    # Lazy, so that `import delivery.config` does not pull in FastAPI and the MLS library.
    if name == "create_app":
        from delivery.app import create_app  # noqa: PLC0415 - lazy on purpose

        return create_app
    raise AttributeError(name)
