"""The world an evaluation answers in: the seed data (SPEC §11) in a private, throw-away SQLite database, and
the worker's `Deps` over it.

Dataset items name seed resources (`"resource": "issue"`); the seed is deterministic, so seeding a fresh
database gives the same global IDs, titles, notes and diffs everywhere, whatever the operator's database
holds (a production database has no demo data and must not get any). Prompt variables, chat tools and the
seat checks of tools read this world; the operator's database only gives the model selection snapshot (for
registered self-hosted models) and stores runs.

The worker's `Deps` carries a Redis client, which an evaluation never uses: answers are made with
`Answer(publish=False)` (no chunk, no tool progress), and nothing is enqueued or recorded in Redis. The
client given points at a socket that does not exist, so an accidental use fails loudly instead of publishing
to a real Redis: `switchboard eval` works without Redis.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool, UnixDomainSocketConnection

from access.admin.seed import seed
from access.entitlement import Entitlements
from access.flags import FlagStore
from access.tokens import Principal
from catalogue import get_catalogue
from catalogue.flags import default_enabled
from catalogue.selection_store import SelectionStore
from core.db import create_engine, session_factory
from core.secrets import secret_box
from core.settings import Settings
from core.tables import Base
from subscriptions.messages import markdown_renderer
from subscriptions.streams import Publisher
from worker.deps import Deps
from worker.llm import Providers, build_providers

__all__ = ["ASKING_USER", "World", "open_world"]

ASKING_USER = "alice"  # the seed user items are asked as (Duo Enterprise: every chat tool)


@dataclass
class World:
    deps: Deps
    document: dict[str, Any]  # the seed document (SPEC §11)
    principal: Principal
    directory: Path

    def resource_gid(self, key: str) -> str:
        resources: dict[str, str] = self.document["resources"]
        if key not in resources:
            raise LookupError(f"unknown seed resource {key!r}; valid: {', '.join(sorted(resources))}")
        return resources[key]

    async def close(self) -> None:
        try:
            await self.deps.close()
            await self.deps.redis.aclose()
        finally:
            await asyncio.to_thread(shutil.rmtree, self.directory, True)


def _unused_redis(directory: Path) -> ArqRedis:
    pool = ConnectionPool(connection_class=UnixDomainSocketConnection, path=str(directory / "no-redis.sock"))
    client = ArqRedis(connection_pool=pool)
    client.auto_close_connection_pool = True
    return client


async def open_world(settings: Settings, *, providers: Providers | None = None) -> World:
    """Seed a fresh private database and build the worker's deps over it (`providers`: tests' clients)."""
    directory = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="switchboard-eval-"))
    engine = create_engine(f"sqlite+aiosqlite:///{directory / 'seed.db'}")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        sessions = session_factory(engine)
        async with sessions() as session, session.begin():
            document = await seed(session, mode=settings.mode)
        redis = _unused_redis(directory)
        deps = Deps(
            settings=settings, redis=redis,
            publisher=Publisher.for_settings(redis, settings), engine=engine, sessions=sessions,
            markdown=markdown_renderer(), catalogue=get_catalogue(), providers=providers or build_providers(settings),
            flags=FlagStore(sessions, default_enabled), selection=SelectionStore(sessions),
            secrets=secret_box(settings), entitlements=Entitlements(),
        )
        async with sessions() as session:
            principal = await deps.entitlements.principal(session, document["users"][ASKING_USER]["id"])
    except BaseException:
        await engine.dispose()
        await asyncio.to_thread(shutil.rmtree, directory, True)
        raise
    assert principal is not None
    return World(deps, document, principal, directory)
