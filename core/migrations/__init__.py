"""Alembic migrations of the Switchboard schema (applied by `core.db.upgrade`)."""
