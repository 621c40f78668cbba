"""Alembic environment for Switchboard, run by `core.db.upgrade` (or the `alembic` CLI given a Config).

The database URL comes from the Config's `sqlalchemy.url` main option; migrations run on an async engine
(SQLite via aiosqlite, PostgreSQL via asyncpg) through `connection.run_sync`. A caller that already holds a
sync-facing connection may pass it as `config.attributes["connection"]`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from core.db import _migration_engine
from core.tables import Base

config = context.config
target_metadata = Base.metadata


def _configure(**options: Any) -> None:
    context.configure(target_metadata=target_metadata, compare_type=True, **options)


def _run_on(connection: Connection) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def _run_online(url: str) -> None:
    engine = _migration_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_on)
    finally:
        await engine.dispose()


def _run_offline(url: str) -> None:
    _configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set the database URL as the Alembic Config's sqlalchemy.url main option")
    return url


def _main() -> None:
    if context.is_offline_mode():
        _run_offline(_url())
    elif (connection := config.attributes.get("connection")) is not None:
        _run_on(connection)
    else:
        asyncio.run(_run_online(_url()))


_main()
