"""A small GraphQL client for tests: HTTP POST and the two websocket protocols, speaking the wire format."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import httpx
import websockets

__all__ = ["post", "GraphQLSocket", "SUBSCRIPTION"]

SUBSCRIPTION = """
subscription($userId: UserID, $resourceId: AiModelID, $clientSubscriptionId: String, $aiAction: AiAction, $after: String) {
  aiCompletionResponse(userId: $userId, resourceId: $resourceId, clientSubscriptionId: $clientSubscriptionId,
                       aiAction: $aiAction, after: $after) {
    id requestId content contentHtml role chunkId errors cursor timestamp
  }
}"""


async def post(url: str, token: str | None, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{url}/api/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
    return response.json()


class GraphQLSocket:
    """One websocket; `subscribe` returns an operation id, `next` the next payload of that operation."""

    def __init__(self, ws: websockets.ClientConnection, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self._ids = itertools.count(1)
        self._inbox: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str, token: str | None, *, protocol: str = "graphql-transport-ws",
                      header_token: str | None = None) -> GraphQLSocket:
        headers = {"Authorization": f"Bearer {header_token}"} if header_token else None
        ws = await websockets.connect(url, subprotocols=[protocol], additional_headers=headers, open_timeout=5)
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"} if token else {}}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if reply["type"] != "connection_ack":
            raise ConnectionError(reply)
        return cls(ws, protocol)

    async def _read(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            if "id" in message:
                self._inbox.setdefault(message["id"], asyncio.Queue()).put_nowait(message)

    async def subscribe(self, variables: dict[str, Any], query: str = SUBSCRIPTION, *, settle_s: float = 0.3) -> str:
        op = str(next(self._ids))
        self._inbox.setdefault(op, asyncio.Queue())
        kind = "subscribe" if self.protocol == "graphql-transport-ws" else "start"
        await self.ws.send(json.dumps({"id": op, "type": kind, "payload": {"query": query, "variables": variables}}))
        await asyncio.sleep(settle_s)  # no acknowledgement exists for a subscription; let it register
        return op

    async def next(self, op: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next protocol message for `op` (`next`/`data`, `error`, `complete`)."""
        return await asyncio.wait_for(self._inbox.setdefault(op, asyncio.Queue()).get(), timeout)

    async def message(self, op: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next AiMessage of `op`; fails on anything else."""
        frame = await self.next(op, timeout)
        assert frame["type"] in ("next", "data"), frame
        assert not frame["payload"].get("errors"), frame
        return frame["payload"]["data"]["aiCompletionResponse"]

    def pending(self, op: str) -> int:
        return self._inbox.setdefault(op, asyncio.Queue()).qsize()

    async def until_final(self, op: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        messages = []
        while True:
            message = await self.message(op, timeout)
            messages.append(message)
            # the answer: not the echo, a chunk or tool progress (select `type` to tell progress apart)
            if message["chunkId"] is None and message["role"] != "USER" and message.get("type") is None:
                return messages

    async def close(self) -> None:
        self._reader.cancel()
        await self.ws.close()
