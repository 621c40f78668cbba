"""SQLite from asyncio at one thread hop per statement.

aiosqlite runs every call on the connection's own thread, and SQLAlchemy's adapter makes four such calls per
statement (open a cursor, execute, fetch all rows, close the cursor). Each hop is a queue put, a thread
wake-up, a GIL hand-over and a wake-up of the event loop through its self-pipe: on a 2-core VM about a
tenth of a millisecond of CPU, many times the cost of the statement itself (an indexed SELECT runs in
under 10 µs). The cursor here does the four in one function on aiosqlite's thread, so a statement costs one
hop; SQL, parameters, rows and errors are exactly sqlite3's.

It relies on two internals, pinned in pyproject.toml: SQLAlchemy's `AsyncAdapt_dbapi_cursor` (its slots and
`_execute_async`) and aiosqlite's `Connection._execute` (runs a function on the connection's thread) and
`Connection._conn` (the sqlite3 connection). `tests/core/test_sqlite.py` checks both.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)

__all__ = ["one_hop_dbapi"]

# What one statement returns from the connection's thread: description, rows, rowcount, lastrowid.
_Outcome = tuple[Any, list[Any], int, int | None]


def _run(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """On aiosqlite's thread: the whole statement, from cursor to rows."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, () if parameters is None else parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class _OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor that holds a statement's outcome; no aiosqlite cursor behind it."""

    __slots__ = ("_description", "_rowcount", "_lastrowid", "_arraysize")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:  # no cursor to open: no hop
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = {}  # type: ignore[assignment]
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _hop(self, operation: str, parameters: Any, many: bool) -> None:
        async with self._adapt_connection._execute_mutex:
            connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
            outcome: _Outcome = await connection._execute(_run, connection._conn, operation, parameters, many)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._hop(operation, parameters, False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Sequence[Any]) -> None:
        await self._hop(operation, seq_of_parameters, True)

    async def _async_soft_close(self) -> None:  # the rows are held here already
        return None

    def close(self) -> None:
        self._rows.clear()


class _OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = _OneHopCursor  # type: ignore[assignment]


class _OneHopDbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        connection = super().connect(*arg, **kw)
        connection.__class__ = _OneHopConnection  # the same object; only its cursor class differs
        return connection


def one_hop_dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The DB-API module to give `create_async_engine(..., module=...)` for `sqlite+aiosqlite` URLs."""
    return _OneHopDbapi(aiosqlite, sqlite3)
