"""Health endpoints over HTTP (the real app and services): readiness checks Redis, the database and that the
schema is migrated; it reports live workers; liveness and health always answer; `/metrics` is Prometheus."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from api.app import create_app
from api.services import open_services
from core import keys
from core.settings import Settings


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(settings) as client:
        yield client


def _client(settings: Settings) -> _AppClient:
    return _AppClient(settings)


class _AppClient:
    """The app over ASGI with its services opened (no lifespan: the metrics sampler is not needed here)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __aenter__(self) -> httpx.AsyncClient:
        app = create_app(self.settings)
        self._services = open_services(self.settings)
        app.state.services = await self._services.__aenter__()
        self._http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://switchboard")
        return self._http

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()
        await self._services.__aexit__(None, None, None)


async def test_readiness_checks_redis_database_and_migrations(http: httpx.AsyncClient, redis) -> None:  # noqa: ANN001
    response = await http.get("/-/readiness")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["checks"] == {"redis": "ok", "database": "ok", "migrations": "ok", "hub": "ok"}
    assert body["workers"] == 0
    await redis.hset(keys.WORKERS, mapping={"live:1": orjson.dumps({"beat": time.time(), "jobs": 2}),
                                            "gone:2": orjson.dumps({"beat": time.time() - 600, "jobs": 0})})
    assert (await http.get("/-/readiness")).json()["workers"] == 1
    for path in ("/-/health", "/-/liveness"):
        assert (await http.get(path)).json() == {"status": "ok"}


async def test_readiness_fails_while_migrations_are_pending(settings: Settings, tmp_path: Path) -> None:
    unmigrated = settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"})
    async with _client(unmigrated) as http:
        response = await http.get("/-/readiness")
        assert response.status_code == 503
        assert response.json()["checks"]["migrations"].startswith("failed: pending migrations")
        assert (await http.get("/-/liveness")).status_code == 200


async def test_readiness_fails_without_redis(settings: Settings) -> None:
    async with _client(settings) as http:
        services = http._transport.app.state.services  # type: ignore[attr-defined]
        await services.redis.aclose()
        services.redis = services.redis.__class__.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
        response = await http.get("/-/readiness")
        assert response.status_code == 503
        assert response.json()["checks"]["redis"].startswith("failed")
        await services.redis.aclose()


async def test_readiness_fails_when_the_hub_no_longer_runs(http: httpx.AsyncClient) -> None:
    """Without its hub no subscriber of the process receives anything: the process is not ready."""
    [hub_task] = [task for task in asyncio.all_tasks() if task.get_name() == "switchboard-hub"]
    hub_task.cancel()
    await asyncio.gather(hub_task, return_exceptions=True)
    response = await http.get("/-/readiness")
    assert response.status_code == 503
    assert response.json()["checks"]["hub"] == "failed: the fan-out hub is not running"


async def test_metrics_endpoint_speaks_prometheus(http: httpx.AsyncClient) -> None:
    response = await http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert "# TYPE gitlab_sli_llm_completion_total counter" in response.text
    assert "switchboard_websocket_connections" in response.text
