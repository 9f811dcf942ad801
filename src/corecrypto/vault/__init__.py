"""The encrypted vault (see :mod:`corecrypto.vault.core` for the format).

``core`` is the vault itself; ``interfaces`` its errors and the storage, cipher and
lock-channel protocols it runs over; ``browser`` the IndexedDB/WebCrypto
implementation (Pyodide only); ``local`` the CPython one (tests and tools).
"""

from __future__ import annotations

from .core import (
    DEFAULT_IDLE_LOCK_SECONDS,
    HEADER_NAME,
    RECORD_PREFIX,
    LockReason,
    PanicReport,
    Vault,
    VaultHeader,
    record_aad,
)
from .interfaces import (
    AuthenticationError,
    InvalidPasswordError,
    InvalidRecordNameError,
    KeyHandle,
    LockChannel,
    TamperedRecordError,
    VaultCipher,
    VaultCorruptError,
    VaultError,
    VaultExistsError,
    VaultLockedError,
    VaultNotFoundError,
    VaultStorage,
    VaultStorageError,
    WrongPasswordError,
)

__all__ = [
    "DEFAULT_IDLE_LOCK_SECONDS",
    "HEADER_NAME",
    "RECORD_PREFIX",
    "AuthenticationError",
    "InvalidPasswordError",
    "InvalidRecordNameError",
    "KeyHandle",
    "LockChannel",
    "LockReason",
    "PanicReport",
    "TamperedRecordError",
    "Vault",
    "VaultCipher",
    "VaultCorruptError",
    "VaultError",
    "VaultExistsError",
    "VaultHeader",
    "VaultLockedError",
    "VaultNotFoundError",
    "VaultStorage",
    "VaultStorageError",
    "WrongPasswordError",
    "record_aad",
]
