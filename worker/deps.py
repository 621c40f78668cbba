"""What a worker process builds once and hands to every job: settings, Redis, the database, models."""

from __future__ import annotations

from dataclasses import dataclass

from markdown_it import MarkdownIt
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from catalogue import Feature
from core.db import create_engine, session_factory
from core.errors import ProviderRejected
from core.settings import Settings
from subscriptions.streams import Publisher
from worker.llm import LLMClient, MockModel

__all__ = ["Deps", "build_deps"]


@dataclass
class Deps:
    settings: Settings
    redis: Redis
    publisher: Publisher
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    markdown: MarkdownIt
    mock: MockModel

    def model_for(self, feature: Feature) -> LLMClient:
        """The client that answers `feature` (the mock model until providers are configured)."""
        if self.settings.use_mock_model:
            return self.mock
        raise ProviderRejected("none", None, f"no provider is configured for {feature.key}")

    def timeout_for(self, feature: Feature) -> float:
        return self.settings.llm_timeout_s or feature.timeout_s

    async def close(self) -> None:
        await self.engine.dispose()


def build_deps(settings: Settings, redis: Redis) -> Deps:
    engine = create_engine(settings)
    return Deps(
        settings=settings,
        redis=redis,
        publisher=Publisher.for_settings(redis, settings),
        engine=engine,
        sessions=session_factory(engine),
        markdown=MarkdownIt("commonmark", {"html": False}),
        mock=MockModel(),
    )
