"""Message protection vectors: PublicMessage signing and membership tags,
PrivateMessage encryption (RFC 9420 §6.2, §6.3)."""

from __future__ import annotations

from dataclasses import replace

from .. import private_message as pm
from ..codec import Reader
from ..commit import Commit
from ..crypto import CipherSuite, CryptoProvider
from ..errors import MLSError, ValidationError
from ..framing import AuthenticatedContent, ContentType, FramedContent, Sender, WireFormat
from ..group_context import GroupContext
from ..leaf_node import PROTOCOL_VERSION_MLS10
from ..message import MLSMessage
from ..private_message import PrivateMessage
from ..proposals import decode_proposal
from ..public_message import PublicMessage
from ..secret_tree import SecretTree
from .registry import Case, VectorMismatch
from .util import expect, expect_false, expect_rejected, expect_true, flip, h

SENDER = 1


class _Env:
    def __init__(self, case: Case, provider: CryptoProvider) -> None:
        self.cs = CipherSuite(case["cipher_suite"], provider)
        self.ctx = GroupContext(PROTOCOL_VERSION_MLS10, self.cs.id, h(case["group_id"]),
                                case["epoch"], h(case["tree_hash"]),
                                h(case["confirmed_transcript_hash"]))
        self.sig_priv = h(case["signature_priv"])
        self.sig_pub = h(case["signature_pub"])
        self.encryption_secret = h(case["encryption_secret"])
        self.sender_data_secret = h(case["sender_data_secret"])
        self.membership_key = h(case["membership_key"])

    def tree(self) -> SecretTree:
        return SecretTree(self.cs, self.encryption_secret, 2)

    def verify_public(self, name: str, data: bytes) -> AuthenticatedContent:
        msg = MLSMessage.deserialize(data)
        if not isinstance(msg.body, PublicMessage):
            raise VectorMismatch(f"{name} is not a PublicMessage")
        expect_true(f"{name} membership_tag",
                    msg.body.verify_membership_tag(self.cs, self.membership_key, self.ctx))
        ac = msg.body.authenticated_content
        expect(f"{name} sender", ac.content.sender, Sender.member(SENDER))
        expect_true(f"{name} signature", ac.verify(self.cs, self.sig_pub, self.ctx))
        # Corrupted variants: a flipped membership tag, a flipped signature.
        tag = msg.body.membership_tag or b""
        expect_false(f"{name} flipped membership_tag", replace(
            msg.body, membership_tag=flip(tag)).verify_membership_tag(
                self.cs, self.membership_key, self.ctx))
        expect_false(f"{name} flipped signature", replace(
            ac, auth=replace(ac.auth, signature=flip(ac.auth.signature))).verify(
                self.cs, self.sig_pub, self.ctx))
        return ac

    def unprotect(self, name: str, data: bytes, tree: SecretTree) -> AuthenticatedContent:
        msg = MLSMessage.deserialize(data)
        if not isinstance(msg.body, PrivateMessage):
            raise VectorMismatch(f"{name} is not a PrivateMessage")
        bad = replace(msg.body, ciphertext=flip(msg.body.ciphertext))
        expect_rejected(f"{name} flipped ciphertext", MLSError,
                        lambda: pm.decrypt(self.cs, bad, tree.copy(), self.sender_data_secret))
        ac = pm.decrypt(self.cs, msg.body, tree, self.sender_data_secret)
        expect(f"{name} sender", ac.content.sender, Sender.member(SENDER))
        expect_true(f"{name} signature", ac.verify(self.cs, self.sig_pub, self.ctx))
        return ac

    def sign(self, wf: WireFormat, ct: ContentType, content: object) -> AuthenticatedContent:
        framed = FramedContent(self.ctx.group_id, self.ctx.epoch, Sender.member(SENDER), b"",
                               ct, content)  # type: ignore[arg-type]
        ac = AuthenticatedContent.sign(self.cs, wf, framed, self.sig_priv, self.ctx)
        if ct == ContentType.COMMIT:
            # Any tag will do here: the confirmation key is not part of this vector.
            ac = AuthenticatedContent(ac.wire_format, ac.content,
                                      type(ac.auth)(ac.auth.signature, bytes(self.cs.hash_length)))
        return ac

    def check_kind(self, case: Case, kind: str, ct: ContentType, raw: object) -> None:
        if ct != ContentType.APPLICATION:
            ac = self.verify_public(f"{kind}_pub", h(case[f"{kind}_pub"]))
            expect(f"{kind}_pub content", ac.content.content, raw)
            mine = PublicMessage.protect(
                self.cs, self.sign(WireFormat.PUBLIC_MESSAGE, ct, raw), self.membership_key,
                self.ctx)
            self.verify_public(f"{kind} protected", MLSMessage.wrap(mine).serialize())
        else:
            try:
                PublicMessage.protect(self.cs, self.sign(WireFormat.PUBLIC_MESSAGE, ct, raw),
                                      self.membership_key, self.ctx)
            except ValidationError:
                pass
            else:
                raise VectorMismatch("application data was accepted as a PublicMessage")
        ac = self.unprotect(f"{kind}_priv", h(case[f"{kind}_priv"]), self.tree())
        expect(f"{kind}_priv content", ac.content.content, raw)
        sent = pm.encrypt(self.cs, self.sign(WireFormat.PRIVATE_MESSAGE, ct, raw), self.tree(),
                          self.sender_data_secret)
        ac = self.unprotect(f"{kind} protected", MLSMessage.wrap(sent).serialize(), self.tree())
        expect(f"{kind} protected content", ac.content.content, raw)


def check(case: Case, provider: CryptoProvider) -> None:
    env = _Env(case, provider)
    r = Reader(h(case["proposal"]))
    proposal = decode_proposal(r)
    r.finish("proposal")
    env.check_kind(case, "proposal", ContentType.PROPOSAL, proposal)
    env.check_kind(case, "commit", ContentType.COMMIT, Commit.deserialize(h(case["commit"])))
    env.check_kind(case, "application", ContentType.APPLICATION, h(case["application"]))
