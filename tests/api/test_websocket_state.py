"""What an open GraphQL websocket keeps after `connection_ack` (SPEC §12: a web process holds thousands at
≤ 30 KB each), through the real app over raw ASGI: no finished `connection_init` deadline task, and no
suspended frame of our pass-through layers (each a coroutine of ~0.25–0.5 KB for the socket's life)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.routing import WebSocketRoute

from api.app import create_app
from api.services import Services

SCOPE = {
    "type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "ws", "path": "/api/graphql",
    "raw_path": b"/api/graphql", "query_string": b"", "root_path": "", "headers": [(b"host", b"switchboard")],
    "client": ("127.0.0.1", 1), "server": ("switchboard", 80), "subprotocols": ["graphql-transport-ws"],
}


def _awaiting(task: asyncio.Task[Any]) -> list[str]:
    """The coroutines a task is suspended in, outermost first (down to the first async generator)."""
    names = []
    awaitable: Any = task.get_coro()
    while awaitable is not None and hasattr(awaitable, "cr_code"):
        names.append(awaitable.cr_code.co_qualname)
        awaitable = awaitable.cr_await
    return names


@pytest.fixture
async def open_socket(services: Services, seeded: dict) -> AsyncIterator[tuple[Any, asyncio.Task[None]]]:
    """An acknowledged graphql-transport-ws socket on the real app: its GraphQL view and the app's task."""
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
    yield view, running
    inbound.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(running, 10)
    assert len(view.open_sockets) == 0


async def test_an_acknowledged_socket_keeps_no_connection_init_deadline_task(open_socket: tuple[Any, asyncio.Task[None]]) -> None:
    """strawberry cancels the deadline at `connection_init` but kept the finished task (with its CancelledError
    and traceback, ~1.6 KB) for as long as the socket stays open."""
    view, _ = open_socket
    [handler] = [socket for sockets in view.open_sockets._by_digest.values() for socket in sockets]
    assert handler.connection_acknowledged and handler.connection_init_timeout_task is None


async def test_an_open_socket_is_not_held_in_frames_of_our_pass_through_layers(open_socket: tuple[Any, asyncio.Task[None]]) -> None:
    """The in-flight limit and the GraphQL view's HTTP checks do nothing for a websocket: they hand it on
    without staying suspended in between for the socket's life."""
    _, running = open_socket
    awaiting = _awaiting(running)
    assert "_Reauthenticating.handle" in awaiting  # the walk reached the socket's handler
    assert not {"Backpressure.__call__", "SwitchboardGraphQL.__call__", "SwitchboardGraphQL.run"} & set(awaiting)
