"""SQLite at one thread hop per statement (`core.sqlite`): the same results as sqlite3, one call on
aiosqlite's thread per statement."""

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine, session_factory
from core.errors import Overloaded
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


# -- write turns ---------------------------------------------------------------------------------------


def _until_waiting_for_the_turn(connection: Any) -> None:
    """On a helper thread: returns once a statement of `connection` (sqlite3's) waits in `_WriteTurn.take`
    (fails after 10 s)."""
    for _ in range(10_000):
        if any(frame.f_code.co_qualname == "_WriteTurn.take" and frame.f_locals.get("connection") is connection
               for frame in sys._current_frames().values()):
            return
        time.sleep(0.001)
    raise AssertionError("the connection's statement does not wait for the write turn")


async def test_writers_of_one_process_take_turns_instead_of_polling_sqlite(engine: AsyncEngine) -> None:
    """The second writer waits for the first one's commit on the turn, not in SQLite's busy handler: with
    SQLite's wait switched off it would fail at once ("database is locked")."""
    async with engine.connect() as first, engine.connect() as second:
        await second.exec_driver_sql("PRAGMA busy_timeout = 0")
        await first.execute(text("INSERT INTO t (v) VALUES ('first')"))  # its write transaction is open

        async def write_second() -> None:
            await second.execute(text("INSERT INTO t (v) VALUES ('second')"))
            await second.commit()

        raw = (await second.get_raw_connection()).dbapi_connection._connection._conn  # type: ignore[union-attr]
        writing = asyncio.create_task(write_second())
        await asyncio.to_thread(_until_waiting_for_the_turn, raw)
        assert not writing.done()
        await first.commit()
        await writing
        rows = (await first.execute(text("SELECT v FROM t ORDER BY id"))).scalars().all()
    assert rows == ["first", "second"]


async def test_reads_do_not_wait_for_the_write_turn(engine: AsyncEngine) -> None:
    async with engine.connect() as writer, engine.connect() as reader:
        await writer.execute(text("INSERT INTO t (v) VALUES ('committed')"))
        await writer.commit()
        await writer.execute(text("INSERT INTO t (v) VALUES ('open')"))  # holds the turn
        await reader.exec_driver_sql("PRAGMA busy_timeout = 0")
        assert (await reader.execute(text("SELECT v FROM t"))).scalars().all() == ["committed"]
        await writer.rollback()


async def test_the_turn_is_given_back_by_commit_rollback_a_failed_write_and_close(engine: AsyncEngine) -> None:
    """After each way a write transaction ends, another connection writes at once (SQLite's wait off: a turn
    kept would make it wait the busy timeout, then fail)."""
    async with engine.connect() as other:
        await other.exec_driver_sql("PRAGMA busy_timeout = 0")

        async def other_writes(value: str) -> None:
            await other.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
            await other.commit()

        async with engine.connect() as connection:
            await connection.execute(text("INSERT INTO t (v) VALUES ('kept')"))
            await connection.commit()
            await other_writes("after commit")
            await connection.execute(text("INSERT INTO t (v) VALUES ('dropped')"))
            await connection.rollback()
            await other_writes("after rollback")
            with pytest.raises(IntegrityError):  # the first write of a transaction fails
                await connection.execute(text("INSERT INTO t (v) VALUES ('kept')"))
            await connection.rollback()
            await other_writes("after a failed write")
            await connection.execute(text("INSERT INTO t (v) VALUES ('lost')"))
            await connection.invalidate()  # its sqlite3 connection is closed, the transaction with it
        await other_writes("after close")
        rows = (await other.execute(text("SELECT v FROM t ORDER BY id"))).scalars().all()
    assert rows == ["kept", "after commit", "after rollback", "after a failed write", "after close"]


async def test_a_writer_that_does_not_get_its_turn_in_time_is_refused_as_overloaded(engine: AsyncEngine) -> None:
    async with engine.connect() as holder, engine.connect() as late:
        await holder.execute(text("INSERT INTO t (v) VALUES ('held')"))
        with pytest.raises(Overloaded):  # after the busy timeout (5 s), as SQLite's own wait would
            await late.execute(text("INSERT INTO t (v) VALUES ('late')"))
        await late.rollback()
        await holder.commit()


async def test_a_writer_whose_connection_started_closing_while_it_waited_does_not_keep_the_turn(engine: AsyncEngine) -> None:
    """A connection closed without waiting for its statement (SQLAlchemy's forced close of an invalidated
    connection) while that statement waits for the turn: the statement gets the turn later, finds its
    connection closing and gives the turn back instead of keeping it for good."""
    async with engine.connect() as first, engine.connect() as second, engine.connect() as third:
        await third.exec_driver_sql("PRAGMA busy_timeout = 0")
        raw = (await second.get_raw_connection()).dbapi_connection._connection._conn  # type: ignore[union-attr]
        await first.execute(text("INSERT INTO t (v) VALUES ('first')"))
        waiting = asyncio.create_task(second.execute(text("INSERT INTO t (v) VALUES ('second')")))
        await asyncio.to_thread(_until_waiting_for_the_turn, raw)
        raw.closing = True  # what a close does first, before it ends the connection
        await first.commit()
        with pytest.raises(Exception, match="closed database"):
            await waiting
        await third.execute(text("INSERT INTO t (v) VALUES ('third')"))  # the turn is free at once
        await third.commit()
        rows = (await third.execute(text("SELECT v FROM t ORDER BY id"))).scalars().all()
        await second.rollback()
    assert rows == ["first", "third"]


async def test_returning_a_connection_with_no_open_transaction_makes_no_call_on_its_thread(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool's reset on return (a rollback) costs no hop when the transaction was committed."""
    calls: list[Any] = []
    run = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(fn)
        return await run(self, fn, *args, **kwargs)

    async with engine.connect() as connection:
        await connection.execute(text("INSERT INTO t (v) VALUES ('kept')"))
        await connection.commit()
        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    assert calls == []
    async with engine.connect() as connection:  # an open transaction is still rolled back on return
        await connection.execute(text("INSERT INTO t (v) VALUES ('dropped')"))
    assert len(calls) == 2
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT v FROM t"))).scalars().all() == ["kept"]


async def test_a_rollback_asked_for_while_a_cancelled_write_waits_is_sent_and_runs_after_it(engine: AsyncEngine) -> None:
    """A statement whose caller was cancelled still runs on the connection's thread later; a rollback asked
    for meanwhile (no transaction open yet) is sent all the same, and ends the transaction that statement
    opens. (SQLAlchemy invalidates a connection whose statement was cancelled; this is the adapter's own
    guarantee, for any caller.)"""
    async with engine.connect() as first, engine.connect() as second, engine.connect() as third:
        await third.exec_driver_sql("PRAGMA busy_timeout = 0")
        adapter = (await second.get_raw_connection()).dbapi_connection
        raw = adapter._connection._conn  # type: ignore[union-attr]
        await first.execute(text("INSERT INTO t (v) VALUES ('first')"))
        cursor = adapter.cursor()  # type: ignore[union-attr]
        waiting = asyncio.create_task(cursor._hop("INSERT INTO t (v) VALUES ('second')", None, False))
        await asyncio.to_thread(_until_waiting_for_the_turn, raw)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert not raw.in_transaction
        rolling_back = asyncio.create_task(second.run_sync(lambda _: adapter.rollback()))  # type: ignore[union-attr]
        await first.commit()
        await rolling_back
        await second.exec_driver_sql("SELECT 1")  # runs on the thread after everything sent before it
        assert not raw.in_transaction
        await third.execute(text("INSERT INTO t (v) VALUES ('third')"))  # the turn is free at once
        await third.commit()
        rows = (await third.execute(text("SELECT v FROM t ORDER BY id"))).scalars().all()
    assert rows == ["first", "third"]
