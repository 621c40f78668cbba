"""The SQL database: async engines, sessions, and schema migrations applied with Alembic.

SQLite (the default, a file under the data directory) runs with foreign keys on and in WAL mode, so many
readers and one writer share it; PostgreSQL runs through asyncpg with a pre-pinged connection pool.

The pool of a process (`pool_for`), for both backends:
- size P = min(concurrency, `SWITCHBOARD_DB_POOL_SIZE` (20)), no overflow; concurrency is what the process
  runs at once: in-flight requests for web (`SWITCHBOARD_MAX_INFLIGHT_REQUESTS`, 256), jobs for a worker
  (`SWITCHBOARD_WORKER_MAX_JOBS`, 2000). A request or job holds one connection at a time and never waits
  for a second one while holding one (the caches load through the caller's session, `core.cache`), so
  every holder makes progress and P only sets throughput; more than ~20 buys nothing on a small host.
- checkout timeout T = ceil(concurrency / P) × 0.25 s, within [1 s, 30 s] (`SWITCHBOARD_DB_POOL_TIMEOUT_S`
  overrides): a checkout that finds every connection taken waits behind at most ceil(concurrency / P)
  rounds of P holders, each budgeted 0.25 s (a few queries, under load). Web: ceil(256 / 20) × 0.25 =
  3.25 s; worker: ceil(2000 / 20) × 0.25 = 25 s. Past T the checkout raises `core.errors.Overloaded`,
  which the web answers with HTTP 503 and Retry-After (`api.backpressure`) rather than letting requests
  queue for minutes.
- without a concurrency (scripts, tests): P = `SWITCHBOARD_DB_POOL_SIZE`, T = 30 s.
- a share per web request (`request_scope`): one request holds at most max(1, P // 4) connections at once,
  so a query with hundreds of aliases, each resolver a session of its own, waits for its own turns
  instead of queueing hundreds of checkouts ahead of every other request's. Waiting for one's own turn
  is not the database's saturation: it is bounded by 30 s, not T.

Migrations live in `core/migrations/` and are found relative to this module, so `upgrade()` works from any
working directory and from an installed package, without an `alembic.ini`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool, NullPool
from sqlalchemy.pool.base import PoolProxiedConnection
from sqlalchemy.util import await_only

from core.errors import Overloaded
from core.settings import Settings
from core.sqlite import one_hop_dbapi

__all__ = [
    "DATABASE_BUSY",
    "MIGRATIONS",
    "PoolSize",
    "create_engine",
    "current_revision_ok",
    "pool_for",
    "request_scope",
    "session_factory",
    "upgrade",
]

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().with_name("migrations")

DATABASE_BUSY = "Switchboard is busy: no database connection was free in time. Retry after a moment."
_CHECKOUT_ROUND_S = 0.25  # one round of holders on every connection: a few queries each, under load
_TIMEOUT_RANGE_S = (1.0, 30.0)
_SCRIPT_TIMEOUT_S = 30.0
_SQLITE_BUSY_TIMEOUT_MS = 5000
# Every database await of a serving process is bounded: asyncpg's connect, and each statement on pooled
# engines (one-shot commands, migrations among them, may legitimately run longer), SQLite's wait for a lock.
_PG_CONNECT_TIMEOUT_S = 10.0
_PG_COMMAND_TIMEOUT_S = 30.0
_REFUSALS: ContextVar[list[Overloaded] | None] = ContextVar("switchboard_pool_refusals", default=None)
_SHARE: ContextVar[asyncio.Semaphore | None] = ContextVar("switchboard_pool_share", default=None)
_SHARE_KEY = "switchboard_share"


@dataclass(frozen=True, slots=True)
class PoolSize:
    size: int
    timeout_s: float


def pool_for(settings: Settings, concurrency: int | None = None) -> PoolSize:
    """The pool of a process that runs `concurrency` requests or jobs at once (see the module's docstring)."""
    cap = settings.db_pool_size
    if not concurrency:
        return PoolSize(cap, settings.db_pool_timeout_s or _SCRIPT_TIMEOUT_S)
    size = max(1, min(concurrency, cap))
    low, high = _TIMEOUT_RANGE_S
    derived = min(high, max(low, math.ceil(concurrency / size) * _CHECKOUT_ROUND_S))
    return PoolSize(size, settings.db_pool_timeout_s or derived)


@contextmanager
def request_scope(engine: AsyncEngine | None) -> Iterator[list[Overloaded]]:
    """One web request (and the tasks it starts, e.g. its GraphQL resolvers): its share of `engine`'s pool
    (see the module's docstring), and the checkouts refused to it (pool time-outs), collected so that the
    web's backpressure answers it with HTTP 503 wherever the error was caught."""
    found: list[Overloaded] = []
    pool = engine.sync_engine.pool if engine is not None else None
    share = asyncio.Semaphore(max(1, pool.size() // 4)) if isinstance(pool, _Pool) else None
    refusals_token, share_token = _REFUSALS.set(found), _SHARE.set(share)
    try:
        yield found
    finally:
        _SHARE.reset(share_token)
        _REFUSALS.reset(refusals_token)


def _refused(cause: BaseException) -> Overloaded:
    refused = Overloaded(DATABASE_BUSY)
    found = _REFUSALS.get()
    if found is not None:
        found.append(refused)
    refused.__cause__ = cause
    return refused


async def _own_turn(share: asyncio.Semaphore) -> None:
    async with asyncio.timeout(_TIMEOUT_RANGE_S[1]):
        await share.acquire()


class _Pool(AsyncAdaptedQueuePool):
    """SQLAlchemy's async queue pool, whose checkout time-out is `Overloaded` (a 503 for the client), and
    which keeps a web request to its share of connections (`request_scope`)."""

    def connect(self) -> PoolProxiedConnection:
        share = _SHARE.get()
        if share is None:
            return super().connect()
        if share.locked():  # the request's own turn, bounded; a free share is taken at once (no timer, no task)
            try:
                await_only(_own_turn(share))
            except TimeoutError as exc:
                raise _refused(exc) from exc
        else:
            await_only(share.acquire())
        try:
            connection = super().connect()
        except BaseException:
            share.release()
            raise
        connection._connection_record.info[_SHARE_KEY] = share
        return connection

    def _do_get(self):  # noqa: ANN202 - SQLAlchemy's signature
        try:
            return super()._do_get()
        except sa_exc.TimeoutError as exc:
            raise _refused(exc) from exc

    def _do_return_conn(self, record):  # noqa: ANN001, ANN202
        share = record.info.pop(_SHARE_KEY, None)
        try:
            super()._do_return_conn(record)
        finally:
            if share is not None:
                share.release()


def create_engine(settings: Settings | str, *, pooled: bool = True, concurrency: int | None = None) -> AsyncEngine:
    """An engine for `settings.database` (or a URL given directly); `postgresql://` and `sqlite://` URLs
    without a driver get asyncpg and aiosqlite.

    `concurrency`: how many requests or jobs the process runs at once; it sizes the pool (`pool_for`).
    `pooled=False` opens a connection per checkout, for one-shot commands and scripts.
    """
    if isinstance(settings, str):
        settings = Settings(database_url=settings)
    url = make_url(settings.database)
    return _engine(url, pooled=pooled, foreign_keys=True, pool=pool_for(settings, concurrency))


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


def _engine(url: URL, *, pooled: bool, foreign_keys: bool, pool: PoolSize | None = None) -> AsyncEngine:
    url = _async_driver(url)
    # hide_parameters: a failed statement's error and log never quote its values (user text, token digests)
    options: dict[str, Any] = {"hide_parameters": True, "poolclass": NullPool}
    if pooled and pool is not None and url.database not in (None, "", ":memory:"):
        options |= {"poolclass": _Pool, "pool_size": pool.size, "max_overflow": 0, "pool_timeout": pool.timeout_s}
        if url.get_backend_name() != "sqlite":
            options |= {"pool_recycle": 1800, "pool_pre_ping": True}
    if url.get_backend_name() != "sqlite":
        connect_args = {"timeout": _PG_CONNECT_TIMEOUT_S, "command_timeout": _PG_COMMAND_TIMEOUT_S if pooled else None}
        return create_async_engine(url, connect_args=connect_args, **options)
    _make_parent_dir(url)
    engine = create_async_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000}, **options,
                                 **({"module": one_hop_dbapi(write_wait_s=_SQLITE_BUSY_TIMEOUT_MS / 1000)}
                                    if url.get_driver_name() == "aiosqlite" else {}))
    event.listen(engine.sync_engine, "connect", partial(_sqlite_pragmas, foreign_keys=foreign_keys))
    event.listen(engine.sync_engine, "handle_error", _sqlite_locked)
    return engine


def _sqlite_locked(context: Any) -> None:
    """SQLite gave up waiting for another writer (`busy_timeout`): the database is overloaded, not broken. The
    error becomes `Overloaded` (recorded for the web request, so the client gets 503 with Retry-After
    wherever it was caught), never an internal error."""
    if "database is locked" in str(context.original_exception):
        raise _refused(context.original_exception)


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
