"""Errors of the client facade; MLS protocol errors pass through unchanged."""

from __future__ import annotations

from mls.errors import MLSError, StateError, ValidationError


class CoreCryptoError(MLSError):
    """Base class of errors raised by :mod:`corecrypto` itself."""


class UnknownGroupError(CoreCryptoError, StateError):
    """No group with this id on this client."""


class GroupExistsError(CoreCryptoError, StateError):
    """A group with this id already exists on this client."""


class UnknownMemberError(CoreCryptoError, ValidationError):
    """No member with this identity in the group."""


class NoMatchingKeyPackageError(CoreCryptoError, ValidationError):
    """A Welcome addressed to none of this client's KeyPackages."""


class WrongMessageTypeError(CoreCryptoError, ValidationError):
    """A message of another kind than the call expects (e.g. a commit to decrypt_message)."""


class KdfParameterError(CoreCryptoError, ValueError):
    """Argon2id parameters or salt below the minimum."""


class UnsupportedSuiteError(CoreCryptoError, ValidationError):
    """A cipher suite this identity cannot use (unknown, or another signature scheme)."""
