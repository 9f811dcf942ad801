"""Initial schema: accounts, devices, sessions, KeyPackages, groups, messages, Welcome inbox.

Revision ID: 0001
Revises:
Create Date: 2025-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_NOW = sa.text("now()")


def _ts(name: str, *, default: bool = True) -> sa.Column[object]:
    return sa.Column(
        name, sa.DateTime(timezone=True), nullable=False, server_default=_NOW if default else None
    )


def upgrade() -> None:
    """Create every table, index and notification trigger."""
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("username", sa.Text, nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "user_id", sa.BigInteger, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False, server_default=""),
        sa.Column("cipher_suite", sa.Integer, nullable=False),
        sa.Column("signature_key", sa.LargeBinary, nullable=False, unique=True),
        sa.Column("welcome_seq", sa.BigInteger, nullable=False, server_default="0"),
        _ts("created_at"),
        sa.UniqueConstraint("user_id", "device_id", name="devices_user_device_key"),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("token_hash", sa.LargeBinary, nullable=False, unique=True),
        sa.Column(
            "user_id", sa.BigInteger, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("device_pk", sa.BigInteger, sa.ForeignKey("devices.id", ondelete="CASCADE")),
        _ts("created_at"),
        _ts("last_used_at"),
        _ts("expires_at", default=False),
    )
    op.create_index("sessions_user_idx", "sessions", ["user_id"])
    op.create_index("sessions_expires_idx", "sessions", ["expires_at"])

    op.create_table(
        "mls_key_packages",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "user_id", sa.BigInteger, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "device_id",
            sa.BigInteger,
            sa.ForeignKey("devices.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("cipher_suite", sa.Integer, nullable=False),
        sa.Column("key_package_data", sa.LargeBinary, nullable=False),
        sa.Column("hash", sa.LargeBinary, nullable=False, unique=True),
        sa.Column("not_after", sa.BigInteger, nullable=False),
        _ts("created_at"),
        sa.Column("last_resort", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index(
        "mls_key_packages_claim_idx", "mls_key_packages", ["device_id", "last_resort", "id"]
    )
    op.create_index("mls_key_packages_user_idx", "mls_key_packages", ["user_id"])
    # At most one last-resort KeyPackage per device: a new one replaces the old.
    op.create_index(
        "mls_key_packages_one_last_resort",
        "mls_key_packages",
        ["device_id"],
        unique=True,
        postgresql_where=sa.text("last_resort"),
    )

    op.create_table(
        "mls_groups",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("group_id", sa.LargeBinary, nullable=False, unique=True),
        sa.Column("cipher_suite", sa.Integer, nullable=False),
        sa.Column("created_by", sa.BigInteger, sa.ForeignKey("devices.id", ondelete="SET NULL")),
        sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint("epoch >= 0 AND last_seq >= 0", name="mls_groups_counters_check"),
    )
    op.create_table(
        "mls_group_members",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "group_id",
            sa.BigInteger,
            sa.ForeignKey("mls_groups.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "user_id", sa.BigInteger, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "device_id",
            sa.BigInteger,
            sa.ForeignKey("devices.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("leaf_index", sa.Integer, nullable=False),
        sa.Column("joined_epoch", sa.BigInteger, nullable=False),
        sa.Column("joined_seq", sa.BigInteger, nullable=False),
        sa.Column("removed_seq", sa.BigInteger),
        sa.Column("key_package_ref", sa.LargeBinary),
        sa.Column("welcomed", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    # A device holds at most one leaf of a group, and a leaf at most one device, at a time;
    # removed members keep their row (it bounds what they may still read).
    op.create_index(
        "mls_group_members_current_device",
        "mls_group_members",
        ["group_id", "device_id"],
        unique=True,
        postgresql_where=sa.text("removed_seq IS NULL"),
    )
    op.create_index(
        "mls_group_members_current_leaf",
        "mls_group_members",
        ["group_id", "leaf_index"],
        unique=True,
        postgresql_where=sa.text("removed_seq IS NULL"),
    )
    op.create_index("mls_group_members_device_idx", "mls_group_members", ["device_id", "group_id"])
    op.create_index(
        "mls_group_members_kp_ref_idx",
        "mls_group_members",
        ["key_package_ref"],
        postgresql_where=sa.text("key_package_ref IS NOT NULL"),
    )

    op.create_table(
        "mls_messages",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "group_id",
            sa.BigInteger,
            sa.ForeignKey("mls_groups.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("seq", sa.BigInteger),
        sa.Column(
            "sender_device", sa.BigInteger, sa.ForeignKey("devices.id", ondelete="SET NULL")
        ),
        sa.Column("sender_leaf", sa.Integer),
        sa.Column("content_type", sa.Text, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("digest", sa.LargeBinary, nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("proposal_ref", sa.LargeBinary),
        _ts("created_at"),
        sa.CheckConstraint(
            "content_type IN ('application', 'proposal', 'commit', 'welcome')",
            name="mls_messages_content_type_check",
        ),
        sa.CheckConstraint(
            "(content_type = 'welcome') = (seq IS NULL)", name="mls_messages_seq_check"
        ),
    )
    op.create_index(
        "mls_messages_group_seq", "mls_messages", ["group_id", "seq"], unique=True
    )
    # A retried POST of the same bytes finds the first copy instead of storing a second.
    op.create_index(
        "mls_messages_group_digest", "mls_messages", ["group_id", "digest"], unique=True
    )
    op.create_index(
        "mls_messages_proposal_ref_idx",
        "mls_messages",
        ["group_id", "epoch", "proposal_ref"],
        postgresql_where=sa.text("proposal_ref IS NOT NULL"),
    )

    op.create_table(
        "mls_welcome_inbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "device_id",
            sa.BigInteger,
            sa.ForeignKey("devices.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("inbox_seq", sa.BigInteger, nullable=False),
        sa.Column(
            "message_id",
            sa.BigInteger,
            sa.ForeignKey("mls_messages.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "group_id",
            sa.BigInteger,
            sa.ForeignKey("mls_groups.id", ondelete="CASCADE"),
            nullable=False,
        ),
        _ts("created_at"),
        sa.UniqueConstraint("device_id", "inbox_seq", name="mls_welcome_inbox_device_seq_key"),
    )

    op.create_table(
        "rate_limits",
        sa.Column("key", sa.Text, primary_key=True),
        # GCRA "theoretical arrival time", seconds since the epoch.
        sa.Column("tat", sa.Double, nullable=False),
    )

    # Fan-out: every accepted message and Welcome raises a NOTIFY that PostgreSQL delivers
    # only when (and if) the inserting transaction commits, to every server process.
    op.execute(
        """
        CREATE FUNCTION mls_notify_message() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('mls_events', 'm:' || NEW.group_id || ':' || NEW.seq);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER mls_messages_notify AFTER INSERT ON mls_messages
        FOR EACH ROW WHEN (NEW.seq IS NOT NULL) EXECUTE FUNCTION mls_notify_message()
        """
    )
    op.execute(
        """
        CREATE FUNCTION mls_notify_welcome() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('mls_events', 'w:' || NEW.device_id || ':' || NEW.inbox_seq);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER mls_welcome_inbox_notify AFTER INSERT ON mls_welcome_inbox
        FOR EACH ROW EXECUTE FUNCTION mls_notify_welcome()
        """
    )


def downgrade() -> None:
    """Drop everything :func:`upgrade` created."""
    op.execute("DROP TRIGGER IF EXISTS mls_welcome_inbox_notify ON mls_welcome_inbox")
    op.execute("DROP TRIGGER IF EXISTS mls_messages_notify ON mls_messages")
    op.execute("DROP FUNCTION IF EXISTS mls_notify_welcome()")
    op.execute("DROP FUNCTION IF EXISTS mls_notify_message()")
    for table in (
        "rate_limits",
        "mls_welcome_inbox",
        "mls_messages",
        "mls_group_members",
        "mls_groups",
        "mls_key_packages",
        "sessions",
        "devices",
        "users",
    ):
        op.drop_table(table)
