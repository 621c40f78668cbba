"""The web process's Prometheus side: `/metrics`, the websocket gauge, and the timer that samples the queue.

Per-request costs stay at one gauge increment per websocket; subscriptions and hub lag are read from the
hub only when Prometheus scrapes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from core.metrics import HUB_LAG, SUBSCRIPTIONS, WEBSOCKETS, sample_queue

__all__ = ["metrics_routes", "WebsocketGauge", "watch_services", "SAMPLE_INTERVAL_S"]

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 5.0


async def _metrics(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def metrics_routes() -> list[Route]:
    return [Route("/metrics", _metrics)]


class WebsocketGauge:
    """ASGI middleware: counts the open websocket connections."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        WEBSOCKETS.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            WEBSOCKETS.dec()


async def watch_services(services: Any) -> None:
    """Until cancelled: point the hub gauges at this process's hub and sample the queue every few seconds."""
    SUBSCRIPTIONS.set_function(lambda: services.hub.subscriber_count)
    HUB_LAG.set_function(lambda: services.hub.lag_s)
    while True:
        try:
            await sample_queue(services.redis)
        except Exception as exc:  # Redis away: the gauges keep their last values until it is back
            log.debug("could not sample the queue: %s", exc)
        await asyncio.sleep(SAMPLE_INTERVAL_S)
