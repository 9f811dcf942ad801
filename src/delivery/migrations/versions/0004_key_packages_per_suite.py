"""KeyPackage stocks per cipher suite, and the suites each device offers.

A device may publish KeyPackages in every supported suite its identity key signs in
(delivery.suites: e.g. suite 1 and the post-quantum 0x004F), with one last-resort
KeyPackage per suite: the unique index moves from ``(device_id)`` to
``(device_id, cipher_suite)``, and claims look KeyPackages up by suite.
``devices.cipher_suites``: the suites the device has published KeyPackages in (kept
when its KeyPackages are used up or deleted): the key directory lists them, and a
device may join groups of those suites by external commit.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("devices", sa.Column("cipher_suites", sa.ARRAY(sa.Integer), nullable=False,
                                       server_default="{}"))
    op.execute(
        "UPDATE devices d SET cipher_suites = ARRAY(SELECT DISTINCT k.cipher_suite FROM "
        "mls_key_packages k WHERE k.device_id = d.id ORDER BY 1)"
    )
    op.drop_index("mls_key_packages_one_last_resort", table_name="mls_key_packages")
    op.create_index(
        "mls_key_packages_one_last_resort",
        "mls_key_packages",
        ["device_id", "cipher_suite"],
        unique=True,
        postgresql_where=sa.text("last_resort"),
    )
    op.drop_index("mls_key_packages_claim_idx", table_name="mls_key_packages")
    op.create_index(
        "mls_key_packages_claim_idx",
        "mls_key_packages",
        ["device_id", "cipher_suite", "last_resort", "id"],
    )


def downgrade() -> None:
    op.drop_column("devices", "cipher_suites")
    # Keeps one last-resort KeyPackage per device (the newest) so the old index holds.
    op.execute(
        "DELETE FROM mls_key_packages k WHERE k.last_resort AND EXISTS ("
        "SELECT 1 FROM mls_key_packages o WHERE o.device_id = k.device_id "
        "AND o.last_resort AND o.id > k.id)"
    )
    op.drop_index("mls_key_packages_claim_idx", table_name="mls_key_packages")
    op.create_index(
        "mls_key_packages_claim_idx", "mls_key_packages", ["device_id", "last_resort", "id"]
    )
    op.drop_index("mls_key_packages_one_last_resort", table_name="mls_key_packages")
    op.create_index(
        "mls_key_packages_one_last_resort",
        "mls_key_packages",
        ["device_id"],
        unique=True,
        postgresql_where=sa.text("last_resort"),
    )
