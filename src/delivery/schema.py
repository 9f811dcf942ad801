"""The database tables, as SQLAlchemy Core objects for building queries.

The tables are created and changed only by the Alembic migrations in
:mod:`delivery.migrations`; this module mirrors the latest migration so that
queries are typed and checked. Internal primary keys are ``bigint``s; the
public names are ``users.username`` (the *user id* of the API and of MLS
credentials) and ``devices.device_id`` (a short random string unique per user).
"""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    func,
)

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("username", Text, nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

devices = Table(
    "devices",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("user_id", BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("device_id", Text, nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    Column("cipher_suite", Integer, nullable=False),
    # The suites it has published KeyPackages in (delivery.suites; migration 0004).
    Column("cipher_suites", ARRAY(Integer), nullable=False, server_default="{}"),
    Column("signature_key", LargeBinary, nullable=False, unique=True),
    # Per-device Welcome counter: bumped under the row lock, so inbox order has no gaps.
    Column("welcome_seq", BigInteger, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Set when the device is retired (device list or panic wipe): it never posts again.
    Column("retired_at", DateTime(timezone=True)),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("token_hash", LargeBinary, nullable=False, unique=True),
    Column("user_id", BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("device_pk", BigInteger, ForeignKey("devices.id", ondelete="CASCADE")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_used_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

mls_key_packages = Table(
    "mls_key_packages",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("user_id", BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("device_id", BigInteger, ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    Column("cipher_suite", Integer, nullable=False),
    Column("key_package_data", LargeBinary, nullable=False),
    # The KeyPackageRef (RFC 9420 §5.2): what a Welcome names its recipients by.
    Column("hash", LargeBinary, nullable=False, unique=True),
    Column("not_after", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_resort", Boolean, nullable=False, server_default="false"),
)

mls_groups = Table(
    "mls_groups",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("group_id", LargeBinary, nullable=False, unique=True),
    Column("cipher_suite", Integer, nullable=False),
    Column("created_by", BigInteger, ForeignKey("devices.id", ondelete="SET NULL")),
    Column("epoch", BigInteger, nullable=False, server_default="0"),
    # The sequence number of the last accepted message; the next one gets last_seq + 1.
    Column("last_seq", BigInteger, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

mls_group_members = Table(
    "mls_group_members",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("group_id", BigInteger, ForeignKey("mls_groups.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("device_id", BigInteger, ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    Column("leaf_index", Integer, nullable=False),
    # The device sees messages with seq > joined_seq and epoch >= joined_epoch ...
    Column("joined_epoch", BigInteger, nullable=False),
    Column("joined_seq", BigInteger, nullable=False),
    # ... up to and including the commit that removed it (NULL while it is a member).
    Column("removed_seq", BigInteger),
    Column("key_package_ref", LargeBinary),
    Column("welcomed", Boolean, nullable=False, server_default="false"),
    # The removal took a retired device's leaf: its user keeps the right to rejoin.
    Column("removed_retired", Boolean, nullable=False, server_default="false"),
)

# The latest GroupInfo of each group, written in the transaction of the commit that
# created its epoch (RFC 9420 §12.4.3).
mls_group_infos = Table(
    "mls_group_infos",
    metadata,
    Column("group_id", BigInteger, ForeignKey("mls_groups.id", ondelete="CASCADE"),
           primary_key=True),
    Column("epoch", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# A member's invitation for a user without a device in the group to join by external
# commit: valid until it expires, is revoked or consumed, or its inviter's user leaves.
mls_invitations = Table(
    "mls_invitations",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("invitation_id", Text, nullable=False, unique=True),
    Column("group_id", BigInteger, ForeignKey("mls_groups.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_by_user", BigInteger, ForeignKey("users.id", ondelete="CASCADE"),
           nullable=False),
    Column("created_by_device", BigInteger, ForeignKey("devices.id", ondelete="SET NULL")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("consumed_at", DateTime(timezone=True)),
    Column("consumed_by_device", BigInteger, ForeignKey("devices.id", ondelete="SET NULL")),
)

mls_messages = Table(
    "mls_messages",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("group_id", BigInteger, ForeignKey("mls_groups.id", ondelete="CASCADE"), nullable=False),
    # NULL for Welcomes: they travel through the inbox, not the group's ordered stream.
    Column("seq", BigInteger),
    Column("sender_device", BigInteger, ForeignKey("devices.id", ondelete="SET NULL")),
    Column("sender_leaf", Integer),
    Column("content_type", Text, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("digest", LargeBinary, nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("proposal_ref", LargeBinary),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

mls_welcome_inbox = Table(
    "mls_welcome_inbox",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("device_id", BigInteger, ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    Column("inbox_seq", BigInteger, nullable=False),
    Column("message_id", BigInteger, ForeignKey("mls_messages.id", ondelete="CASCADE"),
           nullable=False),
    Column("group_id", BigInteger, ForeignKey("mls_groups.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Failed logins per (address, account) and per account from untrusted addresses.
login_attempts = Table(
    "login_attempts",
    metadata,
    Column("key", Text, primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("blocked_until", DateTime(timezone=True)),
)

# Addresses an account logged in from successfully.
login_trusted = Table(
    "login_trusted",
    metadata,
    Column("user_id", BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("address", Text, primary_key=True),
    Column("last_success_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

rate_limits = Table(
    "rate_limits",
    metadata,
    Column("key", Text, primary_key=True),
    Column("tat", Double, nullable=False),
)
