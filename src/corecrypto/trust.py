"""The trust layer: fingerprints, safety numbers, verification state, key
change and MITM detection, and group codes.

Safety numbers follow Signal's numeric fingerprint construction: for each
party, SHA-512 is iterated 5200 times over (version, the sorted concatenation
of the user's device identity keys, the user id); the first 30 bytes give 30
digits as six 5-byte big-endian chunks mod 100000; the two 30-digit halves are
ordered so both sides display the same 60 digits. The QR payload carries both
parties' fingerprints; the scanning side compares them in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

VERSION = 0
ITERATIONS = 5200
QR_VERSION = 1
FINGERPRINT_BYTES = 32  # of each party's iterated hash, in the QR payload


class TrustError(ValueError):
    """Malformed trust data (e.g. a QR payload of another version)."""


def identity_fingerprint(signature_key: bytes) -> str:
    """Lowercase SHA-256 hex of a signature public key."""
    return hashlib.sha256(signature_key).hexdigest()


def group_hex(fingerprint: str, size: int = 4) -> str:
    """``"ab12 cd34 ..."``: a fingerprint in groups for reading aloud."""
    return " ".join(fingerprint[i:i + size] for i in range(0, len(fingerprint), size))


def _keys_blob(keys: Iterable[bytes]) -> bytes:
    return b"".join(sorted(bytes(k) for k in keys))


def iterated_hash(user_id: str, keys: Iterable[bytes], iterations: int = ITERATIONS) -> bytes:
    """A party's fingerprint hash: SHA-512 iterated over its identity keys."""
    blob = _keys_blob(keys)
    if not blob:
        raise TrustError(f"user {user_id!r} has no identity keys")
    h = VERSION.to_bytes(2, "big") + blob + user_id.encode("utf-8")
    for _ in range(iterations):
        h = hashlib.sha512(h + blob).digest()
    return h


def thirty_digits(h: bytes) -> str:
    """Six 5-byte big-endian chunks of ``h`` mod 100000, zero-padded."""
    return "".join(f"{int.from_bytes(h[i:i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5))


@dataclass(frozen=True)
class SafetyNumber:
    """The safety number of a pair of users, as both of them see it."""

    digits: str  # 60 digits
    local: bytes  # our iterated hash
    remote: bytes  # theirs

    @property
    def groups(self) -> list[str]:
        """12 groups of 5 digits."""
        return [self.digits[i:i + 5] for i in range(0, 60, 5)]

    def display(self) -> str:
        return " ".join(self.groups)

    def qr_payload(self) -> bytes:
        """version || our fingerprint || theirs (32 bytes each)."""
        return (bytes((QR_VERSION,)) + self.local[:FINGERPRINT_BYTES]
                + self.remote[:FINGERPRINT_BYTES])

    def matches_scanned(self, payload: bytes) -> bool:
        """True when ``payload`` was shown by the other party of this pair: its
        first fingerprint is their key set, its second ours (constant time)."""
        if len(payload) != 1 + 2 * FINGERPRINT_BYTES or payload[0] != QR_VERSION:
            raise TrustError("not a safety-number QR payload of a supported version")
        theirs = payload[1:1 + FINGERPRINT_BYTES]
        ours = payload[1 + FINGERPRINT_BYTES:]
        ok_remote = hmac.compare_digest(theirs, self.remote[:FINGERPRINT_BYTES])
        ok_local = hmac.compare_digest(ours, self.local[:FINGERPRINT_BYTES])
        return ok_remote & ok_local


def safety_number(local_user: str, local_keys: Iterable[bytes], remote_user: str,
                  remote_keys: Iterable[bytes]) -> SafetyNumber:
    local = iterated_hash(local_user, local_keys)
    remote = iterated_hash(remote_user, remote_keys)
    a, b = thirty_digits(local), thirty_digits(remote)
    return SafetyNumber(a + b if a <= b else b + a, local, remote)


def group_code(group_id: bytes, epoch: int, epoch_authenticator: bytes) -> str:
    """30 digits from the epoch authenticator (RFC 9420 §8.7), equal for every
    member in the same epoch: for verifying a whole group at once."""
    h = hashlib.sha512(b"intellacc group code v1" + len(group_id).to_bytes(2, "big") + group_id
                       + epoch.to_bytes(8, "big") + epoch_authenticator).digest()
    digits = thirty_digits(h)
    return " ".join(digits[i:i + 5] for i in range(0, 30, 5))


def key_set_digest(keys: Iterable[bytes]) -> str:
    return hashlib.sha256(_keys_blob(keys)).hexdigest()


@dataclass
class ContactTrust:
    """What we know about one contact: the key set we last saw and whether the
    user verified it."""

    keys_digest: str
    verified: bool = False
    verified_digest: str = ""  # the key set that was verified
    key_changed: bool = False  # keys changed since last acknowledged


@dataclass(frozen=True)
class TrustEvent:
    """Something the UI should tell the user about."""

    kind: str  # "key-change" | "mitm-suspected" | "verified" | "unverified"
    user_id: str
    detail: str = ""


@dataclass
class TrustStore:
    """Per-contact verification state; serialized into the vault."""

    contacts: dict[str, ContactTrust] = field(default_factory=dict)

    def observe_keys(self, user_id: str, keys: Iterable[bytes]) -> list[TrustEvent]:
        """Record the contact's current device keys (from the key directory).

        A change of a known key set raises a key-change event and, if the
        contact was verified, drops the verification.
        """
        digest = key_set_digest(keys)
        c = self.contacts.get(user_id)
        if c is None:
            self.contacts[user_id] = ContactTrust(digest)
            return []
        if c.keys_digest == digest:
            return []
        events = [TrustEvent("key-change", user_id, "the contact's device keys changed")]
        was_verified = c.verified
        c.keys_digest = digest
        c.key_changed = True
        if was_verified:
            c.verified = False
            events.append(TrustEvent("unverified", user_id, "verified keys changed"))
        return events

    def is_verified(self, user_id: str) -> bool:
        c = self.contacts.get(user_id)
        return bool(c and c.verified and c.verified_digest == c.keys_digest)

    def needs_warning(self, user_id: str) -> bool:
        """A verified contact whose keys changed and who was not re-verified:
        warn before sending (as Signal does)."""
        c = self.contacts.get(user_id)
        return bool(c and c.key_changed and c.verified_digest and not c.verified)

    def acknowledge_change(self, user_id: str) -> None:
        c = self.contacts.get(user_id)
        if c is not None:
            c.key_changed = False

    def mark_verified(self, user_id: str, keys: Iterable[bytes]) -> TrustEvent:
        digest = key_set_digest(keys)
        c = self.contacts.setdefault(user_id, ContactTrust(digest))
        c.keys_digest = digest
        c.verified = True
        c.verified_digest = digest
        c.key_changed = False
        return TrustEvent("verified", user_id)

    def unverify(self, user_id: str) -> TrustEvent:
        c = self.contacts.get(user_id)
        if c is not None:
            c.verified = False
            c.verified_digest = ""
        return TrustEvent("unverified", user_id)

    def to_bytes(self) -> bytes:
        data = {u: vars(c) for u, c in sorted(self.contacts.items())}
        return json.dumps({"version": 1, "contacts": data}, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrustStore:
        try:
            obj = json.loads(data)
            if obj.get("version") != 1:
                raise TrustError("unsupported trust store version")
            return cls({u: ContactTrust(**c) for u, c in obj["contacts"].items()})
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise TrustError(f"malformed trust store: {e}") from None


def check_group_keys(
    member_keys: Mapping[str, bytes], directory: Mapping[str, Sequence[bytes]]
) -> list[TrustEvent]:
    """Compare the keys group leaves present (identity ``user/device`` ->
    signature key) with the key directory (user -> device keys). A leaf key the
    directory does not list for that user is a possible MITM."""
    events = []
    for identity, key in sorted(member_keys.items()):
        user, _, device = identity.rpartition("/")
        known = directory.get(user)
        if known is None:
            continue
        if not any(hmac.compare_digest(key, k) for k in known):
            events.append(TrustEvent(
                "mitm-suspected", user,
                f"device {device} presents a key the directory does not list"))
    return events
