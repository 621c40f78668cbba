"""SQLite from asyncio at one thread hop per statement.

aiosqlite runs every call on the connection's own thread, and SQLAlchemy's adapter makes four such calls per
statement (open a cursor, execute, fetch all rows, close the cursor). Each hop is a queue put, a thread
wake-up, a GIL hand-over and a wake-up of the event loop through its self-pipe: on a 2-core VM about a
tenth of a millisecond of CPU, many times the cost of the statement itself (an indexed SELECT runs in
under 10 µs). The cursor here does the four in one function on aiosqlite's thread, so a statement costs one
hop; SQL, parameters, rows and errors are exactly sqlite3's.

Writers take turns per database file within a process (`_WriteTurn`). SQLite lets one connection write at
a time and makes the others poll: its busy handler sleeps 1, 2, 5, 10, … up to 100 ms between tries, so
under load a writer that keeps losing to late-comers waits for seconds (chat under 32 clients: p99 1.9 s on
SQLite against 0.25 s on PostgreSQL). Here a statement that begins a write transaction first waits for the
process's turn on a lock, woken as soon as the previous writer commits or rolls back; only the turn's holder
meets other processes' writers in SQLite's busy handler. Statements that begin one are those sqlite3 opens a
transaction for (INSERT, UPDATE, DELETE, REPLACE outside a transaction); reads never wait for a turn. A turn
not had within the busy timeout fails as SQLite's own wait does ("database is locked").

It relies on internals, pinned in pyproject.toml: SQLAlchemy's `AsyncAdapt_dbapi_cursor` (its slots and
`_execute_async`) and aiosqlite connection adapter (`commit`, `rollback`, `close`), and aiosqlite's
`Connection._execute` (runs a function on the connection's thread) and `Connection._conn` (the sqlite3
connection). `tests/core/test_sqlite.py` checks them.
"""

from __future__ import annotations

import collections
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import await_only

__all__ = ["one_hop_dbapi"]

# What one statement returns from the connection's thread: description, rows, rowcount, lastrowid.
_Outcome = tuple[Any, list[Any], int, int | None]
# The statements sqlite3 begins a transaction for (its "DML" test: the first keyword, after spaces).
_BEGINS_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


class _WriteTurn:
    """The turn to write to one database file, among this process's connections (see the module's text)."""

    __slots__ = ("_lock", "_holder", "_wait_s")

    def __init__(self, wait_s: float) -> None:
        self._lock = threading.Lock()
        self._holder: sqlite3.Connection | None = None
        self._wait_s = wait_s

    def take(self, connection: sqlite3.Connection) -> None:
        if self._holder is connection:
            return
        if not self._lock.acquire(timeout=self._wait_s):  # on the connection's thread: the event loop goes on
            raise sqlite3.OperationalError("database is locked")
        self._holder = connection

    def held_by(self, connection: sqlite3.Connection) -> bool:
        return self._holder is connection

    def give_back(self, connection: sqlite3.Connection) -> None:
        if self._holder is connection:
            self._holder = None
            self._lock.release()


_TURNS: dict[str, _WriteTurn] = {}  # by database file, for every engine of the process
_TURNS_LOCK = threading.Lock()


def _turn_for(database: object, wait_s: float) -> _WriteTurn | None:
    """The turn of a database file; None for an in-memory database or a URI (each its own, or unknown)."""
    if not isinstance(database, str | os.PathLike) or str(database) in ("", ":memory:") or str(database).startswith("file:"):
        return None
    with _TURNS_LOCK:
        return _TURNS.setdefault(os.path.realpath(database), _WriteTurn(wait_s))


class _Connection(sqlite3.Connection):
    """sqlite3's connection, knowing its database file's write turn."""

    turn: _WriteTurn | None = None
    closing = False  # set before it is closed: a statement that got the turn after that gives it back
    # Calls sent to its thread (counted by the event loop) and finished there (counted by the thread; each
    # count has one writer): equal when nothing runs or waits there, a cancelled caller's statement included.
    sent = 0
    done = 0

    def idle(self) -> bool:
        """Nothing runs or waits on the connection's thread, and no transaction is open: a rollback has
        nothing to do."""
        return self.sent == self.done and not self.in_transaction and (self.turn is None or not self.turn.held_by(self))


def _run(connection: _Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """On aiosqlite's thread: the whole statement, from cursor to rows (after the write turn, when it
    begins a write transaction)."""
    try:
        return _statement(connection, operation, parameters, many)
    finally:
        connection.done += 1


def _statement(connection: _Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    turn = connection.turn if not connection.in_transaction and _BEGINS_WRITE.match(operation) else None
    if turn is not None:
        turn.take(connection)
        if connection.closing:  # its waiter was cancelled and the connection closed meanwhile
            turn.give_back(connection)
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
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
        if turn is not None and not connection.in_transaction:  # failed before its transaction, or ran without one
            turn.give_back(connection)


def _finish(connection: _Connection, rollback: bool) -> None:
    """On aiosqlite's thread: commit or roll back, then give the write turn back."""
    try:
        if rollback:
            connection.rollback()
        else:
            connection.commit()
    finally:
        if connection.turn is not None:
            connection.turn.give_back(connection)
        connection.done += 1


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
            raw: _Connection = connection._conn  # type: ignore[assignment]
            sent = connection._execute(_run, raw, operation, parameters, many)
            raw.sent += 1
            outcome: _Outcome = await sent
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

    def commit(self) -> None:
        self._end(rollback=False)

    def rollback(self) -> None:
        raw = self._connection._connection
        if raw is not None and raw.idle():
            return  # nothing to roll back (a pooled connection's reset on return, mostly): no hop to its thread
        self._end(rollback=True)

    def _end(self, *, rollback: bool) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        if connection._connection is None:  # closed: nothing to end (as SQLAlchemy's adapter does)
            return
        raw: _Connection = connection._conn  # type: ignore[assignment]
        sent = connection._execute(_finish, raw, rollback)
        raw.sent += 1
        try:
            await_only(sent)
        except Exception as error:
            self._handle_exception(error)

    def close(self) -> None:
        self._closing(super().close)

    def terminate(self) -> None:  # what an invalidated connection gets
        self._closing(super().terminate)

    def _closing(self, close: Callable[[], None]) -> None:
        raw = self._connection._connection
        if raw is not None:
            raw.closing = True
        try:
            close()
        finally:
            if raw is not None and raw.turn is not None:
                raw.turn.give_back(raw)  # closing ended its transaction


class _OneHopDbapi(AsyncAdapt_aiosqlite_dbapi):
    def __init__(self, write_wait_s: float) -> None:
        super().__init__(aiosqlite, sqlite3)
        self._write_wait_s = write_wait_s

    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        connection = super().connect(*arg, factory=_Connection, **kw)
        connection.__class__ = _OneHopConnection  # the same object; only its cursor class and ends differ
        raw: _Connection = connection._connection._conn
        raw.turn = _turn_for(arg[0] if arg else kw.get("database"), self._write_wait_s)
        return connection


def one_hop_dbapi(*, write_wait_s: float) -> AsyncAdapt_aiosqlite_dbapi:
    """The DB-API module to give `create_async_engine(..., module=...)` for `sqlite+aiosqlite` URLs; a write
    transaction waits at most `write_wait_s` for its turn (SQLite's busy timeout)."""
    return _OneHopDbapi(write_wait_s)
