"""The error hierarchy of the MLS library.

Every failure the library reports is an :class:`MLSError`. The subclasses say
what kind of rule was broken, so callers can react (drop a malformed message,
report a forged one, retry after a lost race) without parsing strings:

* :class:`DecodeError`: bytes that are not a valid TLS encoding of the
  expected structure (RFC 9420 §2.1).
* :class:`ValidationError`: a well-formed object that breaks a protocol rule
  (RFC 9420 §7, §10, §12, §13). The message names the rule.
* :class:`CryptoError`: a signature, MAC or AEAD tag that does not verify, or
  a key that is not a valid point or scalar.
* :class:`StateError`: an operation that does not fit the current state
  (wrong epoch, pending commit, unknown group, replayed generation).
"""

from __future__ import annotations


class MLSError(Exception):
    """Base class of every error raised by the :mod:`mls` library."""


class DecodeError(MLSError):
    """Malformed TLS presentation-language input (RFC 9420 §2.1)."""


class ValidationError(MLSError):
    """A syntactically valid object violates a protocol rule."""


class CryptoError(MLSError):
    """A cryptographic check failed or a key is invalid."""


class SignatureError(CryptoError):
    """A signature does not verify (RFC 9420 §5.1.2)."""


class DecryptionError(CryptoError):
    """An AEAD or HPKE ciphertext does not open (RFC 9420 §5.1.3, §6.3)."""


class PublicKeyError(CryptoError):
    """A public key is not in the encoding its cipher suite prescribes (RFC 9420
    §5.1.1): e.g. a compressed or off-curve ECDSA key in suites 2, 5 and 7."""


class MembershipTagError(CryptoError):
    """The membership_tag of a PublicMessage is wrong (RFC 9420 §6.2)."""


class ConfirmationTagError(CryptoError):
    """The confirmation_tag of a Commit or GroupInfo is wrong (RFC 9420 §8.1)."""


class StateError(MLSError):
    """The operation does not fit the group's current state."""


class EpochError(StateError):
    """The message belongs to an epoch that is not (or no longer) available."""


class ReplayError(StateError):
    """A message key was already used or deleted (RFC 9420 §9.2)."""


class PendingCommitError(StateError):
    """A pending commit blocks the operation, or none is pending."""


class UnsupportedError(MLSError):
    """A cipher suite, credential type or feature this implementation lacks."""
