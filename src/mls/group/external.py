"""Proposals from outside the group (RFC 9420 §12.1.8): by a server listed in
the ``external_senders`` extension, or a new member's own Add."""

from __future__ import annotations

from ..crypto import CipherSuite
from ..errors import ValidationError
from ..extensions import ExtensionType, decode_external_senders, find_extension
from ..framing import (
    AuthenticatedContent,
    ContentType,
    FramedContent,
    Sender,
    SenderType,
    WireFormat,
)
from ..group_context import GroupContext
from ..message import MLSMessage
from ..proposals import Add, Proposal
from ..public_message import PublicMessage
from .identity import KeyPackageBundle, Signer
from .validation import proposal_sender_allowed


def _sign(cs: CipherSuite, context: GroupContext, sender: Sender, signature_priv: bytes,
          proposal: Proposal, authenticated_data: bytes) -> bytes:
    if not proposal_sender_allowed(proposal, sender):
        raise ValidationError(f"{type(proposal).__name__} from a {sender.sender_type.name} "
                              "sender is not allowed (§12.1.8)")
    framed = FramedContent(context.group_id, context.epoch, sender, authenticated_data,
                           ContentType.PROPOSAL, proposal)
    # Non-member senders sign without the group context and carry no membership tag (§6.1, §6.2).
    ac = AuthenticatedContent.sign(cs, WireFormat.PUBLIC_MESSAGE, framed, signature_priv, None)
    return MLSMessage.wrap(PublicMessage.protect(cs, ac, None, context)).serialize()


def external_sender_index(context: GroupContext, signature_pub: bytes) -> int:
    """Our index in the group's ``external_senders`` extension (§12.1.8.1)."""
    data = find_extension(context.extensions, ExtensionType.EXTERNAL_SENDERS)
    senders = decode_external_senders(data) if data is not None else ()
    for i, s in enumerate(senders):
        if s.signature_key == signature_pub:
            return i
    raise ValidationError("this signer is not in the group's external_senders (§12.1.8.1)")


def external_proposal(cs: CipherSuite, context: GroupContext, signer: Signer, proposal: Proposal,
                      authenticated_data: bytes = b"") -> bytes:
    """A proposal signed by an external sender of the group in ``context``
    (Add, Remove, PreSharedKey, ReInit or GroupContextExtensions, §12.1.8.1)."""
    if context.cipher_suite != cs.id:
        raise ValidationError("cipher suite differs from the group's")
    index = external_sender_index(context, signer.signature_pub)
    return _sign(cs, context, Sender(SenderType.EXTERNAL, index), signer.signature_priv,
                 proposal, authenticated_data)


def new_member_add_proposal(cs: CipherSuite, context: GroupContext, bundle: KeyPackageBundle,
                            authenticated_data: bytes = b"") -> bytes:
    """A would-be member's Add of its own KeyPackage, signed with the KeyPackage's
    key (sender type new_member_proposal, §12.1.8)."""
    kp = bundle.key_package
    if kp.cipher_suite != context.cipher_suite or cs.id != context.cipher_suite:
        raise ValidationError("KeyPackage cipher suite differs from the group's (§12.1.8)")
    return _sign(cs, context, Sender(SenderType.NEW_MEMBER_PROPOSAL), bundle.signature_priv,
                 Add(kp), authenticated_data)


__all__ = ["external_proposal", "external_sender_index", "new_member_add_proposal"]
