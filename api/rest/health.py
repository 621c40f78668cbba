"""Health endpoints (SPEC §10): `/-/health` and `/-/liveness` (the process serves requests),
`/-/readiness` (Redis and the database reachable, the schema at the newest migration, the fan-out hub
running: without it no subscriber of this process receives anything).

Readiness also reports the workers whose heartbeat (`keys.WORKERS`) is recent, for operators; a web process
with no worker is still ready (requests queue up and are answered once a worker starts).
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from core import keys
from core.db import current_revision_ok

__all__ = ["health_routes", "live_workers", "WORKER_STALE_S"]

log = logging.getLogger(__name__)

# A worker whose heartbeat is older than this is counted as gone.
WORKER_STALE_S = 15.0
_CHECK_TIMEOUT_S = 3.0


async def _health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def live_workers(redis: object) -> dict[str, dict[str, object]]:
    """Worker id -> its last heartbeat ({"beat": unix time, "jobs": jobs in flight}), recent ones only."""
    raw = await redis.hgetall(keys.WORKERS)  # type: ignore[attr-defined]
    now = time.time()
    alive: dict[str, dict[str, object]] = {}
    for worker_id, value in raw.items():
        beat = orjson.loads(value)
        if now - float(beat.get("beat", 0)) <= WORKER_STALE_S:
            alive[worker_id.decode()] = beat
    return alive


async def _readiness(request: Request) -> JSONResponse:
    services = request.app.state.services
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S):
            await services.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # readiness reports, it does not raise
        checks["redis"] = f"failed: {type(exc).__name__}"
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S):
            applied = await current_revision_ok(services.engine)
        checks["database"] = "ok"
        checks["migrations"] = "ok" if applied else "failed: pending migrations (run `switchboard db upgrade`)"
    except Exception as exc:
        checks["database"] = f"failed: {type(exc).__name__}"
    checks["hub"] = "ok" if services.hub.running else "failed: the fan-out hub is not running"
    ok = all(value == "ok" for value in checks.values())
    body: dict[str, object] = {"status": "ok" if ok else "failed", "checks": checks}
    if checks["redis"] == "ok":
        try:
            body["workers"] = len(await live_workers(services.redis))
        except Exception:
            log.warning("could not read worker heartbeats", exc_info=True)
    return JSONResponse(body, status_code=200 if ok else 503)


def health_routes() -> list[Route]:
    return [
        Route("/-/health", _health),
        Route("/-/liveness", _health),
        Route("/-/readiness", _readiness),
    ]
