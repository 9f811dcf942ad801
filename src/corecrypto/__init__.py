"""The client core: the CoreCrypto facade over :mod:`mls`, the encrypted vault,
the trust layer and the delivery-service client."""

from __future__ import annotations

from .client import CoreCrypto
from .errors import (
    CoreCryptoError,
    GroupExistsError,
    KdfParameterError,
    NoMatchingKeyPackageError,
    UnknownGroupError,
    UnknownMemberError,
    UnsupportedSuiteError,
    WrongMessageTypeError,
)
from .kdf import Argon2Params, derive_key_argon2id
from .results import (
    ApplicationReceived,
    CommitReceived,
    OwnMessageEcho,
    ProposalReceived,
    Received,
)

__all__ = [
    "ApplicationReceived",
    "Argon2Params",
    "CommitReceived",
    "CoreCrypto",
    "CoreCryptoError",
    "GroupExistsError",
    "KdfParameterError",
    "NoMatchingKeyPackageError",
    "OwnMessageEcho",
    "ProposalReceived",
    "Received",
    "UnknownGroupError",
    "UnknownMemberError",
    "UnsupportedSuiteError",
    "WrongMessageTypeError",
    "derive_key_argon2id",
]
