"""GroupInfos, retired devices, invitations to join, login throttling.

* ``mls_group_infos``: the latest GroupInfo of each group (RFC 9420 §12.4.3),
  stored in the transaction of the commit that created its epoch; what the
  server verifies external commits against and hands to authorized joiners.
* ``devices.retired_at``: a retired device can never authenticate or be added
  again; its leaves are removed by the members' next commits.
* ``mls_group_members.removed_retired``: the removal took a retired device's
  leaf, so its user keeps the right to rejoin (the device was wiped or
  replaced, the user was not removed).
* ``mls_invitations``: a member's invitation for a user with no device in the
  group to join by external commit; it expires, can be revoked, and is
  consumed by the user's first accepted join.
* ``login_attempts`` / ``login_trusted``: failed-login backoff per (address,
  account) and the addresses an account has logged in from.

Revision ID: 0003
Revises: 0002
Create Date: 2025-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_NOW = sa.text("now()")


def upgrade() -> None:
    """Create the tables and columns above."""
    op.create_table(
        "mls_group_infos",
        sa.Column(
            "group_id",
            sa.BigInteger,
            sa.ForeignKey("mls_groups.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    )
    op.add_column("devices", sa.Column("retired_at", sa.DateTime(timezone=True)))
    op.add_column(
        "mls_group_members",
        sa.Column("removed_retired", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("mls_group_members_user_idx", "mls_group_members", ["group_id", "user_id"])
    op.create_table(
        "mls_invitations",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("invitation_id", sa.Text, nullable=False, unique=True),
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
            "created_by_user",
            sa.BigInteger,
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "created_by_device", sa.BigInteger, sa.ForeignKey("devices.id", ondelete="SET NULL")
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("consumed_at", sa.DateTime(timezone=True)),
        sa.Column(
            "consumed_by_device", sa.BigInteger, sa.ForeignKey("devices.id", ondelete="SET NULL")
        ),
    )
    op.create_index("mls_invitations_group_user_idx", "mls_invitations", ["group_id", "user_id"])
    op.create_index("mls_invitations_user_idx", "mls_invitations", ["user_id"])
    op.create_table(
        "login_attempts",
        # 'pair:<address>:<username>' or 'account:<username>'
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "login_trusted",
        sa.Column(
            "user_id", sa.BigInteger, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=_NOW),
        sa.PrimaryKeyConstraint("user_id", "address"),
    )


def downgrade() -> None:
    """Drop what :func:`upgrade` created."""
    op.drop_table("login_trusted")
    op.drop_table("login_attempts")
    op.drop_table("mls_invitations")
    op.drop_index("mls_group_members_user_idx", table_name="mls_group_members")
    op.drop_column("mls_group_members", "removed_retired")
    op.drop_column("devices", "retired_at")
    op.drop_table("mls_group_infos")
