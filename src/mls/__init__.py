"""RFC 9420 Messaging Layer Security, sans-IO.

The library never performs I/O and never reads the clock or global state:
cryptography and randomness come from an injected
:class:`~mls.crypto.CryptoProvider` (``cryptography`` on CPython, audited
JavaScript libraries under Pyodide), time from :class:`~mls.group.GroupConfig`.

Entry points: :class:`~mls.group.Group` (the state machine),
:func:`~mls.group.join_from_welcome`, :func:`~mls.group.join_external`,
:func:`~mls.group.create_key_package`, :mod:`mls.inspect` (what a server may
read), and ``python -m mls.vectors`` (the official test vectors).
"""

from __future__ import annotations

from .errors import (
    ConfirmationTagError,
    CryptoError,
    DecodeError,
    DecryptionError,
    EpochError,
    MembershipTagError,
    MLSError,
    PendingCommitError,
    PublicKeyError,
    ReplayError,
    SignatureError,
    StateError,
    UnsupportedError,
    ValidationError,
)

__all__ = [
    "ConfirmationTagError",
    "CryptoError",
    "DecodeError",
    "DecryptionError",
    "EpochError",
    "MLSError",
    "MembershipTagError",
    "PendingCommitError",
    "PublicKeyError",
    "ReplayError",
    "SignatureError",
    "StateError",
    "UnsupportedError",
    "ValidationError",
]
