"""The application-message fast paths (issue 13 §4) give the general code's results.

Receiving reads the common PrivateMessage wire form in one pass, sending builds an
application message as bytes at once, the KDF keeps its label prefixes: each test
compares one of them with the general code (RFC 9420 §5.1, §6, §6.3, §9) on
valid input and, for the parser, on every truncation and on altered bytes.
"""

from __future__ import annotations

import hmac
import random

import pytest

from mls import private_message as pm
from mls.codec import Reader, Writer
from mls.crypto import CipherSuite, default_provider
from mls.crypto.cpython import CPythonProvider
from mls.crypto.hashing import hmac_keyed
from mls.crypto.provider import HashAlg
from mls.errors import DecodeError, ReplayError
from mls.framing import (
    ContentType,
    FramedContent,
    Sender,
    WireFormat,
    framed_content_tbs,
)
from mls.group import Group, GroupConfig
from mls.message import MLSMessage
from mls.secret_tree import RatchetConfig, SecretTree

from . import forge as f

P = default_provider()


def general_body(data: bytes) -> pm.PrivateMessage | None:
    """What the general decoder makes of ``data``: its PrivateMessage, or None."""
    try:
        msg = MLSMessage.deserialize(data)
    except DecodeError:
        return None
    return msg.body if isinstance(msg.body, pm.PrivateMessage) else None


def assert_parsed_alike(data: bytes) -> None:
    fast = pm.parse_private_message(data)
    general = general_body(data)
    if fast is None:
        # The fast path leaves to the general decoder only what it does not read.
        if general is not None:
            big = [len(general.group_id), len(general.authenticated_data),
                   len(general.encrypted_sender_data), len(general.ciphertext)]
            assert max(big) >= 0x4000, "a message of the common form was not parsed"
        return
    assert general is not None, "the fast path accepted what the decoder refuses"
    assert fast == general
    assert fast.content_aad() == pm._content_aad(
        general.group_id, general.epoch, general.content_type, general.authenticated_data)
    assert fast.sender_data_aad() == pm._sender_data_aad(
        general.group_id, general.epoch, general.content_type)
    assert MLSMessage(WireFormat.PRIVATE_MESSAGE, fast).serialize() == data


@pytest.mark.parametrize(("size", "aad"), [(0, 0), (1024, 0), (1024, 63), (40, 64),
                                           (20000, 0), (5, 0x4000)])
def test_parser_reads_what_the_decoder_reads(size: int, aad: int) -> None:
    """Every truncation, extension and single-byte change of the message head
    and of each length field is decided alike by both parsers."""
    a, _b = f.make_group(2)
    data = a.encrypt(bytes(size), bytes(aad))
    rng = random.Random(size * 7 + aad)
    assert pm.parse_private_message(data) is not None or aad >= 0x4000 or size >= 0x4000
    assert_parsed_alike(data)
    for n in range(len(data) + 1) if len(data) < 3000 else rng.sample(range(len(data)), 300):
        assert_parsed_alike(data[:n])
    assert_parsed_alike(data + b"\x00")
    for i in range(min(len(data), 120)):
        for v in (0x00, 0x01, 0x03, 0x04, 0x3F, 0x40, 0x41, 0x7F, 0x80, 0xC0, 0xFF):
            assert_parsed_alike(data[:i] + bytes((v,)) + data[i + 1:])
    for _ in range(300):
        i = rng.randrange(len(data))
        assert_parsed_alike(data[:i] + bytes((rng.randrange(256),)) + data[i + 1:])


@pytest.mark.parametrize(("data", "aad", "block"), [
    (b"hello", b"", 0), (bytes(1024), b"meta", 0), (bytes(70), bytes(64), 32),
    (bytes(20000), bytes(100), 256)])
def test_encrypt_application_is_the_framed_and_signed_message(
        data: bytes, aad: bytes, block: int) -> None:
    """Group.encrypt builds its bytes at once; the receiver finds exactly the
    AuthenticatedContent the general framing and signing make (Ed25519 is
    deterministic), and the padding the config asks for."""
    a, b = f.make_group(2, config=GroupConfig(padding_block=block))
    st = a.state
    expected = a._frame(st, ContentType.APPLICATION, data, aad, WireFormat.PRIVATE_MESSAGE)
    message = a.encrypt(data, aad)
    body = general_body(message)
    assert body is not None
    probe = b.state.secret_tree.copy()
    sd = pm.decrypt_sender_data(b.cipher_suite, body, b.state.keys.sender_data_secret)
    opened = pm.open_content(b.cipher_suite, body, probe, sd)
    ac = pm.authenticated_content(body, sd, opened)
    assert ac == expected
    fresh = FramedContent(st.context.group_id, st.epoch, Sender.member(st.leaf_index), aad,
                          ContentType.APPLICATION, data)
    assert opened.encoded == fresh.serialize()
    assert framed_content_tbs(WireFormat.PRIVATE_MESSAGE, ac.content, st.context) == \
        framed_content_tbs(WireFormat.PRIVATE_MESSAGE, fresh, st.context)
    assert opened.verify(b.cipher_suite, st.tree.leaf(st.leaf_index).signature_key,  # type: ignore[union-attr]
                         b.state.context)
    pad = (-len(data)) % block if block > 1 else 0
    sig = ac.auth.signature
    assert len(body.ciphertext) == (len(pm._opaque(data)) + len(pm._opaque(sig)) + pad
                                    + 16)  # AES-128-GCM's tag
    received = b.process(message)
    assert received.data == data and received.authenticated_data == aad  # type: ignore[union-attr]


class ProviderHmac(CPythonProvider):
    """The CPython provider with an HMAC of its own (``hmac.new``), so that a
    suite goes through the provider instead of the standard library's digest."""

    def hmac(self, alg: HashAlg, key: bytes, data: bytes) -> bytes:
        return hmac.new(key, data, alg.hashlib_name).digest()


def reference_expand_with_label(cs: CipherSuite, secret: bytes, label: bytes, context: bytes,
                                length: int) -> bytes:
    """ExpandWithLabel spelled out (§5.1) over HKDF-Expand (RFC 5869 §2.3)."""
    full = b"MLS 1.0 " + label
    info = (length.to_bytes(2, "big") + bytes((len(full),)) + full
            + (bytes((len(context),)) if len(context) < 0x40
               else (0x4000 | len(context)).to_bytes(2, "big")) + context)
    name = cs.hash_alg.hashlib_name
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(secret, t + info + bytes((i,)), name).digest()
        out += t
        i += 1
    return out[:length]


@pytest.mark.parametrize("suite", [1, 5, 7])
@pytest.mark.parametrize("provider", [P, ProviderHmac()])
def test_kdf_prefixes_give_expand_with_label(suite: int, provider: CPythonProvider) -> None:
    """The kept KDFLabel prefixes, the ratchet step and the sender data key give
    ExpandWithLabel / DeriveTreeSecret as §5.1 and §9 spell them, for labels
    beyond the prefix cache's bound too."""
    cs = CipherSuite(suite, provider)
    rng = random.Random(suite)
    secret = rng.randbytes(cs.hash_length)
    for i in range(100):
        label = b"exported %d" % i
        for length in (16, cs.hash_length, 2 * cs.hash_length + 5):
            context = rng.randbytes(rng.choice((0, 4, 63, 64, 200)))
            assert cs.expand_with_label(secret, label, context, length) == \
                reference_expand_with_label(cs, secret, label, context, length)
    for generation in (0, 1, 255, 2**32 - 1):
        g = generation.to_bytes(4, "big")
        assert cs.ratchet_step(secret, generation) == (
            reference_expand_with_label(cs, secret, b"key", g, cs.aead_key_length),
            reference_expand_with_label(cs, secret, b"nonce", g, cs.aead_nonce_length),
            reference_expand_with_label(cs, secret, b"secret", g, cs.hash_length))
        assert cs.derive_tree_secret(secret, b"nonce", generation, cs.aead_nonce_length) == \
            reference_expand_with_label(cs, secret, b"nonce", g, cs.aead_nonce_length)
    for n in (0, 5, cs.hash_length - 1, cs.hash_length, cs.hash_length + 30):
        ciphertext = rng.randbytes(n)
        sample = ciphertext[:cs.hash_length]
        assert cs.sender_data_key_nonce(secret, ciphertext) == (
            reference_expand_with_label(cs, secret, b"key", sample, cs.aead_key_length),
            reference_expand_with_label(cs, secret, b"nonce", sample, cs.aead_nonce_length))
    assert cs.mac(secret, b"data") == hmac.new(secret, b"data", cs.hash_alg.hashlib_name).digest()


def test_group_over_a_provider_with_its_own_hmac() -> None:
    """A provider that brings its own HMAC is used for every KDF call: a group on
    it talks to a group on the standard one."""
    a, b = f.make_group(2)
    own = Group.from_state(ProviderHmac(), b.export_state())
    assert own.process(a.encrypt(b"x")).data == b"x"  # type: ignore[union-attr]
    assert a.process(own.encrypt(b"y")).data == b"y"  # type: ignore[union-attr]


def test_sender_data_of_the_fixed_layout_only() -> None:
    """SenderData is 12 bytes; the fixed-layout read gives the decoder's result."""
    sd = pm.SenderData(7, 2**32 - 1, b"\x01\x02\x03\x04")
    assert pm.SenderData.decode(Reader(sd.serialize())) == sd
    assert sd.serialize() == (7).to_bytes(4, "big") + b"\xff" * 4 + b"\x01\x02\x03\x04"


def test_receiving_key_changes_nothing_until_applied() -> None:
    """receiving_key and sending_key compute without changing the tree (first
    message of a leaf included, which derives its ratchets); apply makes the
    change, the same as key_for / next_key."""
    cs = CipherSuite(1, P)
    tree = SecretTree(cs, bytes(32), 8, RatchetConfig(out_of_order_tolerance=3))
    before = tree_bytes(tree)
    key, nonce, update = tree.receiving_key(5, False, 4)
    assert tree_bytes(tree) == before
    reference = tree.copy()
    assert reference.key_for(5, False, 4) == (key, nonce)
    tree.apply(update)
    assert tree_bytes(tree) == tree_bytes(reference) != before
    before = tree_bytes(tree)
    _g, skey, snonce, supdate = tree.sending_key(2, True)
    assert tree_bytes(tree) == before
    assert reference.next_key(2, True)[1:] == (skey, snonce)
    tree.apply(supdate)
    assert tree_bytes(tree) == tree_bytes(reference) != before
    # Skipped generations keep their keys, at most the tolerance's worth.
    assert tree.key_for(5, False, 1) == reference.key_for(5, False, 1)
    assert tree_bytes(tree) == tree_bytes(reference)


def tree_bytes(tree: SecretTree) -> bytes:
    w = Writer()
    tree.encode(w)
    return w.getvalue()


@pytest.mark.parametrize("alg", list(HashAlg))
def test_hmac_keyed_is_hmac(alg: HashAlg) -> None:
    """hmac_keyed (states after the pads computed once) is RFC 2104's HMAC for keys
    shorter than, as long as and longer than the hash's block, used many times."""
    rng = random.Random(alg)
    for n in (0, 1, 31, 32, 48, 63, 64, 65, 127, 128, 129, 300):
        key = rng.randbytes(n)
        mac = hmac_keyed(alg)(key)
        for m in (b"", b"x", rng.randbytes(200), rng.randbytes(1000)):
            assert mac(m) == hmac.new(key, m, alg.hashlib_name).digest()


@pytest.mark.parametrize("restart", [False, True])
def test_message_received_while_our_commit_is_pending_is_not_replayed(restart: bool) -> None:
    """A message of the old epoch received while our commit was pending used up its
    key (§9.2): after the merge it is refused as a replay, from the past epoch's
    tree, also when the group was restored from its saved state in between."""
    a, b = f.make_group(2)
    late = b.encrypt(b"late")
    a.commit()
    assert a.process(late).data == b"late"  # type: ignore[union-attr]
    if restart:
        a = Group.from_state(P, a.export_state())
    a.merge_pending_commit()
    before = a.export_state()
    with pytest.raises(ReplayError, match=r"§9\.2"):
        a.process(late)
    assert a.export_state() == before
    assert a.process(b.encrypt(b"next")).data == b"next"  # type: ignore[union-attr]
