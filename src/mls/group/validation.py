"""Validation rules for leaf nodes (RFC 9420 §7.3), proposals (§12.1) and
proposal lists (§12.2), each failure naming the rule it enforces."""

from __future__ import annotations

from collections.abc import Sequence

from .. import tree_math as tm
from ..commit import UpdatePath
from ..credentials import Credential
from ..crypto import CipherSuite
from ..errors import PublicKeyError, SignatureError, ValidationError
from ..extensions import (
    Extension,
    ExtensionType,
    RequiredCapabilities,
    check_unique_extensions,
    find_extension,
)
from ..framing import Sender, SenderType
from ..key_package import check_key_package, check_leaf_capabilities
from ..leaf_node import PROTOCOL_VERSION_MLS10, Capabilities, LeafNode, LeafNodeSource
from ..proposals import (
    Add,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    Proposal,
    ProposalType,
    ReInit,
    Remove,
    Update,
)
from ..psk import PSKType, ResumptionPSKUsage
from ..ratchet_tree import RatchetTree
from ..signature_key import check_signature_key
from .config import GroupConfig


def required_capabilities(extensions: Sequence[Extension]) -> RequiredCapabilities | None:
    data = find_extension(tuple(extensions), ExtensionType.REQUIRED_CAPABILITIES)
    return None if data is None else RequiredCapabilities.deserialize(data)


def supports_required(caps: Capabilities, req: RequiredCapabilities | None) -> bool:
    if req is None:
        return True
    return (
        all(e in caps.extensions or e in ExtensionType.DEFAULT for e in req.extension_types)
        and all(p in caps.proposals or p in ProposalType.DEFAULT for p in req.proposal_types)
        and all(c in caps.credentials for c in req.credential_types)
    )


def check_group_extensions(
    cs: CipherSuite, extensions: Sequence[Extension], tree: RatchetTree
) -> None:
    """A GroupContext extension list: unique types, supported by every member (§12.1.7)."""
    check_unique_extensions(tuple(extensions), "GroupContext")
    req = required_capabilities(extensions)
    # Default extension types need no support (§7.2): with none other and no
    # required capabilities, every member passes.
    special = [e.extension_type for e in extensions
               if e.extension_type not in ExtensionType.DEFAULT]
    if not special and req is None:
        return
    for i, leaf in tree.leaves():
        for t in special:
            if t not in leaf.capabilities.extensions:
                raise ValidationError(
                    f"member {i} does not support group extension 0x{t:04x} (§12.1.7)")
        if not supports_required(leaf.capabilities, req):
            raise ValidationError(
                f"member {i} does not support the group's required capabilities (§11.1)")
    del cs


class MemberIndex:
    """What the checks of a new leaf against every member (§7.3) need, gathered
    once: a commit adding many members then checks each in constant time
    instead of walking the whole tree per Add."""

    __slots__ = ("enc", "sig", "supported", "types_used")

    def __init__(self, tree: RatchetTree) -> None:
        self.enc: set[bytes] = set()
        self.sig: set[bytes] = set()
        self.types_used: set[int] = set()
        self.supported: set[int] | None = None  # credential types every member supports
        for _, leaf in tree.leaves():
            self.add(leaf)

    def add(self, leaf: LeafNode) -> None:
        self.enc.add(leaf.encryption_key)
        self.sig.add(leaf.signature_key)
        self.types_used.add(leaf.credential.credential_type)
        creds = set(leaf.capabilities.credentials)
        self.supported = creds if self.supported is None else self.supported & creds

    def fits(self, leaf: LeafNode) -> bool:
        """True when ``leaf`` passes every per-member check of :func:`check_leaf_node`."""
        return ((self.supported is None or leaf.credential.credential_type in self.supported)
                and self.types_used.issubset(leaf.capabilities.credentials)
                and leaf.encryption_key not in self.enc
                and leaf.signature_key not in self.sig)


def check_leaf_node(
    cs: CipherSuite,
    leaf: LeafNode,
    source: LeafNodeSource,
    tree: RatchetTree,
    group_extensions: Sequence[Extension],
    config: GroupConfig,
    *,
    group_id: bytes | None,
    leaf_index: int | None,
    replacing: int | None = None,
    check_signature: bool = True,
    members: MemberIndex | None = None,
) -> None:
    """Leaf node validation (RFC 9420 §7.3) against the group it joins.

    ``replacing`` is the leaf index whose old node is being replaced (its own
    keys do not count as duplicates). ``members``, an index of ``tree``'s
    leaves, lets a new leaf (no ``replacing``) skip the walk over the members
    when it passes; the walk still names the member behind a failure.
    """
    if leaf.leaf_node_source != source:
        raise ValidationError(
            f"leaf_node_source is {leaf.leaf_node_source.name}, expected {source.name} (§7.3)")
    if not config.credential_validator(leaf.credential, leaf.signature_key):
        raise ValidationError("the credential was rejected by the Authentication Service (§5.3.1)")
    check_signature_key(cs, leaf.signature_key)
    cs.check_hpke_public_key(leaf.encryption_key, "leaf encryption_key")
    if check_signature and not leaf.verify(cs, group_id, leaf_index):
        raise SignatureError("leaf node signature is invalid (§7.3)")
    check_leaf_capabilities(leaf)
    if cs.id not in leaf.capabilities.cipher_suites:
        raise ValidationError("leaf capabilities do not include the group's cipher suite (§7.2)")
    if not supports_required(leaf.capabilities, required_capabilities(group_extensions)):
        raise ValidationError("leaf does not support the group's required capabilities (§7.3)")
    if leaf.lifetime is not None:
        leaf.lifetime.check(config.clock() if config.clock is not None else None,
                            config.max_lifetime)
    if members is not None and replacing is None and members.fits(leaf):
        return
    ctype = leaf.credential.credential_type
    for i, other in tree.leaves():
        if i == replacing:
            continue
        if ctype not in other.capabilities.credentials:
            raise ValidationError(
                f"member {i} does not support credential type {ctype} (§7.3)")
        if other.credential.credential_type not in leaf.capabilities.credentials:
            raise ValidationError(
                f"leaf does not support credential type {other.credential.credential_type} "
                f"used by member {i} (§7.3)")
        if other.encryption_key == leaf.encryption_key:
            raise ValidationError(f"encryption_key duplicates that of member {i} (§7.3)")
        if other.signature_key == leaf.signature_key:
            raise ValidationError(f"signature_key duplicates that of member {i} (§7.3)")


def check_tree_on_join(
    cs: CipherSuite, tree: RatchetTree, group_id: bytes, tree_hash: bytes,
    group_extensions: Sequence[Extension], config: GroupConfig,
) -> None:
    """Validate a tree received with a Welcome or GroupInfo (§12.4.3.1)."""
    if tree.tree_hash() != tree_hash:
        raise ValidationError("ratchet tree hash does not match the GroupContext (§12.4.3.1)")
    if not tree.verify_parent_hashes():
        raise ValidationError("ratchet tree is not parent-hash valid (§7.9.2)")
    enc_keys: set[bytes] = set()
    sig_keys: set[bytes] = set()
    req = required_capabilities(group_extensions)
    for i, leaf in tree.leaves():
        check_signature_key(cs, leaf.signature_key)
        try:  # the leaf's index goes into the message only when it is needed
            cs.check_hpke_public_key(leaf.encryption_key, "leaf encryption_key")
        except PublicKeyError:
            cs.check_hpke_public_key(leaf.encryption_key, f"leaf {i} encryption_key")
        if leaf.leaf_node_source == LeafNodeSource.KEY_PACKAGE:
            ok = leaf.verify(cs)
        else:
            ok = leaf.verify(cs, group_id, i)
        if not ok:
            raise SignatureError(f"leaf {i} signature is invalid (§7.3)")
        if not config.credential_validator(leaf.credential, leaf.signature_key):
            raise ValidationError(
                f"leaf {i} credential rejected by the Authentication Service (§5.3.1)")
        check_leaf_capabilities(leaf)
        if cs.id not in leaf.capabilities.cipher_suites:
            raise ValidationError(f"leaf {i} does not support the group's cipher suite (§7.2)")
        if not supports_required(leaf.capabilities, req):
            raise ValidationError(f"leaf {i} does not support the required capabilities (§7.3)")
        if leaf.lifetime is not None:
            # Only the length: a member's leaf may have expired since it was added (§7.3).
            try:
                leaf.lifetime.check(None, config.max_lifetime)
            except ValidationError:
                leaf.lifetime.check(None, config.max_lifetime, f"leaf {i}")
        if leaf.encryption_key in enc_keys or leaf.signature_key in sig_keys:
            raise ValidationError(f"leaf {i} duplicates another member's key (§7.3)")
        enc_keys.add(leaf.encryption_key)
        sig_keys.add(leaf.signature_key)
    check_group_extensions(cs, group_extensions, tree)
    n = tree.n_leaves
    for x in range(1, len(tree.nodes), 2):
        node = tree.nodes[x]
        if node is None:
            continue
        cs.check_hpke_public_key(node.encryption_key, f"node {x} encryption_key")
        if node.encryption_key in enc_keys:
            raise ValidationError(f"node {x} reuses an encryption key (§12.4.3.1)")
        enc_keys.add(node.encryption_key)
        for u in node.unmerged_leaves:  # type: ignore[union-attr]
            # An unmerged leaf must exist and lie below the node, and every
            # parent between them must list it too (§12.4.3.1).
            if u >= n or tree.leaf(u) is None:
                raise ValidationError(
                    f"node {x} lists a blank or absent unmerged leaf {u} (§12.4.3.1)")
            if not tm.is_in_subtree(x, 2 * u):
                raise ValidationError(
                    f"node {x} lists unmerged leaf {u} outside its subtree (§12.4.3.1)")
            for p in tm.direct_path(2 * u, n):
                if p == x:
                    break
                between = tree.nodes[p]
                if between is not None and u not in between.unmerged_leaves:  # type: ignore[union-attr]
                    raise ValidationError(
                        f"node {p} between leaf {u} and node {x} does not list it as "
                        "unmerged (§12.4.3.1)")


def check_update_path(
    tree: RatchetTree, sender: int, path: UpdatePath, added: frozenset[int], external: bool,
    *, fdp: list[int] | None = None,
) -> None:
    """The shape and keys of a received UpdatePath against the tree the commit's
    proposals produced (§7.6, §12.4.2): one node per filtered direct path node,
    one ciphertext per node of each copath resolution, a new leaf encryption key
    and no public key that already appears in the tree. ``fdp`` is the sender's
    filtered direct path in ``tree`` when the caller already has it."""
    if fdp is None:
        fdp = tree.filtered_direct_path(sender)
    if len(fdp) != len(path.nodes):
        raise ValidationError(
            f"UpdatePath has {len(path.nodes)} nodes but the filtered direct path has "
            f"{len(fdp)} (§12.4.2)")
    copath = dict(zip(tree.direct_path(sender), tree.copath(sender), strict=True))
    for x, node in zip(fdp, path.nodes, strict=True):
        want = len(tree.resolution(copath[x], added))
        if len(node.encrypted_path_secret) != want:
            raise ValidationError(
                f"UpdatePathNode for node {x} has {len(node.encrypted_path_secret)} "
                f"ciphertexts for a copath resolution of {want} (§7.6)")
    current = tree.leaf(sender)
    if not external and current is not None \
            and current.encryption_key == path.leaf_node.encryption_key:
        raise ValidationError(
            "the committer's new leaf keeps its current encryption_key (§12.4.2)")
    in_tree = {n.encryption_key for i, n in enumerate(tree.nodes)
               if n is not None and not (external and i == 2 * sender)}
    new_keys = [path.leaf_node.encryption_key, *(n.encryption_key for n in path.nodes)]
    for key in new_keys:
        tree.cs.check_hpke_public_key(key, "UpdatePath encryption_key")
    if len(set(new_keys)) != len(new_keys) or in_tree.intersection(new_keys):
        raise ValidationError("an UpdatePath public key already appears in the tree (§12.4.2)")


def proposal_sender_allowed(p: Proposal, sender: Sender) -> bool:
    """Which senders may send which proposals (§12.1, §12.1.8)."""
    st = sender.sender_type
    if st == SenderType.MEMBER:
        return not isinstance(p, ExternalInit)
    if st == SenderType.EXTERNAL:
        return isinstance(p, Add | Remove | PreSharedKey | ReInit | GroupContextExtensions)
    if st == SenderType.NEW_MEMBER_PROPOSAL:
        return isinstance(p, Add)
    return False


def check_proposal_list(
    cs: CipherSuite,
    proposals: Sequence[tuple[Proposal, Sender]],
    committer: Sender,
    tree: RatchetTree,
    group_extensions: Sequence[Extension],
    config: GroupConfig,
    epoch: int,
    resumption_epochs: Sequence[int],
    joiner: Credential | None = None,
    *,
    group_id: bytes,
) -> None:
    """The rules of RFC 9420 §12.2 (and §12.4.3.2 for external commits, whose
    new leaf's credential is ``joiner``) for a commit in epoch ``epoch`` of
    group ``group_id``."""
    external_commit = committer.sender_type == SenderType.NEW_MEMBER_COMMIT
    touched: set[int] = set()
    added_sig_keys: set[bytes] = set()
    added_enc_keys: set[bytes] = set()
    psk_ids: set[bytes] = set()
    removed: set[int] = set()
    n_gce = n_reinit = n_ext_init = 0
    for p, sender in proposals:
        if not proposal_sender_allowed(p, sender) and not external_commit:
            raise ValidationError(
                f"{ProposalType.NAMES.get(p.TYPE, p.TYPE)} proposal from a "
                f"{sender.sender_type.name} sender is not allowed (§12.1)")
        if isinstance(p, Update):
            if committer.sender_type == SenderType.MEMBER and sender == committer:
                raise ValidationError(
                    "a commit must not include the committer's own Update (§12.2)")
            if sender.sender_type != SenderType.MEMBER:
                raise ValidationError("only members can send Update proposals (§12.1.2)")
            if sender.index in touched:
                raise ValidationError(
                    f"multiple Update/Remove proposals for leaf {sender.index} (§12.2)")
            touched.add(sender.index)
        elif isinstance(p, Remove):
            if tree.leaf(p.removed) is None:
                raise ValidationError(f"Remove targets blank or absent leaf {p.removed} (§12.1.3)")
            if committer.sender_type == SenderType.MEMBER and p.removed == committer.index:
                raise ValidationError("a commit must not remove the committer (§12.2)")
            if p.removed in touched:
                raise ValidationError(
                    f"multiple Update/Remove proposals for leaf {p.removed} (§12.2)")
            touched.add(p.removed)
            removed.add(p.removed)
        elif isinstance(p, PreSharedKey):
            pid = p.psk
            if len(pid.psk_nonce) != cs.hash_length:
                raise ValidationError("PSK nonce length must be KDF.Nh (§8.4)")
            if pid.psktype == PSKType.RESUMPTION:
                # reinit/branch PSKs only bind the first commit of a new group to
                # the old one (§11.2, §11.3, §12.1.4).
                if pid.usage != ResumptionPSKUsage.APPLICATION and epoch != 0:
                    raise ValidationError(
                        f"resumption PSK with usage {pid.usage.name.lower()} outside the "
                        "creation of a reinitialized or branched group (§12.1.4)")
                # The same lookup as resolve_psks: a PSK of another group (or of the
                # previous group, for reinit/branch) comes from the configuration,
                # one of this group from its own past epochs (§8.6).
                if pid.usage != ResumptionPSKUsage.APPLICATION or pid.psk_group_id != group_id:
                    if (pid.psk_group_id, pid.psk_epoch) not in config.resumption_psks:
                        raise ValidationError(
                            f"resumption PSK of epoch {pid.psk_epoch} of another group is "
                            "unknown (§8.6)")
                elif pid.psk_epoch not in resumption_epochs and pid.psk_epoch != epoch:
                    raise ValidationError(
                        f"resumption PSK for epoch {pid.psk_epoch} is unknown (§8.6)")
            elif pid.psk_id not in config.psks:
                raise ValidationError("external PSK is unknown (§12.1.4)")
            key = pid.serialize()
            if key in psk_ids:
                raise ValidationError("multiple PreSharedKey proposals with the same id (§12.2)")
            psk_ids.add(key)
        elif isinstance(p, GroupContextExtensions):
            n_gce += 1
        elif isinstance(p, ReInit):
            n_reinit += 1
            if p.version < PROTOCOL_VERSION_MLS10:
                raise ValidationError("ReInit to an older protocol version (§12.1.5)")
        elif isinstance(p, ExternalInit):
            n_ext_init += 1
    if n_gce > 1:
        raise ValidationError("multiple GroupContextExtensions proposals (§12.2)")
    if n_reinit and len(proposals) > 1:
        raise ValidationError("a ReInit proposal must be alone in a commit (§12.2)")
    if external_commit:
        if n_ext_init != 1:
            raise ValidationError("an external commit needs exactly one ExternalInit (§12.4.3.2)")
        for p, _ in proposals:
            if not isinstance(p, ExternalInit | Remove | PreSharedKey):
                raise ValidationError(
                    f"external commits must not contain {ProposalType.NAMES[p.TYPE]} "
                    "proposals (§12.4.3.2)")
        if len(removed) > 1:
            raise ValidationError("an external commit may remove at most one member (§12.4.3.2)")
        for r in removed:
            old = tree.leaf(r)
            if joiner is None or old is None or not config.same_client(old.credential, joiner):
                raise ValidationError(
                    f"an external commit may only remove the joiner's own old leaf, not leaf {r} "
                    "(§12.4.3.2)")
    # (An ExternalInit in a regular commit already failed the sender rule above, §12.2.)
    # Adds: valid KeyPackages, no duplicates among themselves or with members that stay.
    # The members that stay (and their signature keys, to the lowest leaf
    # holding each), gathered only when a check below needs them.
    staying: dict[int, LeafNode] | None = None
    staying_sigs: dict[bytes, int] = {}
    for p, _ in proposals:
        if not isinstance(p, Add):
            continue
        if staying is None:
            staying = {i: leaf for i, leaf in tree.leaves() if i not in removed}
            for i, other in staying.items():
                staying_sigs.setdefault(other.signature_key, i)
        leaf = p.key_package.leaf_node
        kp = p.key_package
        check_key_package(cs, kp, config.clock() if config.clock is not None else None,
                          config.max_lifetime)
        if leaf.signature_key in added_sig_keys or leaf.encryption_key in added_enc_keys:
            raise ValidationError("two Add proposals for the same client (§12.2)")
        added_sig_keys.add(leaf.signature_key)
        added_enc_keys.add(leaf.encryption_key)
        if leaf.signature_key in staying_sigs:
            raise ValidationError("Add for a client already in the group at leaf "
                                  f"{staying_sigs[leaf.signature_key]} (§12.2)")
    # Every member that stays must support each non-default proposal type.
    for p, _ in proposals:
        if p.TYPE not in ProposalType.DEFAULT:
            if staying is None:
                staying = {i: leaf for i, leaf in tree.leaves() if i not in removed}
            for i, leaf in staying.items():
                if p.TYPE not in leaf.capabilities.proposals:
                    raise ValidationError(f"member {i} does not support proposal type {p.TYPE}")
