"""Cryptography for MLS: the provider interface, HPKE and the cipher suites."""

from __future__ import annotations

import sys

from .ciphersuite import SUITES, CipherSuite, CipherSuiteId
from .provider import AeadAlg, CryptoProvider, HashAlg, KemAlg, SignatureScheme


def default_provider() -> CryptoProvider:
    """The provider for this runtime: JS-backed under Pyodide, else ``cryptography``."""
    if sys.platform == "emscripten":
        from .pyodide import PyodideProvider

        return PyodideProvider()
    from .cpython import CPythonProvider

    return CPythonProvider()


__all__ = [
    "SUITES",
    "AeadAlg",
    "CipherSuite",
    "CipherSuiteId",
    "CryptoProvider",
    "HashAlg",
    "KemAlg",
    "SignatureScheme",
    "default_provider",
]
