"""The ASGI application: GraphQL over HTTP and websockets at `/api/graphql`, health endpoints (`api.health`),
Prometheus `/metrics` (`api.monitoring`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute

from api.admin_page import admin_routes
from api.context import SwitchboardGraphQL
from api.definitions import definitions_routes
from api.features_api import features_routes
from api.health import health_routes
from api.monitoring import WebsocketGauge, metrics_routes, watch_services
from api.schema import build_schema
from api.services import open_services
from core.settings import Settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    graphql = SwitchboardGraphQL(build_schema(), max_subscriptions_per_connection=1_000)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            watcher = asyncio.create_task(watch_services(services), name="switchboard-metrics-sampler")
            try:
                yield
            finally:
                watcher.cancel()
                with suppress(asyncio.CancelledError):
                    await watcher

    return Starlette(
        routes=[
            Route("/api/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/api/graphql", graphql),
            *health_routes(),
            *metrics_routes(),
            *admin_routes(),
            *features_routes(),
            *definitions_routes(),
        ],
        lifespan=lifespan,
        middleware=[Middleware(WebsocketGauge)],
    )
