"""Alembic migrations of the delivery service's schema, applied at start-up."""
