"""The ASGI application: GraphQL over HTTP and websockets at `/api/graphql`, health endpoints (`api.rest.health`),
Prometheus `/metrics` (`api.rest.metrics`); HTTP requests beyond what the process can serve soon get a 503
(`api.backpressure`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute

from api.backpressure import Backpressure
from api.graphql.context import SwitchboardGraphQL
from api.graphql.schema import build_schema
from api.pages.admin import admin_routes
from api.pages.chat import chat_routes
from api.rest.definitions import definitions_routes
from api.rest.features import features_routes
from api.rest.health import health_routes
from api.rest.metrics import WebsocketGauge, metrics_routes, watch_services
from api.services import GateLookup, InlineRunner, open_services
from core.settings import Settings

__all__ = ["create_app"]


def create_app(
    settings: Settings | None = None, run_inline: InlineRunner | None = None, gate_lookup: GateLookup | None = None,
) -> Starlette:
    """The web process's app. `run_inline` runs actions in this process instead of enqueueing them
    (`SWITCHBOARD_SYNC_EXECUTION`; the CLI passes the worker's `InlineRunner`). `gate_lookup` reads an
    evaluation run's gate for the pre-gate of `aiModelMigrationStart` (the CLI passes
    `evaluation.store.gate_result`); without it a migration starts over GraphQL only with `force`."""
    settings = settings or Settings()
    graphql = SwitchboardGraphQL(build_schema(), max_subscriptions_per_connection=1_000)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(settings, run_inline, gate_lookup) as services:
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
            *chat_routes(),
            *features_routes(),
            *definitions_routes(),
        ],
        lifespan=lifespan,
        middleware=[Middleware(Backpressure, max_inflight=settings.max_inflight_requests), Middleware(WebsocketGauge)],
    )
