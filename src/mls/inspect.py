"""Read what a server may know from MLS bytes, without any keys.

The Delivery Service routes and orders messages but never decrypts: from a
PublicMessage it reads group, epoch, sender and proposals; from a
PrivateMessage only the unencrypted header (RFC 9420 §6.3); it verifies
KeyPackages (§10.1) and reads the recipients of a Welcome (§12.4.3.1).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .commit import Commit
from .credentials import CredentialType
from .crypto import CipherSuite, default_provider
from .errors import ValidationError
from .extensions import ExtensionType, find_extension
from .framing import ContentType, SenderType, WireFormat
from .key_package import KeyPackage, check_key_package
from .message import MLSMessage
from .private_message import PrivateMessage
from .proposals import Add, Proposal, ProposalType, Remove
from .public_message import PublicMessage
from .welcome import Welcome

_CONTENT = {ContentType.APPLICATION: "application", ContentType.PROPOSAL: "proposal",
            ContentType.COMMIT: "commit"}
_SENDER = {SenderType.MEMBER: "member", SenderType.EXTERNAL: "external",
           SenderType.NEW_MEMBER_PROPOSAL: "new_member_proposal",
           SenderType.NEW_MEMBER_COMMIT: "new_member_commit"}


@dataclass(frozen=True)
class KeyPackageSummary:
    cipher_suite: int
    identity: bytes
    signature_key: bytes
    ref: bytes
    not_before: int
    not_after: int
    last_resort: bool


@dataclass(frozen=True)
class ProposalSummary:
    proposal_type: str
    added_identity: bytes | None = None
    added_key_package_ref: bytes | None = None
    removed_leaf: int | None = None
    #: For an Add: its KeyPackage, verified (both signatures, lifetime; §10.1).
    added_key_package: KeyPackageSummary | None = None


@dataclass(frozen=True)
class MessageSummary:
    wire_format: str
    group_id: bytes
    epoch: int
    content_type: str
    sender_type: str | None
    sender_leaf: int | None
    proposals: list[ProposalSummary]
    proposal_refs: list[bytes]
    proposal_ref: bytes | None
    has_path: bool
    #: For a commit, one flag per entry of its proposal list, in order: True for a
    #: reference, False for a proposal by value. The interleaving decides the
    #: order Adds apply in, hence each joiner's leaf (RFC 9420 §12.3).
    by_reference: tuple[bool, ...] = ()


@dataclass(frozen=True)
class WelcomeSummary:
    cipher_suite: int
    new_member_refs: list[bytes]


def _summarize_proposal(cs: CipherSuite, p: Proposal, now: int | None) -> ProposalSummary:
    name = ProposalType.NAMES.get(p.TYPE, f"unknown({p.TYPE})")
    if isinstance(p, Add):
        cred = p.key_package.leaf_node.credential
        identity = cred.identity if cred.credential_type == CredentialType.BASIC else None
        if p.key_package.cipher_suite != cs.id:
            raise ValidationError("an Add's KeyPackage is for another cipher suite (§12.1.1)")
        return ProposalSummary(name, added_identity=identity,
                               added_key_package_ref=p.key_package.ref(cs),
                               added_key_package=_key_package_summary(cs, p.key_package, now))
    if isinstance(p, Remove):
        return ProposalSummary(name, removed_leaf=p.removed)
    return ProposalSummary(name)


def summarize_message(data: bytes, cipher_suite: int, now: int | None = None) -> MessageSummary:
    """Summary of a PublicMessage or PrivateMessage. The message's own signature is not
    checked (see :mod:`mls.public_group`); the KeyPackages of Adds are (§10.1), their
    lifetimes against ``now`` if given."""
    msg = MLSMessage.deserialize(data)
    cs = CipherSuite(cipher_suite, default_provider())
    body = msg.body
    if isinstance(body, PrivateMessage):
        return MessageSummary("private_message", body.group_id, body.epoch,
                              _CONTENT[body.content_type], None, None, [], [], None, False)
    if not isinstance(body, PublicMessage):
        raise ValidationError(
            f"expected a PublicMessage or PrivateMessage, got {msg.wire_format.name}")
    c = body.content
    sender_leaf = c.sender.index if c.sender.sender_type == SenderType.MEMBER else None
    proposals: list[ProposalSummary] = []
    refs: list[bytes] = []
    ref = None
    has_path = False
    if c.content_type == ContentType.APPLICATION:
        raise ValidationError("application data MUST NOT be sent as a PublicMessage (§6.2)")
    by_reference: tuple[bool, ...] = ()
    if isinstance(c.content, Commit):
        by_reference = tuple(por.reference is not None for por in c.content.proposals)
        for por in c.content.proposals:
            if por.proposal is not None:
                proposals.append(_summarize_proposal(cs, por.proposal, now))
            elif por.reference is not None:
                refs.append(por.reference)
        has_path = c.content.path is not None
    elif not isinstance(c.content, bytes):
        proposals.append(_summarize_proposal(cs, c.content, now))
        ref = body.authenticated_content.proposal_ref(cs)
    return MessageSummary("public_message", c.group_id, c.epoch, _CONTENT[c.content_type],
                          _SENDER[c.sender.sender_type], sender_leaf, proposals, refs, ref,
                          has_path, by_reference)


def verify_key_package(data: bytes, now: int | None = None) -> KeyPackageSummary:
    """Parse and verify an ``MLSMessage(KeyPackage)`` (§10.1)."""
    msg = MLSMessage.deserialize(data)
    if not isinstance(msg.body, KeyPackage):
        raise ValidationError(f"expected a KeyPackage, got {msg.wire_format.name}")
    kp = msg.body
    cs = CipherSuite(kp.cipher_suite, default_provider())
    return _key_package_summary(cs, kp, int(time.time()) if now is None else now)


def _key_package_summary(cs: CipherSuite, kp: KeyPackage, now: int | None) -> KeyPackageSummary:
    check_key_package(cs, kp, now)
    leaf = kp.leaf_node
    if leaf.credential.credential_type != CredentialType.BASIC:
        raise ValidationError("only basic credentials are accepted by this service")
    assert leaf.lifetime is not None
    return KeyPackageSummary(
        kp.cipher_suite, leaf.credential.identity, leaf.signature_key, kp.ref(cs),
        leaf.lifetime.not_before, leaf.lifetime.not_after,
        find_extension(kp.extensions, ExtensionType.LAST_RESORT) is not None)


def summarize_welcome(data: bytes) -> WelcomeSummary:
    msg = MLSMessage.deserialize(data)
    if not isinstance(msg.body, Welcome):
        raise ValidationError(f"expected a Welcome, got {msg.wire_format.name}")
    if msg.wire_format != WireFormat.WELCOME:
        raise ValidationError("wire format is not mls_welcome")
    return WelcomeSummary(msg.body.cipher_suite, [s.new_member for s in msg.body.secrets])
