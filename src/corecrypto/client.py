"""``CoreCrypto``: one device identity and its MLS groups, bytes in and out.

The facade hides the protocol objects: group ids, KeyPackages, commits and
Welcomes are bytes; members are identities ``"<user_id>/<device_id>"``.
Everything is transactional: a call that raises changes nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from mls.codec import Reader, Writer
from mls.credentials import Credential, CredentialType
from mls.crypto import SUITES, CipherSuite, CryptoProvider, default_provider
from mls.errors import DecodeError
from mls.extensions import ExtensionType, find_extension
from mls.framing import SenderType
from mls.group import (
    ApplicationMessage,
    CommitMessage,
    Group,
    GroupConfig,
    GroupState,
    KeyPackageBundle,
    OwnMessage,
    ProposalMessage,
    Signer,
    Status,
    create_key_package,
    join_external,
    join_from_welcome,
)
from mls.group_info import GroupInfo
from mls.key_package import KeyPackage
from mls.message import MLSMessage
from mls.private_message import PrivateMessage
from mls.proposals import Add, ProposalType, Remove
from mls.public_message import PublicMessage
from mls.ratchet_tree import RatchetTree
from mls.welcome import Welcome

from .errors import (
    CoreCryptoError,
    GroupExistsError,
    NoMatchingKeyPackageError,
    UnknownGroupError,
    UnknownMemberError,
    UnsupportedSuiteError,
    WrongMessageTypeError,
)
from .kdf import DEFAULT_PARAMS, Argon2Params
from .kdf import derive_key_argon2id as _argon2id
from .results import (
    ApplicationReceived,
    CommitReceived,
    OwnMessageEcho,
    ProposalReceived,
    Received,
)

CLIENT_MAGIC = b"CCRY"
CLIENT_VERSION = 1

# Generations of our own application ratchet that a saved group state skips ahead of
# the one in memory (see :meth:`CoreCrypto.save_group_state`). Small against the
# receivers' maximum forward distance (1000) and out-of-order window (32).
RESERVED_GENERATIONS = 16


def _identity(credential: Credential | None) -> str | None:
    if credential is None or credential.credential_type != CredentialType.BASIC:
        return None
    return credential.identity.decode("utf-8", "replace")


def valid_identity(credential: Credential, signature_key: bytes) -> bool:
    """Our Authentication Service's syntax rule: a basic credential whose
    identity is ``"<user_id>/<device_id>"`` in UTF-8."""
    del signature_key
    if credential.credential_type != CredentialType.BASIC:
        return False
    try:
        user, sep, device = credential.identity.decode("utf-8").rpartition("/")
    except UnicodeDecodeError:
        return False
    return bool(sep and user and device)


def same_user(old: Credential, new: Credential) -> bool:
    """Our resync rule (RFC 9420 §12.4.3.2 leaves it to the application): an external
    commit may remove a leaf of the joiner's own *user*, so that a new or wiped device
    replaces that user's old device. The delivery service enforces the same rule."""
    if not (valid_identity(old, b"") and valid_identity(new, b"")):
        return False
    return old.identity.rpartition(b"/")[0] == new.identity.rpartition(b"/")[0]


@dataclass
class _StoredKeyPackage:
    bundle: KeyPackageBundle
    last_resort: bool


def usable_suites(ciphersuite: int) -> list[int]:
    """The suites a device whose identity key is of ``ciphersuite`` can sign in: those
    of the same signature scheme (RFC 9420 §5.1.1; e.g. suite 1 and the post-quantum
    0x004D-0x004F all sign with Ed25519). The delivery service applies the same rule."""
    params = SUITES.get(ciphersuite)
    if params is None:
        return []
    return sorted(s for s, p in SUITES.items() if p.signature == params.signature)


class CoreCrypto:
    """One device: a signature identity, unused KeyPackages and many groups.

    ``ciphersuite`` is the suite the identity key was made for (registered with the
    delivery service); KeyPackages and groups may use any suite of
    :func:`usable_suites` (the same key signs in all of them)."""

    def __init__(self, user_id: str, device_id: str, ciphersuite: int, signer: Signer,
                 provider: CryptoProvider) -> None:
        for name, value in (("user_id", user_id), ("device_id", device_id)):
            if not value or "/" in value:
                raise CoreCryptoError(f"{name} must be non-empty and contain no '/'")
        self.user_id = user_id
        self.device_id = device_id
        self.provider = provider
        self.cs = CipherSuite(ciphersuite, provider)
        self._suites: dict[int, CipherSuite] = {ciphersuite: self.cs}
        self.signer = signer
        self._key_packages: dict[bytes, _StoredKeyPackage] = {}
        self._groups: dict[bytes, Group] = {}
        # Groups we joined by external commit that the delivery service has not
        # accepted yet (RFC 9420 §12.4.3.2: the joiner's state is only valid then).
        self._joining: dict[bytes, Group] = {}
        # Application messages encrypted since the group's last save_group_state.
        self._sent_since_save: dict[bytes, int] = {}

    # -- identity ---------------------------------------------------------------------
    @classmethod
    def create(cls, user_id: str, device_id: str, ciphersuite: int = 1, *,
               provider: CryptoProvider | None = None) -> CoreCrypto:
        """A new device identity with a fresh signature key pair."""
        provider = provider or default_provider()
        cs = CipherSuite(ciphersuite, provider)
        signer = Signer.generate(cs, f"{user_id}/{device_id}".encode())
        return cls(user_id, device_id, ciphersuite, signer, provider)

    @property
    def identity(self) -> str:
        return f"{self.user_id}/{self.device_id}"

    @property
    def ciphersuite(self) -> int:
        return self.cs.id

    def suite(self, ciphersuite: int | None = None) -> CipherSuite:
        """The :class:`CipherSuite` of ``ciphersuite`` (default: the identity's), which
        must be one this identity can sign in."""
        if ciphersuite is None:
            return self.cs
        cs = self._suites.get(ciphersuite)
        if cs is None:
            if ciphersuite not in usable_suites(self.cs.id):
                raise UnsupportedSuiteError(
                    f"cipher suite 0x{ciphersuite:04x} is not usable with this device's "
                    f"identity key (suite 0x{self.cs.id:04x})")
            cs = self._suites[ciphersuite] = CipherSuite(ciphersuite, self.provider)
        return cs

    def group_suite(self, group_id: bytes) -> int:
        """The cipher suite of one of our groups."""
        return self._group(group_id).cipher_suite.id

    @property
    def signature_public_key(self) -> bytes:
        return self.signer.signature_pub

    def get_identity_fingerprint(self) -> str:
        """Lowercase SHA-256 hex of the identity's signature public key."""
        return hashlib.sha256(self.signer.signature_pub).hexdigest()

    @staticmethod
    def derive_key_argon2id(password: str, salt: bytes,
                            params: Argon2Params = DEFAULT_PARAMS) -> bytes:
        """Argon2id key (32 bytes by default; m=64 MiB, t=3, p=1 at least)."""
        return _argon2id(password, salt, params)

    def _config(self) -> GroupConfig:
        return GroupConfig(clock=lambda: int(time.time()), credential_validator=valid_identity,
                           same_client=same_user)

    # -- KeyPackages ------------------------------------------------------------------------
    def generate_key_packages(self, n: int, last_resort: bool = False, *,
                              ciphersuite: int | None = None) -> list[bytes]:
        """``n`` fresh KeyPackages (MLSMessage-wrapped) in ``ciphersuite`` (default: the
        identity's); private keys stay here."""
        if n < 0 or n > 1000:
            raise CoreCryptoError("generate between 0 and 1000 KeyPackages at a time")
        cs = self.suite(ciphersuite)
        out = []
        now = int(time.time())
        for _ in range(n):
            bundle = create_key_package(cs, self.signer, now=now, last_resort=last_resort)
            self._key_packages[bundle.key_package.ref(cs)] = _StoredKeyPackage(
                bundle, last_resort)
            out.append(MLSMessage.wrap(bundle.key_package).serialize())
        return out

    def key_package_count(self, ciphersuite: int | None = None) -> int:
        """Unused KeyPackage private keys held, in one suite or (None) in all."""
        return sum(1 for s in self._key_packages.values()
                   if ciphersuite is None or s.bundle.key_package.cipher_suite == ciphersuite)

    def forget_key_packages(self) -> None:
        """Drop every unused KeyPackage private key (e.g. after a server wipe)."""
        self._key_packages.clear()

    # -- groups -------------------------------------------------------------------------------
    def _group(self, group_id: bytes) -> Group:
        g = self._groups.get(bytes(group_id))
        if g is None:
            raise UnknownGroupError(f"no group {bytes(group_id).hex()} on this client")
        return g

    def group_ids(self) -> list[bytes]:
        return sorted(self._groups)

    def has_group(self, group_id: bytes) -> bool:
        return bytes(group_id) in self._groups

    def group(self, group_id: bytes) -> Group:
        """The underlying :class:`mls.group.Group` (advanced use)."""
        return self._group(group_id)

    def delete_group(self, group_id: bytes) -> None:
        self._groups.pop(bytes(group_id), None)
        self._sent_since_save.pop(bytes(group_id), None)

    def create_group(self, group_id: bytes, ciphersuite: int | None = None) -> None:
        """A new group with us alone, in ``ciphersuite`` (default: the identity's)."""
        gid = bytes(group_id)
        if not gid:
            raise CoreCryptoError("group id must not be empty")
        if gid in self._groups:
            raise GroupExistsError(f"group {gid.hex()} already exists")
        cs = self.suite(ciphersuite)
        self._groups[gid] = Group.create(self.provider, cs.id, gid, self.signer,
                                         config=self._config())

    def _parse_key_package(self, data: bytes) -> KeyPackage:
        msg = MLSMessage.deserialize(data)
        if not isinstance(msg.body, KeyPackage):
            raise WrongMessageTypeError(f"expected a KeyPackage, got {msg.wire_format.name}")
        return msg.body

    def add_member(self, group_id: bytes, key_package: bytes) -> tuple[bytes, bytes]:
        return self.add_members(group_id, [key_package])

    def add_members(self, group_id: bytes, key_packages: Sequence[bytes]) -> tuple[bytes, bytes]:
        """Commit adding members: (commit, welcome); the commit is pending."""
        if not key_packages:
            raise CoreCryptoError("add_members needs at least one KeyPackage")
        g = self._group(group_id)
        adds = [Add(self._parse_key_package(kp)) for kp in key_packages]
        out = g.commit(adds)
        assert out.welcome is not None
        return out.commit, out.welcome

    def _leaf_of(self, g: Group, identity: str) -> int:
        for i, leaf in g.members():
            if _identity(leaf.credential) == identity:
                return i
        raise UnknownMemberError(f"{identity} is not a member of the group")

    def remove_member(self, group_id: bytes, identity: str) -> bytes:
        g = self._group(group_id)
        leaf = self._leaf_of(g, identity)
        if leaf == g.leaf_index:
            raise CoreCryptoError("use leave_group to leave; a member cannot commit its removal")
        return g.commit([Remove(leaf)]).commit

    def remove_members(self, group_id: bytes, identities: Iterable[str]) -> bytes:
        g = self._group(group_id)
        return g.commit([Remove(self._leaf_of(g, i)) for i in identities]).commit

    def self_update(self, group_id: bytes) -> bytes:
        """An empty commit with a fresh path: post-compromise security (§12.4)."""
        return self._group(group_id).commit(include_pending=False).commit

    def commit_pending_proposals(self, group_id: bytes) -> tuple[bytes, bytes | None]:
        """Commit everything proposed so far (e.g. someone's leave)."""
        out = self._group(group_id).commit()
        return out.commit, out.welcome

    def commit(self, group_id: bytes, *, add: Sequence[bytes] = (),
               remove: Iterable[str] = (), include_pending: bool = True
               ) -> tuple[bytes, bytes | None]:
        """One commit adding the members of the KeyPackages ``add`` and removing
        the identities ``remove`` (with a path: post-compromise security, §12.4),
        plus the pending proposals: (commit, welcome or None). The commit is pending."""
        g = self._group(group_id)
        proposals: list[Add | Remove] = [Remove(self._leaf_of(g, i)) for i in remove]
        proposals += [Add(self._parse_key_package(kp)) for kp in add]
        out = g.commit(proposals, include_pending=include_pending)
        return out.commit, out.welcome

    def pending_commit_message(self, group_id: bytes) -> bytes | None:
        """The bytes of our pending commit, if any."""
        pc = self._group(group_id).state.pending_commit
        return None if pc is None else pc.message

    def pending_group_info(self, group_id: bytes) -> bytes:
        """The signed GroupInfo (with ``external_pub`` and ``ratchet_tree``) of the
        epoch our pending commit creates: the delivery service stores it with the
        commit, for external joins (§12.4.3.2)."""
        return self._group(group_id).pending_group_info()

    def leave_group(self, group_id: bytes) -> bytes:
        """A proposal to remove ourselves, for another member to commit."""
        return self._group(group_id).propose_leave()

    def merge_pending_commit(self, group_id: bytes) -> None:
        self._group(group_id).merge_pending_commit()

    def clear_pending_commit(self, group_id: bytes) -> None:
        self._group(group_id).clear_pending_commit()

    def has_pending_commit(self, group_id: bytes) -> bool:
        return self._group(group_id).has_pending_commit

    def group_info(self, group_id: bytes) -> bytes:
        return self._group(group_id).group_info()

    # -- joining ---------------------------------------------------------------------------------
    def process_welcome(self, welcome: bytes, ratchet_tree: bytes | None = None) -> bytes:
        """Join the group of a Welcome addressed to one of our KeyPackages."""
        msg = MLSMessage.deserialize(welcome)
        if not isinstance(msg.body, Welcome):
            raise WrongMessageTypeError(f"expected a Welcome, got {msg.wire_format.name}")
        stored = None
        for s in msg.body.secrets:
            stored = self._key_packages.get(s.new_member)
            if stored is not None:
                ref = s.new_member
                break
        if stored is None:
            raise NoMatchingKeyPackageError("the Welcome is for none of our KeyPackages")
        g = join_from_welcome(self.provider, msg, stored.bundle, ratchet_tree=ratchet_tree,
                              config=self._config())
        if g.group_id in self._groups:
            raise GroupExistsError(f"group {g.group_id.hex()} already exists on this client")
        self._groups[g.group_id] = g
        if not stored.last_resort:
            del self._key_packages[ref]  # one-time keys: forward secrecy of the init key
        return g.group_id

    def join_by_external_commit(self, group_info: bytes, *,
                                remove: str | None = None) -> tuple[bytes, bytes, bytes]:
        """Start joining a group by external commit (§12.4.3.2) from its GroupInfo:
        ``(group_id, commit, group_info)``, the last being the GroupInfo of the epoch
        the commit creates (for the delivery service). ``remove`` is an identity
        whose leaf the commit removes (resync: our own user's retired device).

        The group stays staged until :meth:`confirm_external_join` (the delivery
        service accepted the commit) or :meth:`abandon_external_join`."""
        body, leaves = self._info_leaves(group_info)
        self.suite(body.group_context.cipher_suite)  # one our identity key signs in
        remove_leaf = None
        if remove is not None:
            remove_leaf = next((i for i, ident in leaves if ident == remove), None)
            if remove_leaf is None:
                raise UnknownMemberError(f"{remove} is not a member of the group")
        joined = join_external(self.provider, group_info, self.signer, remove_prior=remove_leaf,
                               config=self._config())
        gid = joined.group.group_id
        if gid in self._groups:
            raise GroupExistsError(f"group {gid.hex()} already exists on this client")
        self._joining[gid] = joined.group
        return gid, joined.commit, joined.group.group_info()

    def _info_leaves(self, group_info: bytes) -> tuple[GroupInfo, list[tuple[int, str]]]:
        msg = MLSMessage.deserialize(group_info)
        body = msg.body
        if not isinstance(body, GroupInfo):
            raise WrongMessageTypeError(f"expected a GroupInfo, got {msg.wire_format.name}")
        data = find_extension(body.extensions, ExtensionType.RATCHET_TREE)
        if data is None:
            raise CoreCryptoError("the GroupInfo carries no ratchet tree")
        tree = RatchetTree.decode(CipherSuite(body.group_context.cipher_suite, self.provider),
                                  data)
        return body, [(i, _identity(leaf.credential) or "") for i, leaf in tree.leaves()]

    def group_info_members(self, group_info: bytes) -> tuple[bytes, int, list[str]]:
        """(group id, epoch, member identities in leaf order) of a GroupInfo with a
        ``ratchet_tree`` extension (not verified: for planning a join only)."""
        body, leaves = self._info_leaves(group_info)
        ctx = body.group_context
        return ctx.group_id, ctx.epoch, [ident for _, ident in leaves]

    def stage_external_join(self, state: bytes) -> bytes:
        """Restore a staged external join saved with :meth:`external_join_state`."""
        g = Group.from_state(self.provider, state, self._config())
        self._joining[g.group_id] = g
        return g.group_id

    def confirm_external_join(self, group_id: bytes) -> None:
        """The delivery service accepted our external commit: the group is ours."""
        g = self._joining.pop(bytes(group_id), None)
        if g is None:
            raise UnknownGroupError(f"no external join of {bytes(group_id).hex()} under way")
        self._groups[g.group_id] = g

    def abandon_external_join(self, group_id: bytes) -> None:
        self._joining.pop(bytes(group_id), None)

    def external_join_state(self, group_id: bytes) -> bytes:
        """The staged group of an external join, to persist before the commit leaves."""
        g = self._joining.get(bytes(group_id))
        if g is None:
            raise UnknownGroupError(f"no external join of {bytes(group_id).hex()} under way")
        return self._reserved_state(g)

    # -- messages ------------------------------------------------------------------------------
    def encrypt_message(self, group_id: bytes, plaintext: bytes) -> bytes:
        """An application message. Persist with :meth:`save_group_state` before it
        leaves when :meth:`must_save_before_sending` says so."""
        gid = bytes(group_id)
        out = self._group(gid).encrypt(plaintext)
        self._sent_since_save[gid] = self._sent_since(gid) + 1
        return out

    def _sent_since(self, gid: bytes) -> int:
        # A group never saved by this instance (new, joined, or loaded: the loaded
        # state sits exactly at its reservation) has nothing reserved.
        return self._sent_since_save.get(gid, RESERVED_GENERATIONS)

    def must_save_before_sending(self, group_id: bytes) -> bool:
        """Whether the last saved state of the group no longer reserves the
        generation of the message just encrypted (see :meth:`save_group_state`)."""
        return self._sent_since(bytes(group_id)) >= RESERVED_GENERATIONS

    def decrypt_message(self, group_id: bytes, ciphertext: bytes) -> tuple[str, bytes]:
        """(sender identity, plaintext) of an application message."""
        msg = MLSMessage.deserialize(ciphertext)
        if not isinstance(msg.body, PrivateMessage) or msg.body.content_type != 1:
            raise WrongMessageTypeError("not an application message")
        r = self.process_message(group_id, msg.serialize())
        if not isinstance(r, ApplicationReceived):
            raise WrongMessageTypeError(f"expected an application message, got {r.kind}")
        return r.sender, r.plaintext

    def process_commit(self, group_id: bytes, commit: bytes) -> None:
        msg = MLSMessage.deserialize(commit)
        body = msg.body
        ct = (body.content.content_type if isinstance(body, PublicMessage)
              else body.content_type if isinstance(body, PrivateMessage) else None)
        if ct != 3:
            raise WrongMessageTypeError("not a commit")
        self.process_message(group_id, commit)

    def process_message(self, group_id: bytes, message: bytes) -> Received:
        """Process any group message and report what it was."""
        g = self._group(group_id)
        r = g.process(message)
        if isinstance(r, ApplicationMessage):
            return ApplicationReceived(_identity(r.credential) or "", r.data, r.epoch)
        if isinstance(r, OwnMessage):
            return OwnMessageEcho(r.content_type, r.epoch)
        if isinstance(r, ProposalMessage):
            target = None
            if isinstance(r.proposal, Add):
                target = _identity(r.proposal.key_package.leaf_node.credential)
            elif isinstance(r.proposal, Remove):
                leaf = g.member(r.proposal.removed)
                target = _identity(leaf.credential) if leaf is not None else None
            return ProposalReceived(_identity(r.credential),
                                    ProposalType.NAMES.get(r.proposal.TYPE, "unknown"), target)
        assert isinstance(r, CommitMessage)
        if r.own:
            return CommitReceived(self.identity, r.epoch, own=True)
        added = [_identity(leaf.credential) or "" for i in r.added
                 if (leaf := g.member(i)) is not None]
        updated = [_identity(leaf.credential) or "" for i in r.updated
                   if (leaf := g.member(i)) is not None]
        return CommitReceived(_identity(r.credential), r.epoch, added,
                              [_identity(c) or "" for _, c in r.removed], updated, r.removed_self,
                              external=r.sender.sender_type == SenderType.NEW_MEMBER_COMMIT)

    # -- inspection --------------------------------------------------------------------------------
    def members(self, group_id: bytes) -> list[str]:
        return [_identity(leaf.credential) or "" for _, leaf in self._group(group_id).members()]

    def member_keys(self, group_id: bytes) -> dict[str, bytes]:
        """Identity -> signature public key, as the group's leaves present them."""
        return {_identity(leaf.credential) or "": leaf.signature_key
                for _, leaf in self._group(group_id).members()}

    def epoch(self, group_id: bytes) -> int:
        return self._group(group_id).epoch

    def epoch_authenticator(self, group_id: bytes) -> bytes:
        return self._group(group_id).epoch_authenticator

    def export_secret(self, group_id: bytes, label: str, context: bytes, length: int) -> bytes:
        return self._group(group_id).export_secret(label.encode(), context, length)

    def is_active(self, group_id: bytes) -> bool:
        return self._group(group_id).status == Status.ACTIVE

    # -- persistence ------------------------------------------------------------------------------
    def export_group_state(self, group_id: bytes) -> bytes:
        return self._group(group_id).export_state()

    def save_group_state(self, group_id: bytes) -> bytes:
        """The group's state for storage, with our own application ratchet moved
        :data:`RESERVED_GENERATIONS` ahead of the one in memory.

        A device must never use a sender generation twice (RFC 9420 §9.2: the
        receivers would reject the second message as a replay, and key/nonce reuse
        breaks AES-GCM). Saving after every message would cost a state write per
        message; instead, a saved state reserves the next generations, so after a
        crash the device resumes *after* any generation it may have used, and the
        state needs saving again only every :data:`RESERVED_GENERATIONS` messages
        (:meth:`must_save_before_sending`). Receivers skip the unused generations
        as out-of-order ones."""
        gid = bytes(group_id)
        data = self._reserved_state(self._group(gid))
        self._sent_since_save[gid] = 0
        return data

    @staticmethod
    def _reserved_state(g: Group) -> bytes:
        def reserve(st: GroupState) -> GroupState:
            tree = st.secret_tree.copy()
            for _ in range(RESERVED_GENERATIONS):
                tree.next_key(st.leaf_index, False)
            return replace(st, secret_tree=tree)

        st = reserve(g.state)
        if st.pending_commit is not None:  # the epoch it creates starts reserved too
            st = replace(st, pending_commit=replace(
                st.pending_commit, next_state=reserve(st.pending_commit.next_state)))
        return st.to_bytes()

    def import_group_state(self, state: bytes) -> bytes:
        """Restore (or replace) a group from :meth:`export_group_state`."""
        g = Group.from_state(self.provider, state, self._config())
        if g.cipher_suite.id not in usable_suites(self.cs.id):
            raise UnsupportedSuiteError("group state uses a cipher suite this identity "
                                        "cannot sign in")
        self._groups[g.group_id] = g
        self._sent_since_save.pop(g.group_id, None)
        return g.group_id

    def export_state(self, *, include_groups: bool = True) -> bytes:
        """The whole client (identity, KeyPackage keys, groups) as one versioned blob.

        Without groups it holds only the identity and KeyPackage keys, for callers
        that store each group separately (:meth:`export_group_state`)."""
        w = Writer()
        w.write(CLIENT_MAGIC)
        w.u16(CLIENT_VERSION)
        w.string(self.user_id)
        w.string(self.device_id)
        w.u16(self.cs.id)
        self.signer.encode(w)

        def kp(w2: Writer, item: tuple[bytes, _StoredKeyPackage]) -> None:
            item[1].bundle.encode(w2)
            w2.boolean(item[1].last_resort)

        def grp(w2: Writer, item: tuple[bytes, Group]) -> None:
            w2.opaque(item[1].export_state())

        w.vector(sorted(self._key_packages.items()), kp)
        w.vector(sorted(self._groups.items()) if include_groups else [], grp)
        return w.getvalue()

    @classmethod
    def import_state(cls, data: bytes, *, provider: CryptoProvider | None = None) -> CoreCrypto:
        provider = provider or default_provider()
        r = Reader(bytes(data))
        if r.read(4) != CLIENT_MAGIC:
            raise DecodeError("not an exported CoreCrypto client")
        version = r.u16()
        if version != CLIENT_VERSION:
            raise DecodeError(f"unsupported client state version {version}")
        user, device, suite = r.string(), r.string(), r.u16()
        client = cls(user, device, suite, Signer.decode(r), provider)

        def kp(r2: Reader) -> _StoredKeyPackage:
            return _StoredKeyPackage(KeyPackageBundle.decode(r2), r2.boolean())

        for stored in r.vector(kp):
            cs = client.suite(stored.bundle.key_package.cipher_suite)
            client._key_packages[stored.bundle.key_package.ref(cs)] = stored
        for state in r.vector(Reader.opaque):
            g = Group.from_state(provider, state, client._config())
            client._groups[g.group_id] = g
        r.finish("client state")
        return client
