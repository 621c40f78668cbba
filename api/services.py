"""The long-lived resources of a web process, built once in the app's lifespan and shared by requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Protocol

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from access.admin.rollouts import GateLike
from access.checks import Gate
from access.entitlement import Entitlements
from access.flags import FlagStore
from access.principals import PrincipalCache
from catalogue.flags import default_enabled
from core.db import create_engine, session_factory
from core.redis import connect, redis_url, release_embedded_redis, single_client
from core.settings import Settings
from subscriptions.hub import Hub
from subscriptions.streams import Publisher

__all__ = ["GateLookup", "InlineRunner", "Services", "open_services"]

_HUB_BLOCK_MS = 5_000


class InlineRunner(Protocol):
    """Runs one action in this process (`SWITCHBOARD_SYNC_EXECUTION`); `worker.jobs.InlineRunner`."""

    async def __call__(self, redis: ArqRedis, record_json: str) -> object: ...

    async def close(self) -> None: ...


class GateLookup(Protocol):
    """The gate of an evaluation run (`evaluation.store.gate_result`, handed in by the CLI: `api` does not import
    `evaluation`); LookupError for an unknown run. GraphQL's `aiModelMigrationStart` pre-gate calls it."""

    async def __call__(self, session: AsyncSession, run_id: str) -> GateLike: ...


@dataclass
class Services:
    settings: Settings
    redis: ArqRedis
    hub: Hub
    publisher: Publisher
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    run_inline: InlineRunner | None = None  # SWITCHBOARD_SYNC_EXECUTION only: jobs run in this process
    gate_lookup: GateLookup | None = None  # evaluation runs' gates for the rollouts' pre-gate; None: --force only
    # This process's caches for authorization (SPEC §5.1 checks 4 and 6): flags and entitlement, ≤ 5 s
    # (`core.cache.TtlCache`s; they load through the caller's session).
    flags: FlagStore = field(init=False)
    entitlements: Entitlements = field(default_factory=Entitlements)

    principals: PrincipalCache = field(init=False)
    gate: Gate = field(init=False)  # the aiAction checks 4-6 over those caches

    def __post_init__(self) -> None:
        self.principals = PrincipalCache(self.settings.auth_cache_s)
        self.flags = FlagStore(self.sessions, default_enabled)
        self.gate = Gate(self.flags, self.entitlements, self.settings.mode)


@asynccontextmanager
async def open_services(
    settings: Settings, run_inline: InlineRunner | None = None, gate_lookup: GateLookup | None = None,
) -> AsyncIterator[Services]:
    url = await asyncio.to_thread(redis_url, settings.redis_url, settings.data_dir)
    redis = connect(url, max_connections=settings.redis_max_connections)
    hub_redis = single_client(url, socket_timeout=_HUB_BLOCK_MS / 1000 + 5)
    # the pool is sized for the requests this process serves at once (`core.db.pool_for`)
    engine = create_engine(settings, concurrency=settings.max_inflight_requests or None)
    services = Services(
        settings=settings,
        redis=redis,
        hub=Hub(hub_redis, block_ms=_HUB_BLOCK_MS),
        publisher=Publisher.for_settings(redis, settings),
        engine=engine,
        sessions=session_factory(engine),
        run_inline=run_inline,
        gate_lookup=gate_lookup,
    )
    hub_task = asyncio.create_task(services.hub.run(), name="switchboard-hub")
    try:
        async with asyncio.timeout(10):
            await services.hub.wait_ready()
        yield services
    finally:
        hub_task.cancel()
        with suppress(asyncio.CancelledError):
            await hub_task
        if run_inline is not None:
            await run_inline.close()
        await hub_redis.aclose()
        await redis.aclose()
        await engine.dispose()
        if settings.redis_url is None:
            # Stop using the embedded Redis now (its last user stops it): on SIGTERM uvicorn ends the process
            # by re-raising the signal, and the exit handler of `core.redis` would never run.
            await asyncio.to_thread(release_embedded_redis, settings.data_dir)
