"""The GraphQL context and the view that builds it (HTTP and both websocket protocols)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from cross_web import HTTPException
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_WS_PROTOCOL

from access.tokens import Principal
from api.auth import principal_for, token_from_headers, token_from_params
from api.graphql.sockets import LegacySocketHandler, SocketHandler
from api.services import Services
from core.settings import Settings

__all__ = ["Context", "SwitchboardGraphQL"]

WS_FORBIDDEN = 4403


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | WebSocket | None
    services: Services
    principal: Principal | None
    bad_token: bool = False
    connection_params: dict[str, Any] | None = None

    @property
    def hub(self):  # noqa: ANN201 - the subscription resolvers read these four by name
        return self.services.hub

    @property
    def redis(self):  # noqa: ANN201
        return self.services.redis

    @property
    def sessions(self):  # noqa: ANN201
        return self.services.sessions

    @property
    def settings(self) -> Settings:
        return self.services.settings


class _BodyTooLarge(Exception):
    pass


def _error(status: int, message: str, *, close: bool = False) -> Response:
    """An HTTP-level refusal in GraphQL's error shape."""
    return JSONResponse({"errors": [{"message": message}]}, status, headers={"Connection": "close"} if close else None)


class SwitchboardGraphQL(GraphQL):
    # Both websocket protocols close a socket that sends no connection_init in time.
    graphql_transport_ws_handler_class = SocketHandler
    graphql_ws_handler_class = LegacySocketHandler

    def encode_json(self, data: object) -> str:
        # orjson: several times faster than json.dumps on every streamed message; text, as clients expect
        return orjson.dumps(data).decode()

    def decode_json(self, data: str | bytes) -> object:
        # orjson is strict where json.loads is not: invalid UTF-8, lone surrogates, NaN/Infinity and nesting
        # beyond 1,024 levels are parse errors (HTTP 400; on a websocket, an invalid message)
        return orjson.loads(data)

    def parse_json(self, data: str | bytes) -> Any:
        parsed = super().parse_json(data)
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "The request body must be a JSON object")
        return parsed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        limit = Request(scope).app.state.services.settings.max_body_bytes
        too_large = f"Request body is too large (maximum is {limit} bytes)"
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:  # refused before a byte of the body is read
            return await _error(413, too_large, close=True)(scope, receive, send)
        received = 0

        async def bounded_receive() -> Message:  # a chunked body is cut off once past the limit
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLarge
            return message

        try:
            response = await self.run(Request(scope, receive=bounded_receive))
        except HTTPException as exc:
            response = _error(exc.status_code, exc.reason)
        except _BodyTooLarge:
            response = _error(413, too_large, close=True)
        except ClientDisconnect:
            return None  # nobody is left to answer
        await response(scope, receive, send)
        return None

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        services: Services = request.app.state.services
        token = token_from_headers(request.headers)
        principal = await principal_for(services, token)
        return Context(request, response, services, principal, bad_token=token is not None and principal is None)

    async def on_ws_connect(self, context: Context) -> None:
        if context.principal is None and not context.bad_token:
            context.principal = await principal_for(context.services, token_from_params(context.connection_params))
        if context.principal is None:
            websocket = context.request
            if isinstance(websocket, WebSocket) and websocket.scope.get("subprotocols", [None])[0] == GRAPHQL_WS_PROTOCOL:
                # strawberry closes a rejected legacy graphql-ws connection with 1011; clients expect 4403
                await websocket.close(code=WS_FORBIDDEN, reason="Forbidden")
            raise ConnectionRejectionError({"message": "Forbidden"})
        return None
