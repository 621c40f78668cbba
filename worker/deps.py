"""What a worker process builds once and hands to every job: settings, Redis, the database, the catalogue,
the provider clients and their circuit breakers, and the ≤ 5 s caches of flags, entitlement and model
selection."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from arq.connections import ArqRedis
from markdown_it import MarkdownIt
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from access.checks import Gate
from access.entitlement import Entitlements
from access.flags import FlagStore
from catalogue import Catalogue, get_catalogue
from catalogue.flags import default_enabled
from catalogue.selection_store import SelectionStore
from chat.tools import DocumentationIndex, default_paths
from core.db import create_engine, session_factory
from core.metrics import MinuteStats
from core.secrets import SecretBox, secret_box
from core.settings import Settings
from subscriptions.messages import markdown_renderer
from subscriptions.streams import Publisher
from worker.llm import Circuits, Providers, build_providers

__all__ = ["Deps", "build_deps"]


@dataclass
class Deps:
    settings: Settings
    redis: ArqRedis
    publisher: Publisher
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    markdown: MarkdownIt
    catalogue: Catalogue
    providers: Providers
    flags: FlagStore
    selection: SelectionStore  # model selection settings (SPEC §9), ≤ 5 s old
    secrets: SecretBox  # decrypts registered self-hosted models' API tokens
    circuits: Circuits = field(default_factory=Circuits)
    cohorts: MinuteStats = field(default_factory=MinuteStats)  # rollout cohort counts, flushed by the monitor
    entitlements: Entitlements = field(default_factory=Entitlements)
    _documentation: asyncio.Task[DocumentationIndex] | None = None

    async def documentation(self) -> DocumentationIndex:
        """The full-text index of the documentation (`documentation_search`), built once, on first use."""
        if self._documentation is None:
            self._documentation = asyncio.ensure_future(DocumentationIndex.build(default_paths(self.settings)))
        return await asyncio.shield(self._documentation)

    @property
    def gate(self) -> Gate:
        """The `aiAction` checks 4-6 over this process's caches (the re-check before a model call)."""
        return Gate(self.flags, self.entitlements, self.settings.mode)

    async def close(self) -> None:
        await self.providers.close()
        await self.engine.dispose()


def build_deps(settings: Settings, redis: ArqRedis, *, providers: Providers | None = None) -> Deps:
    """`providers` replaces the clients built from the settings (tests point real SDK clients at local
    servers this way)."""
    engine = create_engine(settings, concurrency=settings.worker_max_jobs)  # pool sized for its jobs
    sessions = session_factory(engine)
    return Deps(
        settings=settings,
        redis=redis,
        publisher=Publisher.for_settings(redis, settings),
        engine=engine,
        sessions=sessions,
        flags=FlagStore(sessions, default_enabled),
        selection=SelectionStore(sessions),
        secrets=secret_box(settings),
        markdown=markdown_renderer(),
        catalogue=get_catalogue(),
        providers=providers or build_providers(settings),
    )
