"""In-process Switchboard for unit tests (a pytest plugin): settings, seeded database, web services."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from access.admin.seed import seed
from api.services import Services, open_services
from core.actions import ActionRecord
from core.db import create_engine, session_factory
from core.redis import connect, enqueue_action
from core.settings import Settings
from worker.process import build_worker

__all__ = ["settings", "seeded", "services", "run_worker"]


@pytest.fixture
def settings(redis_url: str, database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url,
        database_url=database_url,
        data_dir=tmp_path,
        mock_model_responses=True,
        ai_action_rate_limit=0,
        poll_delay_s=0.05,
    )


@pytest.fixture
async def seeded(database_url: str) -> dict:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            return await seed(session)
    finally:
        await engine.dispose()


@pytest.fixture
async def services(settings: Settings, seeded: dict) -> AsyncIterator[Services]:
    async with open_services(settings) as opened:
        yield opened


async def run_worker(settings: Settings, *records: ActionRecord) -> None:
    """Enqueue `records`, then run a real worker in burst mode until the queue is empty."""
    redis = connect(settings.redis_url or "")
    try:
        for record in records:
            await enqueue_action(redis, record)
    finally:
        await redis.aclose()
    worker = build_worker(settings, burst=True, handle_signals=False, poll_delay=0.01)
    try:
        await asyncio.wait_for(worker.main(), 30)
    finally:
        await worker.close()
