"""What an open GraphQL websocket keeps after `connection_ack` (SPEC §12: a web process holds thousands at
≤ 30 KB each), through the real app over raw ASGI: no finished `connection_init` deadline task."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.routing import WebSocketRoute

from api.app import create_app
from api.services import Services

SCOPE = {
    "type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "ws", "path": "/api/graphql",
    "raw_path": b"/api/graphql", "query_string": b"", "root_path": "", "headers": [(b"host", b"switchboard")],
    "client": ("127.0.0.1", 1), "server": ("switchboard", 80), "subprotocols": ["graphql-transport-ws"],
}


async def test_an_acknowledged_socket_keeps_no_connection_init_deadline_task(services: Services, seeded: dict) -> None:
    """strawberry cancels the deadline at `connection_init` but kept the finished task (with its CancelledError
    and traceback, ~1.6 KB) for as long as the socket stays open."""
    app = create_app(services.settings)
    app.state.services = services
    view = next(route.endpoint for route in app.routes if isinstance(route, WebSocketRoute))
    inbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    acknowledged = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send" and json.loads(message["text"])["type"] == "connection_ack":
            acknowledged.set()

    for message in (
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": json.dumps(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {seeded['users']['alice']['token']}"}})},
    ):
        inbound.put_nowait(message)
    running = asyncio.create_task(app(dict(SCOPE), inbound.get, send))
    await asyncio.wait_for(acknowledged.wait(), 10)  # a hang guard, not a timing assertion
    [handler] = [socket for sockets in view.open_sockets._by_digest.values() for socket in sockets]
    assert handler.connection_acknowledged and handler.connection_init_timeout_task is None
    inbound.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(running, 10)
    assert len(view.open_sockets) == 0
