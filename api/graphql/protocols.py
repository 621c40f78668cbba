"""The two websocket protocols' handlers, with a deadline for `connection_init`.

Both send the events of a plain `aiCompletionResponse` selection themselves
(`subscriptions.execution.EVENT_SINK`): each is one `next` (graphql-ws: `data`) message, as strawberry
would send it, without an execution per event. graphql-transport-ws also ends the subscription's execution
once it started and sends its events after (`EventSink.run_detached`): a live subscription then keeps none of
strawberry's and graphql-core's state (~10 KB each).

strawberry's graphql-transport-ws handler has the deadline (`connection_init_wait_timeout`, here taken from
the settings per connection); its legacy graphql-ws handler has none, so a socket that never sends
`connection_init` would stay open for good: this one closes it with 4408 as the newer protocol does, and
closes with 4400 on a message that is not a protocol message instead of failing with a traceback.

Operations with the same document share one copy of its text (both protocols).
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import suppress
from datetime import timedelta
from functools import partial
from typing import Any

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler, Operation
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from subscriptions.execution import EVENT_SINK, EventSink

__all__ = ["SocketHandler", "LegacySocketHandler", "INIT_TIMEOUT_CODE"]

INIT_TIMEOUT_CODE = 4408
_INVALID_MESSAGE_CODE = 4400


def _init_timeout_s(context: Any) -> float:
    return float(context.settings.ws_init_timeout_s)


class SocketHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    """graphql-transport-ws, with the settings' connection_init deadline."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connection_init_wait_timeout = timedelta(seconds=_init_timeout_s(self.context))

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        # strawberry cancels the deadline's task here but keeps it, with its CancelledError and traceback, for
        # the socket's life (~1.6 KB per websocket). The loop finishes the cancelled task on its own.
        self.connection_init_timeout_task = None

    async def handle_subscribe(self, message: Any) -> None:
        await super().handle_subscribe(_shared_document(message))

    async def run_operation(self, operation: Operation[Any, Any]) -> None:
        sink = EventSink(partial(_send_next, operation), detachable=True)
        EVENT_SINK.set(sink)  # in the operation's own task: for it alone
        try:
            await super().run_operation(operation)
        finally:
            sink.close()  # events detached but never run (the operation was stopped before)

    async def _send_result_stream(self, operation: Operation[Any, Any], result_source: Any) -> None:
        """strawberry's, then the events a subscription detached: its execution has ended and its state is
        freed. An error they raise ends the operation as strawberry ends it: one `next` with the (masked)
        error, then `complete`."""
        await super()._send_result_stream(operation, result_source)
        sink = EVENT_SINK.get()
        assert sink is not None
        try:
            await sink.run_detached()
        except Exception as exc:
            error = self.schema.reported_error(exc)  # type: ignore[attr-defined]  # api.graphql.schema._Schema
            await operation.send_operation_message(
                {"id": operation.id, "type": "next", "payload": {"data": None, "errors": [error.formatted]}}
            )


async def _send_next(operation: Operation[Any, Any], data: dict[str, Any]) -> None:
    await operation.send_operation_message({"id": operation.id, "type": "next", "payload": {"data": data}})


class LegacySocketHandler(BaseGraphQLWSHandler[Any, Any]):
    """graphql-ws (subscriptions-transport-ws), closed when `connection_init` does not come in time."""

    async def handle_async_results(
        self, operation_id: str, query: str, operation_name: str | None, variables: dict[str, object] | None
    ) -> None:
        EVENT_SINK.set(EventSink(partial(self._send_data, operation_id)))  # in the operation's own task: for it alone
        await super().handle_async_results(operation_id, query, operation_name, variables)

    async def _send_data(self, operation_id: str, data: dict[str, Any]) -> None:
        await self.send_message({"type": "data", "id": operation_id, "payload": {"data": data}})

    async def handle(self) -> None:
        deadline = asyncio.create_task(self._close_unless_initialised(), name="switchboard-ws-init-deadline")
        try:
            await super().handle()
        finally:
            deadline.cancel()
            with suppress(asyncio.CancelledError):
                await deadline

    async def _close_unless_initialised(self) -> None:
        await asyncio.sleep(_init_timeout_s(self.context))
        if not self.connection_acknowledged:
            await self.websocket.close(code=INIT_TIMEOUT_CODE, reason="Connection initialisation timeout")

    async def handle_message(self, message: Any) -> None:
        if not _is_protocol_message(message):
            await self.websocket.close(code=_INVALID_MESSAGE_CODE, reason="Invalid message")
            return
        await super().handle_message(message)

    async def handle_start(self, message: Any) -> None:
        await super().handle_start(_shared_document(message))


def _shared_document(message: Any) -> Any:
    """The message with its document's text interned: a frontend sends one document for all its subscriptions,
    and each operation keeps the text for its life (~0.4 KB each; an interned text goes with its last user)."""
    payload = message.get("payload") if isinstance(message, dict) else None
    if isinstance(payload, dict) and isinstance(payload.get("query"), str):
        payload["query"] = sys.intern(payload["query"])
    return message


def _is_protocol_message(message: Any) -> bool:
    """A graphql-ws message strawberry's handler can read: an object with a string `type`; `start` and
    `stop` with a string `id`, `start` with a `payload` object holding a string `query`."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return False
    if message["type"] not in ("start", "stop"):
        return True
    if not isinstance(message.get("id"), str):
        return False
    payload = message.get("payload")
    return message["type"] == "stop" or isinstance(payload, dict) and isinstance(payload.get("query"), str)
