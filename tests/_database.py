"""Real databases for tests (a pytest plugin: list it in `pytest_plugins`).

- `database_urls` (session): SQLite always, plus PostgreSQL when `TEST_DATABASE_URL` is set; each is
  migrated to head once per run. PostgreSQL's `public` schema is dropped and recreated first, so runs repeat.
- `database_url` (function, parametrized `sqlite` / `postgresql`): a clean, migrated database for one test:
  a private copy of the migrated SQLite template, or the PostgreSQL database with every table truncated.
- `session`: an `AsyncSession` on `database_url`; its engine is disposed afterwards.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from core.db import create_engine, session_factory, upgrade

__all__ = ["database_url", "database_urls", "session", "sqlite_database_url"]

_POSTGRES = os.environ.get("TEST_DATABASE_URL") or None
_BACKENDS = ["sqlite", "postgresql"] if _POSTGRES else ["sqlite"]


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Migrated database URLs: the SQLite template first, then PostgreSQL when configured."""
    template = tmp_path_factory.mktemp("database") / "template.db"
    urls = [f"sqlite+aiosqlite:///{template}"] + ([_POSTGRES] if _POSTGRES else [])
    # Alembic runs its own event loop (asyncio.run); keep it off the thread pytest-asyncio's loops live on.
    with ThreadPoolExecutor(1) as pool:
        if _POSTGRES:
            pool.submit(asyncio.run, _on_postgres(_POSTGRES, _reset_schema)).result()
        for url in urls:
            pool.submit(upgrade, url).result()
    return urls


@pytest.fixture(params=_BACKENDS)
async def database_url(request: pytest.FixtureRequest, database_urls: list[str], tmp_path: Path) -> str:
    """A clean, migrated database for this test."""
    if request.param == "sqlite":
        copy = tmp_path / "test.db"
        _copy_sqlite(Path(make_url(database_urls[0]).database or ""), copy)
        return f"sqlite+aiosqlite:///{copy}"
    await _on_postgres(database_urls[1], _truncate)
    return database_urls[1]


@pytest.fixture
def sqlite_database_url(database_urls: list[str], tmp_path: Path) -> str:
    """A clean, migrated SQLite database, for modules whose checks do not depend on the backend (they
    override `database_url` with it)."""
    copy = tmp_path / "test.db"
    _copy_sqlite(Path(make_url(database_urls[0]).database or ""), copy)
    return f"sqlite+aiosqlite:///{copy}"


@pytest.fixture
async def session(database_url: str) -> AsyncIterator[AsyncSession]:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            yield session
    finally:
        await engine.dispose()


def _copy_sqlite(source: Path, target: Path) -> None:
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


async def _on_postgres(url: str, step: Callable[[AsyncConnection], Awaitable[None]]) -> None:
    engine = create_engine(url, pooled=False)
    try:
        async with engine.begin() as connection:
            await step(connection)
    finally:
        await engine.dispose()


async def _reset_schema(connection: AsyncConnection) -> None:
    await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
    await connection.execute(text("CREATE SCHEMA public"))


async def _truncate(connection: AsyncConnection) -> None:
    query = text(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"
    )
    quote = connection.dialect.identifier_preparer.quote
    tables = ", ".join(quote(name) for name in (await connection.execute(query)).scalars())
    if tables:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
