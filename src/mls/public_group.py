"""A group's public state, as a non-member such as the delivery service sees it.

Every commit can travel with the GroupInfo of the epoch it creates (RFC 9420
§12.4.3). From such a GroupInfo, with its ``ratchet_tree`` extension, a party
that holds no key of the group still learns the group's public state: the
GroupContext, every member's credential and signature key, and the
``external_pub`` key. That is enough to check, without decrypting anything:

* the GroupInfo itself: its signature by its signer's leaf, and that the tree
  hashes to the context's ``tree_hash`` (§12.4.3, §7.8);
* a member's PublicMessage: its FramedContent signature under the sender's leaf
  key and the GroupContext (§6.1; the membership tag needs the membership key,
  which only members have, §6.2);
* an external commit: its structure (§12.4.3.2), its new leaf's signature
  (§7.3) and its FramedContent signature under that leaf's key (§6.1);
* that the GroupInfo posted with a commit belongs to that commit: same group,
  the next epoch, the commit's confirmation tag, and the confirmed transcript
  hash the commit produces from the previous epoch's (§8.2).

What stays unverifiable without the epoch secrets: membership tags,
confirmation tags, the ``external_pub`` key (derived from the epoch secret,
§8), and anything encrypted (UpdatePath secrets, PrivateMessages, Welcomes).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from .commit import Commit
from .credentials import CredentialType
from .crypto import CipherSuite, CryptoProvider, default_provider
from .errors import SignatureError, ValidationError
from .extensions import ExtensionType, ExternalPub, check_unique_extensions, find_extension
from .framing import PROTOCOL_VERSION, AuthenticatedContent, ContentType, SenderType
from .group_context import GroupContext
from .group_info import GroupInfo
from .leaf_node import LeafNode, LeafNodeSource
from .message import MLSMessage
from .proposals import ExternalInit, GroupContextExtensions, PreSharedKey, Remove
from .public_message import PublicMessage
from .ratchet_tree import RatchetTree
from .transcript import confirmed_transcript_hash, interim_transcript_hash


@dataclass(frozen=True, slots=True)
class MemberLeaf:
    """The public facts of one leaf: who it claims to be and its signature key."""

    leaf_index: int
    #: The BasicCredential identity; ``None`` for other credential types.
    identity: bytes | None
    signature_key: bytes

    @classmethod
    def of(cls, leaf_index: int, leaf: LeafNode) -> MemberLeaf:
        cred = leaf.credential
        identity = cred.identity if cred.credential_type == CredentialType.BASIC else None
        return cls(leaf_index, identity, leaf.signature_key)


@dataclass(frozen=True, slots=True)
class PublicGroup:
    """A group's public state at one epoch, read from a verified GroupInfo."""

    cs: CipherSuite
    group_info: GroupInfo
    tree: RatchetTree

    @property
    def context(self) -> GroupContext:
        return self.group_info.group_context

    @property
    def group_id(self) -> bytes:
        return self.context.group_id

    @property
    def epoch(self) -> int:
        return self.context.epoch

    @property
    def signer(self) -> MemberLeaf:
        member = self.member(self.group_info.signer)
        assert member is not None  # read_group_info checked it
        return member

    def member(self, leaf_index: int) -> MemberLeaf | None:
        leaf = self.tree.leaf(leaf_index)
        return None if leaf is None else MemberLeaf.of(leaf_index, leaf)

    def members(self) -> list[MemberLeaf]:
        return [MemberLeaf.of(i, leaf) for i, leaf in self.tree.leaves()]


@dataclass(frozen=True, slots=True)
class ExternalJoinCommit:
    """What a verified external commit does: who joins at which leaf, and which
    leaf (the joiner's own earlier one, when resynchronising) it removes."""

    joiner: MemberLeaf
    removed_leaf: int | None


def _public_message(data: bytes) -> PublicMessage:
    msg = MLSMessage.deserialize(data)
    if not isinstance(msg.body, PublicMessage):
        raise ValidationError(f"expected a PublicMessage, got {msg.wire_format.name}")
    return msg.body


def _confirmation_tag(cs: CipherSuite, ac: AuthenticatedContent) -> bytes:
    tag = ac.auth.confirmation_tag
    if tag is None or len(tag) != cs.hash_length:
        raise ValidationError("a commit needs a confirmation_tag of the MAC's length (§6.1)")
    return tag


def read_group_info(data: bytes, provider: CryptoProvider | None = None) -> PublicGroup:
    """Parse an ``MLSMessage(GroupInfo)`` and check everything a non-member can
    (§12.4.3): a known cipher suite, unique extensions, a ``ratchet_tree``
    extension whose tree hashes to the context's ``tree_hash``, an
    ``external_pub`` extension, and the signature of the signer's leaf."""
    msg = MLSMessage.deserialize(data)
    if not isinstance(msg.body, GroupInfo):
        raise ValidationError(f"expected a GroupInfo, got {msg.wire_format.name}")
    gi = msg.body
    ctx = gi.group_context
    if ctx.version != PROTOCOL_VERSION:
        raise ValidationError(f"GroupContext version {ctx.version} is not mls10 (§8.1)")
    cs = CipherSuite(ctx.cipher_suite, provider or default_provider())
    check_unique_extensions(gi.extensions, "GroupInfo")
    check_unique_extensions(ctx.extensions, "GroupContext")
    tree_data = find_extension(gi.extensions, ExtensionType.RATCHET_TREE)
    if tree_data is None:
        raise ValidationError("the GroupInfo has no ratchet_tree extension (§12.4.3.3)")
    pub = find_extension(gi.extensions, ExtensionType.EXTERNAL_PUB)
    if pub is None or not ExternalPub.deserialize(pub).external_pub:
        raise ValidationError("the GroupInfo has no external_pub extension (§12.4.3.2)")
    if len(gi.confirmation_tag) != cs.hash_length:
        raise ValidationError("the GroupInfo's confirmation_tag has the wrong length (§8.1)")
    tree = RatchetTree.decode(cs, tree_data)
    if not hmac.compare_digest(tree.tree_hash(), ctx.tree_hash):
        raise ValidationError("the ratchet tree does not hash to the GroupContext's tree_hash")
    signer = tree.leaf(gi.signer)
    if signer is None:
        raise ValidationError(f"the GroupInfo's signer (leaf {gi.signer}) is not a member")
    if not gi.verify(cs, signer.signature_key):
        raise SignatureError("the GroupInfo signature is invalid (§12.4.3)")
    return PublicGroup(cs, gi, tree)


def _framed_commit(group: PublicGroup, msg: PublicMessage) -> Commit:
    c = msg.content
    if c.group_id != group.group_id:
        raise ValidationError("the message is for another group")
    if c.epoch != group.epoch:
        raise ValidationError(f"the message is for epoch {c.epoch}, the group is at {group.epoch}")
    if not isinstance(c.content, Commit):
        raise ValidationError("expected a commit")
    return c.content


def verify_member_message(group: PublicGroup, data: bytes) -> MemberLeaf:
    """Check a member's PublicMessage (proposal or commit) of this epoch: its
    sender leaf exists and its signature verifies under that leaf's key and the
    GroupContext (§6.1). Returns the sender. The membership tag is not checked:
    it needs the membership key (§6.2)."""
    msg = _public_message(data)
    c = msg.content
    if c.sender.sender_type != SenderType.MEMBER:
        raise ValidationError("the message is not from a member")
    if c.group_id != group.group_id or c.epoch != group.epoch:
        raise ValidationError("the message is not for this group's current epoch")
    sender = group.member(c.sender.index)
    if sender is None:
        raise ValidationError(f"sender leaf {c.sender.index} is not a member (§6.2)")
    if not msg.authenticated_content.verify(group.cs, sender.signature_key, group.context):
        raise SignatureError("the PublicMessage signature is invalid (§6.1)")
    if c.content_type == ContentType.COMMIT:
        _confirmation_tag(group.cs, msg.authenticated_content)
    return sender


def verify_external_commit(group: PublicGroup, data: bytes) -> ExternalJoinCommit:
    """Check an external commit (§12.4.3.2) against the epoch it joins.

    Structure: proposals by value only, exactly one ExternalInit, otherwise only
    PreSharedKey and at most one Remove of an existing leaf, and an UpdatePath
    whose leaf node has source ``commit``. Signatures: the new leaf's, bound to
    the group and the leaf index it takes (§7.3), and the FramedContent's under
    that leaf's key and the GroupContext (§6.1).
    """
    msg = _public_message(data)
    if msg.content.sender.sender_type != SenderType.NEW_MEMBER_COMMIT:
        raise ValidationError("the message is not an external commit")
    commit = _framed_commit(group, msg)
    n_init = 0
    removed: int | None = None
    for por in commit.proposals:
        p = por.proposal
        if p is None:
            raise ValidationError("an external commit includes proposals by value only (§12.4.3.2)")
        if isinstance(p, ExternalInit):
            n_init += 1
        elif isinstance(p, Remove):
            if removed is not None:
                raise ValidationError("an external commit removes at most one leaf (§12.4.3.2)")
            if group.tree.leaf(p.removed) is None:
                raise ValidationError(f"Remove of leaf {p.removed}, which is blank (§12.1.3)")
            removed = p.removed
        elif not isinstance(p, PreSharedKey):
            raise ValidationError(
                f"an external commit must not contain a {type(p).__name__} proposal (§12.4.3.2)")
    if n_init != 1:
        raise ValidationError("an external commit needs exactly one ExternalInit (§12.4.3.2)")
    if commit.path is None:
        raise ValidationError("an external commit must carry an UpdatePath (§12.4.3.2)")
    leaf = commit.path.leaf_node
    if leaf.leaf_node_source != LeafNodeSource.COMMIT:
        raise ValidationError("the UpdatePath's leaf node must have source commit (§7.3)")
    tree = group.tree if removed is None else group.tree.remove_leaf(removed)
    _, index = tree.add_leaf(leaf)
    cs = group.cs
    if not leaf.verify(cs, group.group_id, index):
        raise SignatureError("the joiner's leaf node signature is invalid (§7.3)")
    ac = msg.authenticated_content
    if not ac.verify(cs, leaf.signature_key, group.context):
        raise SignatureError("the external commit's signature is invalid (§6.1)")
    _confirmation_tag(cs, ac)
    return ExternalJoinCommit(MemberLeaf.of(index, leaf), removed)


def check_next_group_info(
    previous: PublicGroup | None, commit: bytes, following: PublicGroup, committer_leaf: int
) -> None:
    """Check that ``following`` is the GroupInfo of the epoch ``commit`` creates.

    Always: the same group and cipher suite, the next epoch, signed by the
    committer's leaf (``committer_leaf``, where the joiner landed for an
    external commit), and carrying the commit's confirmation tag. With the
    ``previous`` epoch's state also: the confirmed transcript hash is the one the
    commit produces (§8.2), and the GroupContext extensions are unchanged unless
    the commit carries a GroupContextExtensions proposal by value (then they are
    its). The confirmation tag itself is a MAC under an epoch secret: only
    members can check it.
    """
    msg = _public_message(commit)
    c = msg.content
    if not isinstance(c.content, Commit):
        raise ValidationError("expected a commit")
    ctx = following.context
    if ctx.group_id != c.group_id:
        raise ValidationError("the GroupInfo is for another group")
    if ctx.epoch != c.epoch + 1:
        raise ValidationError(
            f"the GroupInfo is for epoch {ctx.epoch}, the commit creates epoch {c.epoch + 1}")
    if following.group_info.signer != committer_leaf:
        raise ValidationError(
            f"the GroupInfo is signed by leaf {following.group_info.signer}, not by the "
            f"committer's leaf {committer_leaf}")
    ac = msg.authenticated_content
    tag = _confirmation_tag(following.cs, ac)
    if not hmac.compare_digest(tag, following.group_info.confirmation_tag):
        raise ValidationError("the GroupInfo does not carry the commit's confirmation_tag")
    if previous is None:
        return
    cs = previous.cs
    if ctx.cipher_suite != cs.id or previous.group_id != c.group_id or previous.epoch != c.epoch:
        raise ValidationError("the commit does not follow the previous GroupInfo's epoch")
    interim = interim_transcript_hash(cs, previous.context.confirmed_transcript_hash,
                                      previous.group_info.confirmation_tag)
    if not hmac.compare_digest(confirmed_transcript_hash(cs, interim, ac),
                               ctx.confirmed_transcript_hash):
        raise ValidationError(
            "the GroupInfo's confirmed_transcript_hash is not the one this commit produces (§8.2)")
    by_value = [p.proposal for p in c.content.proposals if p.proposal is not None]
    if len(by_value) < len(c.content.proposals):
        return  # a GroupContextExtensions proposal may hide behind a reference
    changes = [p for p in by_value if isinstance(p, GroupContextExtensions)]
    expected = changes[-1].extensions if changes else previous.context.extensions
    if tuple(ctx.extensions) != tuple(expected):
        raise ValidationError("the GroupInfo's GroupContext extensions do not follow the commit")


__all__ = [
    "ExternalJoinCommit",
    "MemberLeaf",
    "PublicGroup",
    "check_next_group_info",
    "read_group_info",
    "verify_external_commit",
    "verify_member_message",
]
