"""Alembic environment: runs the revisions on the connection the service hands in.

The service applies migrations itself at start-up (see
:func:`delivery.db.run_migrations`), passing an open synchronous connection
through ``config.attributes["connection"]``; there is no ``alembic.ini`` and no
offline mode.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from delivery.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise RuntimeError(
        "delivery migrations run inside the service: use `python -m delivery migrate`"
    )
_run(_connection)
