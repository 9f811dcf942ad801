"""Fan-out notifications leave the write transaction.

A NOTIFY inside the transaction that stores a message holds PostgreSQL's
cluster-wide notification lock from pre-commit until the commit record is
flushed, so every message-storing transaction waited for the previous one's
fsync: measured here, 184 instead of ~600 writes/s into one group and 572
instead of ~3,000 across 1,000 groups. The service now notifies after COMMIT,
in batches, from a connection with ``synchronous_commit = off`` (see
:mod:`delivery.hub`), so these triggers go.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-28
"""

from __future__ import annotations

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Drop the notification triggers and their functions."""
    op.execute("DROP TRIGGER IF EXISTS mls_welcome_inbox_notify ON mls_welcome_inbox")
    op.execute("DROP TRIGGER IF EXISTS mls_messages_notify ON mls_messages")
    op.execute("DROP FUNCTION IF EXISTS mls_notify_welcome()")
    op.execute("DROP FUNCTION IF EXISTS mls_notify_message()")


def downgrade() -> None:
    """Restore the in-transaction triggers of revision 0001."""
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
