"""The ASGI application: GraphQL over HTTP and websockets at `/api/graphql`, and health endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from api.context import SwitchboardGraphQL
from api.definitions import definitions_routes
from api.features_api import features_routes
from api.schema import build_schema
from api.services import open_services
from core.settings import Settings

__all__ = ["create_app"]


async def _health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def _readiness(request: Request) -> JSONResponse:
    services = request.app.state.services
    checks: dict[str, str] = {}
    try:
        await services.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # readiness reports, it does not raise
        checks["redis"] = f"failed: {type(exc).__name__}"
    try:
        async with services.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"failed: {type(exc).__name__}"
    ok = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ok" if ok else "failed", "checks": checks}, status_code=200 if ok else 503)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    graphql = SwitchboardGraphQL(build_schema(), max_subscriptions_per_connection=1_000)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            yield

    return Starlette(
        routes=[
            Route("/api/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/api/graphql", graphql),
            Route("/-/health", _health),
            Route("/-/liveness", _health),
            Route("/-/readiness", _readiness),
            *features_routes(),
            *definitions_routes(),
        ],
        lifespan=lifespan,
    )
