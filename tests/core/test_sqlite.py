"""SQLite at one thread hop per statement (`core.sqlite`): the same results as sqlite3, one call on
aiosqlite's thread per statement."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine, session_factory
from core.tables import User


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'one-hop.db'}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
    yield engine
    await engine.dispose()


async def test_a_statement_is_one_call_on_the_connection_thread(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    run = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(fn)
        return await run(self, fn, *args, **kwargs)

    async with engine.connect() as connection:  # opened before counting: the pool's connect is not a statement
        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
        rows = (await connection.execute(text("SELECT 1 UNION ALL SELECT 2"))).scalars().all()
        assert rows == [1, 2]
        assert len(calls) == 1  # aiosqlite through SQLAlchemy's adapter: cursor, execute, fetchall, close = 4


async def test_rows_rowcount_and_lastrowid_are_sqlite3s(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        inserted = await connection.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert inserted.lastrowid == 1
        many = await connection.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "b"}, {"v": "c"}, {"v": "d"}])
        assert many.rowcount == 3
        updated = await connection.execute(text("UPDATE t SET v = v || '!' WHERE id > 2"))
        assert updated.rowcount == 2
        result = await connection.execute(text("SELECT id, v FROM t ORDER BY id"))
        assert result.keys() == ["id", "v"]
        assert [tuple(row) for row in result] == [(1, "a"), (2, "b"), (3, "c!"), (4, "d!")]
        assert (await connection.execute(text("SELECT v FROM t WHERE id = 99"))).first() is None


async def test_errors_are_the_drivers_and_the_connection_stays_usable(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("INSERT INTO t (v) VALUES ('same')"))
        with pytest.raises(IntegrityError):
            await connection.execute(text("INSERT INTO t (v) VALUES ('same')"))
        await connection.rollback()
        assert (await connection.execute(text("SELECT count(*) FROM t"))).scalar() == 0


async def test_the_orm_round_trips_through_it(tmp_path: Path, sqlite_database_url: str) -> None:
    engine = create_engine(sqlite_database_url)
    try:
        async with session_factory(engine)() as session:
            session.add(User(username="one-hop", name="One Hop"))
            await session.commit()
            user = await session.scalar(text("SELECT id FROM users WHERE username = 'one-hop'"))
            assert (await session.get(User, user)).name == "One Hop"
    finally:
        await engine.dispose()
