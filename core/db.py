"""The SQL database: async engines, sessions, and schema migrations applied with Alembic.

SQLite (the default, a file under the data directory) runs with foreign keys on and in WAL mode, so many
readers and one writer share it; PostgreSQL runs through asyncpg with a pre-pinged connection pool.

Migrations live in `core/migrations/` and are found relative to this module, so `upgrade()` works from any
working directory and from an installed package, without an `alembic.ini`.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from core.settings import Settings

__all__ = ["MIGRATIONS", "create_engine", "current_revision_ok", "session_factory", "upgrade"]

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().with_name("migrations")

_POOL = {"pool_size": 10, "max_overflow": 20, "pool_timeout": 30, "pool_recycle": 1800, "pool_pre_ping": True}
_SQLITE_BUSY_TIMEOUT_MS = 5000


def create_engine(settings: Settings | str, *, pooled: bool = True) -> AsyncEngine:
    """An engine for `settings.database` (or a URL given directly); `postgresql://` and `sqlite://` URLs
    without a driver get asyncpg and aiosqlite.

    `pooled=False` opens a connection per checkout, for one-shot commands and scripts.
    """
    url = make_url(settings if isinstance(settings, str) else settings.database)
    return _engine(url, pooled=pooled, foreign_keys=True)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def upgrade(url: str) -> None:
    """Apply every pending migration. Blocking: from async code, `await asyncio.to_thread(upgrade, url)`."""
    logger.info("migrating %s to head", make_url(url).render_as_string(hide_password=True))
    command.upgrade(_alembic_config(url), "head")


async def current_revision_ok(engine: AsyncEngine) -> bool:
    """True when the database's schema is at the newest migration."""
    heads = await asyncio.to_thread(_script_heads)
    async with engine.connect() as connection:
        current = await connection.run_sync(_database_heads)
    return current == heads


def _migration_engine(url: str) -> AsyncEngine:
    """The engine `core/migrations/env.py` runs on: unpooled, and on SQLite with foreign keys off,
    since batch migrations rebuild tables (foreign keys would cascade the drop of the old one)."""
    return _engine(make_url(url), pooled=False, foreign_keys=False)


def _engine(url: URL, *, pooled: bool, foreign_keys: bool) -> AsyncEngine:
    url = _async_driver(url)
    # hide_parameters: a failed statement's error and log never quote its values (user text, token digests)
    options: dict[str, Any] = {"hide_parameters": True} | ({} if pooled else {"poolclass": NullPool})
    if url.get_backend_name() != "sqlite":
        return create_async_engine(url, **((_POOL if pooled else {}) | options))
    _make_parent_dir(url)
    engine = create_async_engine(url, **options)
    event.listen(engine.sync_engine, "connect", partial(_sqlite_pragmas, foreign_keys=foreign_keys))
    return engine


def _async_driver(url: URL) -> URL:
    """Plain `postgresql://` (or `postgres://`) and `sqlite://` URLs get the async drivers."""
    if url.drivername in ("postgres", "postgresql"):
        return url.set(drivername="postgresql+asyncpg")
    if url.drivername == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    return url


def _make_parent_dir(url: URL) -> None:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, foreign_keys: bool) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _script_heads() -> set[str]:
    return set(ScriptDirectory.from_config(_alembic_config()).get_heads())


def _database_heads(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())
