"""The GraphQL context and the view that builds it (HTTP and both websocket protocols)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_WS_PROTOCOL

from access.tokens import Principal
from api.auth import principal_for, token_from_headers, token_from_params
from api.services import Services

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


class SwitchboardGraphQL(GraphQL):
    def encode_json(self, data: object) -> str:
        # orjson: several times faster than json.dumps on every streamed message; text, as clients expect
        return orjson.dumps(data).decode()

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
