"""Leaf nodes, capabilities and lifetimes (RFC 9420 §7.2)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum

from .codec import Reader, Struct, Writer, keep_encoding
from .credentials import Credential
from .crypto import CipherSuite
from .errors import DecodeError, ValidationError
from .extensions import Extension, read_extensions, write_extensions

PROTOCOL_VERSION_MLS10 = 0x0001

#: Lifetime of the leaves this library creates: 12 weeks, back-dated by an hour
#: of clock skew (as OpenMLS does, whose limit is that total).
DEFAULT_LIFETIME = 84 * 24 * 3600
CLOCK_SKEW = 3600
#: Longest ``not_after - not_before`` accepted on receipt (RFC 9420 §7.2: "Applications
#: MUST define a maximum total lifetime ... and reject any LeafNode" beyond it).
MAX_LIFETIME = 90 * 24 * 3600 + CLOCK_SKEW


class LeafNodeSource(IntEnum):
    KEY_PACKAGE = 1
    UPDATE = 2
    COMMIT = 3


#: Read-only: decoding looks the source up here instead of calling the enum.
_SOURCES = {int(s): s for s in LeafNodeSource}


@dataclass(frozen=True, slots=True)
class Capabilities(Struct):
    """What a client supports (RFC 9420 §7.2)."""

    versions: tuple[int, ...]
    cipher_suites: tuple[int, ...]
    extensions: tuple[int, ...] = ()
    proposals: tuple[int, ...] = ()
    credentials: tuple[int, ...] = ()

    def encode(self, w: Writer) -> None:
        for v in (self.versions, self.cipher_suites, self.extensions, self.proposals,
                  self.credentials):
            w.opaque(b"".join(x.to_bytes(2, "big") for x in v))

    @classmethod
    def decode(cls, r: Reader) -> Capabilities:
        return cls(r.u16_vector(), r.u16_vector(), r.u16_vector(), r.u16_vector(),
                   r.u16_vector())


@dataclass(frozen=True, slots=True)
class Lifetime(Struct):
    """Validity window in seconds since the Unix epoch (RFC 9420 §7.2)."""

    not_before: int
    not_after: int

    def encode(self, w: Writer) -> None:
        w.u64(self.not_before)
        w.u64(self.not_after)

    @classmethod
    def decode(cls, r: Reader) -> Lifetime:
        return cls(r.u64(), r.u64())

    @classmethod
    def starting(cls, now: int, lifetime: int = DEFAULT_LIFETIME) -> Lifetime:
        """A window from ``now`` (back-dated by :data:`CLOCK_SKEW`) for ``lifetime`` seconds."""
        return cls(max(0, now - CLOCK_SKEW), now + lifetime)

    def check(self, now: int | None, max_lifetime: int | None, what: str = "leaf") -> None:
        """The window is at most ``max_lifetime`` long (§7.2) and covers ``now``
        (§7.3); ``None`` skips either check."""
        if max_lifetime is not None and self.not_after - self.not_before > max_lifetime:
            raise ValidationError(
                f"{what} lifetime of {self.not_after - self.not_before} s exceeds the maximum "
                f"of {max_lifetime} s (§7.2)")
        if now is not None and not self.not_before <= now <= self.not_after:
            raise ValidationError(f"{what} lifetime does not cover the current time (§7.3)")


@dataclass(frozen=True, slots=True)
class LeafNode(Struct):
    """``LeafNode`` (RFC 9420 §7.2).

    ``lifetime`` is present iff the source is ``key_package``; ``parent_hash``
    iff it is ``commit``.
    """

    encryption_key: bytes
    signature_key: bytes
    credential: Credential
    capabilities: Capabilities
    leaf_node_source: LeafNodeSource
    lifetime: Lifetime | None = None
    parent_hash: bytes = b""
    extensions: tuple[Extension, ...] = ()
    signature: bytes = b""
    # The encoding of everything but the signature, made once: it goes into the
    # signature check (LeafNodeTBS) and the tree hash of every tree holding this
    # leaf. Not a field for comparison, and ``replace`` starts a copy without it.
    _content: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def content_bytes(self) -> bytes:
        """The leaf's encoding without its signature (shared by LeafNodeTBS, §7.2)."""
        c = self._content
        return c if c is not None else keep_encoding(self, "_content", self._write_content)

    def _write_content(self, w: Writer) -> None:
        w.opaque(self.encryption_key)
        w.opaque(self.signature_key)
        self.credential.encode(w)
        self.capabilities.encode(w)
        w.u8(self.leaf_node_source)
        if self.leaf_node_source == LeafNodeSource.KEY_PACKAGE:
            assert self.lifetime is not None, "key_package leaf nodes carry a lifetime"
            self.lifetime.encode(w)
        elif self.leaf_node_source == LeafNodeSource.COMMIT:
            w.opaque(self.parent_hash)
        write_extensions(w, self.extensions)

    def encode(self, w: Writer) -> None:
        w.write(self.content_bytes())
        w.opaque(self.signature)

    @classmethod
    def decode(cls, r: Reader) -> LeafNode:
        start = r.position
        encryption_key = r.opaque()
        signature_key = r.opaque()
        credential = Credential.decode(r)
        capabilities = Capabilities.decode(r)
        src = r.u8()
        source = _SOURCES.get(src)
        if source is None:
            raise DecodeError(f"unknown leaf_node_source {src}")
        lifetime = None
        parent_hash = b""
        if source is LeafNodeSource.KEY_PACKAGE:
            lifetime = Lifetime(r.u64(), r.u64())
        elif source is LeafNodeSource.COMMIT:
            parent_hash = r.opaque()
        extensions = read_extensions(r)
        # Every field above has a single (minimal) encoding, so these bytes are
        # what encoding the decoded fields would give.
        content = r.since(start)
        signature = r.opaque()
        leaf = cls(encryption_key, signature_key, credential, capabilities, source, lifetime,
                   parent_hash, extensions, signature)
        object.__setattr__(leaf, "_content", content)
        return leaf

    def tbs(self, group_id: bytes | None, leaf_index: int | None) -> bytes:
        """``LeafNodeTBS``: for update/commit sources it binds group and leaf index."""
        if self.leaf_node_source not in (LeafNodeSource.UPDATE, LeafNodeSource.COMMIT):
            return self.content_bytes()
        if group_id is None or leaf_index is None:
            raise ValueError("update/commit leaf nodes are signed with group_id and leaf_index")
        w = Writer()
        w.write(self.content_bytes())
        w.opaque(group_id)
        w.u32(leaf_index)
        return w.getvalue()

    def signed(
        self, cs: CipherSuite, signature_priv: bytes,
        group_id: bytes | None = None, leaf_index: int | None = None,
    ) -> LeafNode:
        """A copy carrying a fresh signature (SignWithLabel "LeafNodeTBS")."""
        sig = cs.sign_with_label(signature_priv, b"LeafNodeTBS", self.tbs(group_id, leaf_index))
        return replace(self, signature=sig)

    def verify(
        self, cs: CipherSuite, group_id: bytes | None = None, leaf_index: int | None = None
    ) -> bool:
        return cs.verify_with_label(
            self.signature_key, b"LeafNodeTBS", self.tbs(group_id, leaf_index), self.signature
        )
