"""What an open GraphQL websocket keeps after `connection_ack` (SPEC §12: a web process holds thousands at
≤ 30 KB each), through the real app over raw ASGI: no finished `connection_init` deadline task, and no
suspended frame of our pass-through layers (each a coroutine of ~0.25–0.5 KB for the socket's life)."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.routing import WebSocketRoute

from api.app import create_app
from api.services import Services
from subscriptions.execution import EventExecutionContext
from subscriptions.messages import AiMessage, route_id
from subscriptions.quota import QUOTA

SUBSCRIPTION = "subscription($userId: UserID, $aiAction: AiAction) { aiCompletionResponse(userId: $userId, aiAction: $aiAction) { content } }"
RESUMING = "subscription($userId: UserID, $aiAction: AiAction, $after: String) { aiCompletionResponse(userId: $userId, aiAction: $aiAction, after: $after) { content } }"
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


@dataclass
class _Socket:
    view: Any  # the app's GraphQL view
    running: asyncio.Task[None]  # the app, serving this socket
    inbound: asyncio.Queue[dict[str, Any]]
    replies: asyncio.Queue[dict[str, Any]]
    writable: asyncio.Event  # cleared: the app's sends wait, as on a client that does not read

    def say(self, message: dict[str, Any]) -> None:
        self.inbound.put_nowait({"type": "websocket.receive", "text": json.dumps(message)})

    async def reply(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.replies.get(), 10)  # a hang guard, not a timing assertion

    @property
    def handler(self) -> Any:
        [handler] = [socket for sockets in self.view.open_sockets._by_digest.values() for socket in sockets]
        return handler


@pytest.fixture
async def socket(services: Services, seeded: dict) -> AsyncIterator[_Socket]:
    """An acknowledged graphql-transport-ws socket on the real app."""
    app = create_app(services.settings)
    app.state.services = services
    view = next(route.endpoint for route in app.routes if isinstance(route, WebSocketRoute))
    replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    writable = asyncio.Event()
    writable.set()

    async def send(message: dict[str, Any]) -> None:
        await writable.wait()
        if message["type"] == "websocket.send":
            replies.put_nowait(json.loads(message["text"]))

    inbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    inbound.put_nowait({"type": "websocket.connect"})
    socket = _Socket(view, asyncio.create_task(app(dict(SCOPE), inbound.get, send)), inbound, replies, writable)
    socket.say({"type": "connection_init", "payload": {"Authorization": f"Bearer {seeded['users']['alice']['token']}"}})
    assert (await socket.reply())["type"] == "connection_ack"
    yield socket
    inbound.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(socket.running, 10)
    assert len(view.open_sockets) == 0


async def test_an_acknowledged_socket_keeps_no_connection_init_deadline_task(socket: _Socket) -> None:
    """strawberry cancels the deadline at `connection_init` but kept the finished task (with its CancelledError
    and traceback, ~1.6 KB) for as long as the socket stays open."""
    assert socket.handler.connection_acknowledged and socket.handler.connection_init_timeout_task is None


async def test_an_open_socket_is_not_held_in_frames_of_our_pass_through_layers(socket: _Socket) -> None:
    """The in-flight limit and the GraphQL view's HTTP checks do nothing for a websocket: they hand it on
    without staying suspended in between for the socket's life."""
    awaiting = _awaiting(socket.running)
    assert "_Reauthenticating.handle" in awaiting  # the walk reached the socket's handler
    assert not {"Backpressure.__call__", "SwitchboardGraphQL.__call__", "SwitchboardGraphQL.run"} & set(awaiting)


async def test_subscriptions_with_the_same_document_share_its_text(socket: _Socket, seeded: dict) -> None:
    """A frontend sends one subscription document for all its subscriptions (GitLab's does); each operation
    kept its own copy of the text (~0.4 KB) for its life."""
    variables = {"userId": seeded["users"]["alice"]["gid"], "aiAction": "CHAT"}
    for n in (1, 2):
        socket.say({"id": str(n), "type": "subscribe", "payload": {"query": SUBSCRIPTION, "variables": variables}})
    socket.say({"type": "ping"})  # handled after both subscribes, in order
    assert (await socket.reply())["type"] == "pong"
    first, second = socket.handler.operations["1"], socket.handler.operations["2"]
    assert first.query == SUBSCRIPTION and first.query is second.query


def _executions_of(context: Any) -> list[Any]:
    return [o for o in gc.get_objects() if issubclass(type(o), EventExecutionContext) and o.context_value is context]


async def test_a_live_plain_subscription_keeps_no_execution_and_its_events_still_arrive(
    socket: _Socket, services: Services, seeded: dict
) -> None:
    """graphql-transport-ws ends a plain subscription's execution once it started and sends its events after:
    graphql-core's execution context and strawberry's state (~10 KB) are not kept for the subscription's life."""
    alice = seeded["users"]["alice"]
    route = route_id(alice["gid"], ai_action="chat")
    first = await services.publisher.publish(AiMessage("r", "assistant", content="m1", chunk_id=1), [route])
    await services.publisher.publish(AiMessage("r", "assistant", content="m2", chunk_id=2), [route])
    variables = {"userId": alice["gid"], "aiAction": "CHAT", "after": first}
    socket.say({"id": "1", "type": "subscribe", "payload": {"query": RESUMING, "variables": variables}})
    replayed = await socket.reply()
    assert replayed == {"id": "1", "type": "next", "payload": {"data": {"aiCompletionResponse": {"content": "m2"}}}}
    gc.collect()
    assert _executions_of(socket.handler.context) == []
    await services.publisher.publish(AiMessage("r", "assistant", content="m3", chunk_id=3), [route])
    assert (await socket.reply())["payload"]["data"]["aiCompletionResponse"]["content"] == "m3"
    assert services.hub.subscriber_count == 1 and QUOTA.held(alice["id"]) == 1
    socket.say({"id": "1", "type": "complete"})
    socket.say({"type": "ping"})  # answered once `complete` was handled: the operation's task has ended
    assert (await socket.reply())["type"] == "pong"
    assert services.hub.subscriber_count == 0 and QUOTA.held(alice["id"]) == 0


async def test_an_error_of_detached_events_ends_the_subscription_as_an_execution_would(
    socket: _Socket, services: Services, seeded: dict
) -> None:
    """A subscription that fell too far behind (a client that does not read; its inbox overflowed) is told
    why, then completed, and its place is given back."""
    alice = seeded["users"]["alice"]
    route = route_id(alice["gid"], ai_action="chat")
    witness = services.hub.subscribe(route)  # sees each message once the hub has handed it to the socket's too
    services.hub._inbox_size = 2  # noqa: SLF001 - the socket's subscription gets a small inbox
    socket.say({"id": "1", "type": "subscribe", "payload": {"query": RESUMING, "variables": {"userId": alice["gid"], "aiAction": "CHAT"}}})
    seen = aiter(witness)
    await services.publisher.publish(AiMessage("r", "assistant", content="m0"), [route])
    assert (await anext(seen)).content == "m0"
    assert (await socket.reply())["payload"]["data"]["aiCompletionResponse"]["content"] == "m0"  # it is live
    socket.writable.clear()
    for i in range(1, 5):  # m1 is being sent (and waits), m2 and m3 fill the inbox, m4 overflows it
        await services.publisher.publish(AiMessage("r", "assistant", content=f"m{i}", chunk_id=i), [route])
        assert (await anext(seen)).content == f"m{i}"
    socket.writable.set()
    replies = [await socket.reply() for _ in range(5)]
    assert [reply["type"] for reply in replies] == ["next"] * 4 + ["complete"]
    assert [reply["payload"]["data"]["aiCompletionResponse"]["content"] for reply in replies[:3]] == ["m1", "m2", "m3"]
    assert replies[3]["payload"] == {"data": None, "errors": [{"message": "too many undelivered messages; resubscribe with `after`"}]}
    assert services.hub.subscriber_count == 1 and QUOTA.held(alice["id"]) == 0  # the witness is left
    services.hub.unsubscribe(witness)
