import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from core.db import create_engine, current_revision_ok, session_factory, upgrade
from core.settings import Settings
from core.tables import Base, User


async def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            session.add(User(username="kept", name="Kept"))
            await session.commit()
        await asyncio.to_thread(upgrade, database_url)
        await asyncio.to_thread(upgrade, database_url)
        assert await current_revision_ok(engine)
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT username FROM users"))).scalars().all() == ["kept"]
    finally:
        await engine.dispose()


async def test_an_unmigrated_database_is_not_at_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # migrations are found from any working directory
    url = "sqlite+aiosqlite:///fresh.db"
    engine = create_engine(url)
    try:
        assert not await current_revision_ok(engine)
        await asyncio.to_thread(upgrade, url)
        assert await current_revision_ok(engine)
    finally:
        await engine.dispose()


async def test_migrations_match_the_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
    finally:
        await engine.dispose()
    assert diff == []


async def test_sqlite_gets_its_directory_foreign_keys_and_wal(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "nested" / "data", database_url=None)
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
    finally:
        await engine.dispose()
    assert (tmp_path / "nested" / "data" / "switchboard.db").exists()


async def test_urls_without_an_async_driver_get_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    try:
        assert engine.url.drivername == "sqlite+aiosqlite"
        assert await current_revision_ok(engine)
    finally:
        await engine.dispose()
    assert create_engine("postgres://user@localhost/db").url.drivername == "postgresql+asyncpg"


async def test_every_database_statement_is_bounded(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            if engine.dialect.name == "postgresql":
                assert driver._config.command_timeout == 30.0  # asyncpg raises TimeoutError past it
            else:
                assert (await connection.execute(text("PRAGMA busy_timeout"))).scalar() == 5000
    finally:
        await engine.dispose()


@pytest.mark.parametrize("pooled", [pytest.param(True, id="pooled"), pytest.param(False, id="unpooled")])
async def test_a_failed_statement_never_quotes_its_parameters(database_url: str, pooled: bool) -> None:
    """Statements carry user text and token digests: SQLAlchemy's errors and logs leave the values out."""
    engine = create_engine(database_url, pooled=pooled)
    try:
        async with engine.connect() as connection:
            with pytest.raises(Exception) as failure:
                await connection.execute(text("SELECT username FROM no_such_table WHERE username = :name"),
                                         {"name": "a private question"})
        assert "a private question" not in str(failure.value)
        assert "hidden due to hide_parameters" in str(failure.value)
    finally:
        await engine.dispose()
