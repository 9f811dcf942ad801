"""The secret tree and its per-sender hash ratchets (RFC 9420 §9).

Secrets are derived lazily and deleted as soon as they are consumed: a node's
secret is dropped once both children are derived, a ratchet secret once the
next generation exists, and a message key once it was used. That deletion
schedule is what gives forward secrecy within an epoch (§9.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from . import tree_math as tm
from .codec import Reader, Writer
from .crypto import CipherSuite
from .errors import ReplayError, ValidationError


@dataclass(frozen=True, slots=True)
class RatchetConfig:
    """Out-of-order tolerance, like OpenMLS's SenderRatchetConfiguration.

    ``max_forward_distance``: how far ahead of the next expected generation a
    message may be (bounds the work an attacker can force).
    ``out_of_order_tolerance``: how many skipped generations keep their keys.
    """

    max_forward_distance: int = 1000
    out_of_order_tolerance: int = 32


class HashRatchet(NamedTuple):
    """One sender's handshake or application ratchet (immutable: a step
    produces a new ratchet, which makes copies of the tree cheap)."""

    next_generation: int
    secret: bytes
    skipped: tuple[tuple[int, bytes, bytes], ...] = ()  # (generation, key, nonce)


#: A change to a secret tree computed but not made yet: the new node secrets
#: (``None``: unchanged) and the ratchets to replace (see :meth:`SecretTree.apply`).
RatchetUpdate = tuple[dict[int, bytes] | None, dict[tuple[int, bool], HashRatchet]]


class SecretTree:
    """Per-epoch secret tree over ``n_leaves`` leaves.

    :meth:`sending_key` and :meth:`receiving_key` compute a key without changing
    the tree and return the change that consumes it, which the caller applies
    (:meth:`apply`) once the message is accepted: a rejected message leaves the
    tree as it was without copying it. :meth:`next_key` and :meth:`key_for` do
    both at once; :meth:`copy` is shallow and cheap because ratchets are immutable."""

    __slots__ = ("_nodes", "_ratchets", "config", "cs", "n_leaves")

    def __init__(
        self, cs: CipherSuite, encryption_secret: bytes, n_leaves: int,
        config: RatchetConfig | None = None,
    ) -> None:
        self.cs = cs
        self.n_leaves = n_leaves
        self.config = config or RatchetConfig()
        self._nodes: dict[int, bytes] = {tm.root(n_leaves): encryption_secret}
        # (leaf, is_handshake) -> ratchet
        self._ratchets: dict[tuple[int, bool], HashRatchet] = {}

    def copy(self) -> SecretTree:
        new = SecretTree.__new__(SecretTree)
        new.cs = self.cs
        new.n_leaves = self.n_leaves
        new.config = self.config
        new._nodes = dict(self._nodes)
        new._ratchets = dict(self._ratchets)
        return new

    def apply(self, update: RatchetUpdate) -> None:
        """Make a change computed by :meth:`sending_key` or :meth:`receiving_key`,
        before any other change to this tree (it replaces the node secrets)."""
        nodes, ratchets = update
        if nodes is not None:
            self._nodes = nodes
        self._ratchets.update(ratchets)

    # -- derivation ---------------------------------------------------------------
    def _leaf_secret(self, leaf: int, nodes: dict[int, bytes]) -> bytes:
        """The leaf's secret, consumed from ``nodes`` (a copy of the tree's)."""
        x = 2 * leaf
        if x in nodes:
            return nodes.pop(x)
        # Find the lowest ancestor whose secret is still held, then walk down.
        path = tm.direct_path(x, self.n_leaves)
        start = next((p for p in path if p in nodes), None)
        if start is None:
            raise ReplayError(f"secrets of leaf {leaf} were already consumed (§9.2)")
        node = start
        nh = self.cs.hash_length
        while node != x:
            secret = nodes.pop(node)
            lchild, rchild = tm.left(node), tm.right(node)
            nodes[lchild] = self.cs.expand_with_label(secret, b"tree", b"left", nh)
            nodes[rchild] = self.cs.expand_with_label(secret, b"tree", b"right", nh)
            node = lchild if tm.is_in_subtree(lchild, x) else rchild
        return nodes.pop(x)

    def _lookup(self, leaf: int, handshake: bool) -> tuple[HashRatchet, RatchetUpdate]:
        """The leaf's ratchet, and the change that creates it if it is new (a
        leaf's first message of the epoch derives both of its ratchets, §9)."""
        if not 0 <= leaf < self.n_leaves:
            raise ValidationError(f"leaf index {leaf} is outside the secret tree (§6.3.2)")
        r = self._ratchets.get((leaf, handshake))
        if r is not None:
            return r, (None, {})
        nodes = dict(self._nodes)
        leaf_secret = self._leaf_secret(leaf, nodes)
        nh = self.cs.hash_length
        hs = HashRatchet(0, self.cs.expand_with_label(leaf_secret, b"handshake", b"", nh))
        app = HashRatchet(0, self.cs.expand_with_label(leaf_secret, b"application", b"", nh))
        return (hs if handshake else app), (nodes, {(leaf, True): hs, (leaf, False): app})

    def _ratchet(self, leaf: int, handshake: bool) -> HashRatchet:
        r, update = self._lookup(leaf, handshake)
        self.apply(update)
        return r

    def sending_key(self, leaf: int, handshake: bool) -> tuple[int, bytes, bytes, RatchetUpdate]:
        """Key and nonce for sending: (generation, key, nonce, the change that
        moves the ratchet on)."""
        r, update = self._lookup(leaf, handshake)
        gen = r.next_generation
        key, nonce, secret = self.cs.ratchet_step(r.secret, gen)
        update[1][(leaf, handshake)] = HashRatchet(gen + 1, secret, r.skipped)
        return gen, key, nonce, update

    def next_key(self, leaf: int, handshake: bool) -> tuple[int, bytes, bytes]:
        """Key and nonce for sending: (generation, key, nonce); the ratchet moves on."""
        gen, key, nonce, update = self.sending_key(leaf, handshake)
        self.apply(update)
        return gen, key, nonce

    def receiving_key(
        self, leaf: int, handshake: bool, generation: int
    ) -> tuple[bytes, bytes, RatchetUpdate]:
        """Key and nonce for receiving ``generation``, and the change that consumes
        them (each is handed out once) and keeps the keys of skipped generations."""
        r = self._ratchets.get((leaf, handshake)) if 0 <= leaf < self.n_leaves else None
        if r is not None and generation == r.next_generation:  # in order: the common case
            key, nonce, secret = self.cs.ratchet_step(r.secret, generation)
            return key, nonce, (None, {(leaf, handshake): HashRatchet(
                generation + 1, secret, self._keep(r.skipped))})
        r, update = self._lookup(leaf, handshake)
        changes = update[1]
        if generation < r.next_generation:
            for i, (g, key, nonce) in enumerate(r.skipped):
                if g == generation:
                    changes[(leaf, handshake)] = HashRatchet(
                        r.next_generation, r.secret, r.skipped[:i] + r.skipped[i + 1:])
                    return key, nonce, update
            raise ReplayError(
                f"generation {generation} of leaf {leaf} was already used or is too old (§9.2)")
        if generation - r.next_generation > self.config.max_forward_distance:
            raise ValidationError(
                f"generation {generation} is beyond the maximum forward distance "
                f"({self.config.max_forward_distance}, §9.2)")
        step = self.cs.ratchet_step
        skipped = r.skipped
        secret, gen = r.secret, r.next_generation
        if gen < generation:
            more = []
            while gen < generation:
                key, nonce, secret = step(secret, gen)
                more.append((gen, key, nonce))
                gen += 1
            skipped = (*skipped, *more)
        key, nonce, secret = step(secret, gen)
        changes[(leaf, handshake)] = HashRatchet(gen + 1, secret, self._keep(skipped))
        return key, nonce, update

    def _keep(self, skipped: tuple[tuple[int, bytes, bytes], ...]
              ) -> tuple[tuple[int, bytes, bytes], ...]:
        """Only the most recent skipped keys are kept."""
        tolerance = self.config.out_of_order_tolerance
        return skipped[-tolerance:] if tolerance > 0 else ()

    def key_for(self, leaf: int, handshake: bool, generation: int) -> tuple[bytes, bytes]:
        """Key and nonce for receiving ``generation``; each is handed out once."""
        key, nonce, update = self.receiving_key(leaf, handshake, generation)
        self.apply(update)
        return key, nonce

    # -- persistence ----------------------------------------------------------------
    def encode(self, w: Writer) -> None:
        w.u32(self.n_leaves)
        w.u32(self.config.max_forward_distance)
        w.u32(self.config.out_of_order_tolerance)

        def node(w2: Writer, kv: tuple[int, bytes]) -> None:
            w2.u32(kv[0])
            w2.opaque(kv[1])

        def skipped(w3: Writer, s: tuple[int, bytes, bytes]) -> None:
            w3.u32(s[0])
            w3.opaque(s[1])
            w3.opaque(s[2])

        def ratchet(w2: Writer, item: tuple[tuple[int, bool], HashRatchet]) -> None:
            (leaf, hs), r = item
            w2.u32(leaf)
            w2.boolean(hs)
            w2.u32(r.next_generation)
            w2.opaque(r.secret)
            w2.vector(r.skipped, skipped)

        w.vector(sorted(self._nodes.items()), node)
        w.vector(sorted(self._ratchets.items()), ratchet)

    @classmethod
    def decode(cls, cs: CipherSuite, r: Reader) -> SecretTree:
        n = r.u32()
        config = RatchetConfig(r.u32(), r.u32())

        def node(r2: Reader) -> tuple[int, bytes]:
            return r2.u32(), r2.opaque()

        def skipped(r3: Reader) -> tuple[int, bytes, bytes]:
            return r3.u32(), r3.opaque(), r3.opaque()

        def ratchet(r2: Reader) -> tuple[tuple[int, bool], HashRatchet]:
            leaf = r2.u32()
            hs = r2.boolean()
            gen = r2.u32()
            secret = r2.opaque()
            return (leaf, hs), HashRatchet(gen, secret, tuple(r2.vector(skipped)))

        new = cls.__new__(cls)
        new.cs = cs
        new.n_leaves = n
        new.config = config
        new._nodes = dict(r.vector(node))
        new._ratchets = dict(r.vector(ratchet))
        return new


def sender_data_key_nonce(
    cs: CipherSuite, sender_data_secret: bytes, ciphertext: bytes
) -> tuple[bytes, bytes]:
    """Key and nonce protecting SenderData (§6.3.2), from a ciphertext sample."""
    return cs.sender_data_key_nonce(sender_data_secret, ciphertext)
