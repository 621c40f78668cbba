"""The load generator's client, kept cheap because it shares the machine with the server:
GraphQL over a raw HTTP/1.1 keep-alive connection pool, and `graphql-transport-ws` over raw websockets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

__all__ = [
    "GraphQLHttp", "Socket", "open_sockets", "chat_body", "action_body", "cancel_body", "CURRENT_USER_BODY",
    "request_id_of", "subscription_query", "wall_time", "parse_timestamp", "close_all",
]

log = logging.getLogger(__name__)

MUTATION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors } }"
FIELDS = "requestId role content chunkId timestamp errors cursor"

# perf_counter() + _WALL_OFFSET ≈ time.time(): arrivals are stamped with perf_counter and converted when
# they are compared with the server's wall-clock `timestamp`.
_WALL_OFFSET = time.time() - time.perf_counter()


def wall_time(perf: float) -> float:
    return perf + _WALL_OFFSET


def parse_timestamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


# As GitLab's frontend sends it (ai_completion_response.subscription.graphql): one query text, the route in
# variables, so that every subscription of a process shares the same document.
SUBSCRIPTION = (
    "subscription aiCompletionResponse($userId: UserID, $clientSubscriptionId: String, $aiAction: AiAction) {"
    " aiCompletionResponse(userId: $userId, aiAction: $aiAction, clientSubscriptionId: $clientSubscriptionId)"
    f" {{ {FIELDS} }} }}"
)


# The route of a resource action: `{userId, resourceId[, clientSubscriptionId]}`.
RESOURCE_SUBSCRIPTION = (
    "subscription aiCompletionResponse($userId: UserID, $resourceId: AiModelID, $clientSubscriptionId: String) {"
    " aiCompletionResponse(userId: $userId, resourceId: $resourceId, clientSubscriptionId: $clientSubscriptionId)"
    f" {{ {FIELDS} }} }}"
)
CANCEL = "mutation($input: AiActionCancelInput!) { aiActionCancel(input: $input) { errors } }"
# An authenticated query that reads one row: SPEC §12's latency yardstick.
CURRENT_USER_BODY = orjson.dumps({"query": "query { currentUser { id username } }"})


def subscription_query(user_gid: str, client_subscription_id: str | None = None, *, resource_id: str | None = None) -> dict:
    """The `subscribe` payload for the `{userId, aiAction: CHAT[, clientSubscriptionId]}` route, or with
    `resource_id` for `{userId, resourceId[, clientSubscriptionId]}`."""
    variables: dict[str, str] = {"userId": user_gid}
    if resource_id is None:
        variables["aiAction"] = "CHAT"
    else:
        variables["resourceId"] = resource_id
    if client_subscription_id is not None:
        variables["clientSubscriptionId"] = client_subscription_id
    return {"query": SUBSCRIPTION if resource_id is None else RESOURCE_SUBSCRIPTION, "variables": variables}


def chat_body(content: str, client_subscription_id: str | None = None) -> bytes:
    data: dict[str, object] = {"chat": {"content": content}}
    if client_subscription_id is not None:
        data["clientSubscriptionId"] = client_subscription_id
    return orjson.dumps({"query": MUTATION, "variables": {"input": data}})


def action_body(action_input: dict[str, object]) -> bytes:
    """An `aiAction` mutation with the given `AiActionInput` (e.g. `{"explainCode": {...}, "clientSubscriptionId": ...}`)."""
    return orjson.dumps({"query": MUTATION, "variables": {"input": action_input}})


def cancel_body(request_id: str) -> bytes:
    return orjson.dumps({"query": CANCEL, "variables": {"input": {"requestId": request_id}}})


def request_id_of(response: dict) -> str:
    payload = (response.get("data") or {}).get("aiAction")
    if response.get("errors") or not payload or payload.get("errors") or not payload.get("requestId"):
        raise RuntimeError(f"aiAction failed: {str(response)[:300]}")
    return payload["requestId"]


class HttpError(RuntimeError):
    def __init__(self, message: str, status: int = 0, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s  # the answer's Retry-After, if any


class GraphQLHttp:
    """POSTs to /api/graphql over at most `size` persistent HTTP/1.1 connections."""

    def __init__(self, host: str, port: int, token: str, *, size: int = 64) -> None:
        self._addr = (host, port)
        self._head = (
            f"POST /api/graphql HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nAccept: application/json\r\n"
        ).encode()
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(size)

    async def post(self, body: bytes) -> dict:
        async with self._slots:
            reused = bool(self._idle)
            conn = self._idle.pop() if reused else await asyncio.open_connection(*self._addr)
            try:
                try:
                    result = await self._roundtrip(conn, body)
                except asyncio.IncompleteReadError as exc:
                    if not reused or exc.partial:
                        raise
                    conn[1].close()  # the server closed an idle keep-alive connection: the request never ran
                    conn = await asyncio.open_connection(*self._addr)
                    result = await self._roundtrip(conn, body)
            except BaseException:
                conn[1].close()
                raise
            self._idle.append(conn)
            return result

    async def _roundtrip(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], body: bytes) -> dict:
        reader, writer = conn
        writer.write(b"%sContent-Length: %d\r\n\r\n%s" % (self._head, len(body), body))
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked, retry_after = None, False, None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"retry-after":
                retry_after = float(value)
        if chunked:
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await reader.readexactly(size + 2))
                if size == 0:
                    break
            payload = b"".join(p[:-2] for p in parts)
        else:
            payload = await reader.readexactly(length or 0)
        if status != 200:
            raise HttpError(f"HTTP {status}: {payload[:300]!r}", status, retry_after)
        return orjson.loads(payload)

    async def close(self) -> None:
        for _reader, writer in self._idle:
            writer.close()
        self._idle.clear()


# (subscription id, aiCompletionResponse data, arrival perf_counter)
Handler = Callable[[str, dict, float], None]


class Socket:
    """One `graphql-transport-ws` connection carrying any number of subscriptions."""

    def __init__(self, url: str, token: str, handler: Handler) -> None:
        self._url = url
        self._token = token
        self._handler = handler
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task | None = None
        self.errors: list[dict] = []
        self.completed: set[str] = set()
        self.received = 0

    async def open(self) -> Socket:
        self._ws = await connect(
            self._url, subprotocols=[Subprotocol("graphql-transport-ws")], compression=None, max_size=None,
            ping_interval=None, open_timeout=60, close_timeout=2, max_queue=None,
        )
        await self._ws.send(orjson.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {self._token}"}}).decode())
        ack = orjson.loads(await asyncio.wait_for(self._ws.recv(), 60))
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"no connection_ack: {ack}")
        self._reader = asyncio.create_task(self._read())
        return self

    async def subscribe(self, items: Iterable[tuple[str, dict]]) -> None:
        """Subscribe (subscription id, payload) pairs; there is no ack, so callers wait a little afterwards."""
        assert self._ws is not None
        for sub_id, payload in items:
            await self._ws.send(orjson.dumps({"id": sub_id, "type": "subscribe", "payload": payload}).decode())

    async def _read(self) -> None:
        assert self._ws is not None
        handler = self._handler
        try:
            async for raw in self._ws:
                arrived = time.perf_counter()
                msg = orjson.loads(raw)
                kind = msg.get("type")
                if kind == "next":
                    self.received += 1
                    data = (msg["payload"].get("data") or {}).get("aiCompletionResponse")
                    if data is None:
                        self.errors.append(msg)
                        continue
                    try:
                        handler(msg["id"], data, arrived)
                    except Exception:
                        log.exception("handler failed")
                elif kind == "error":
                    self.errors.append(msg)
                elif kind == "complete":
                    self.completed.add(msg["id"])
                elif kind == "ping":
                    await self._ws.send('{"type":"pong"}')
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a closed connection ends the reader; the scenario notices missing messages
            self.errors.append({"type": "closed", "error": repr(exc)})

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._ws is not None:
            try:
                await asyncio.wait_for(self._ws.close(), 3)
            except Exception:
                pass


async def open_sockets(url: str, token: str, handler: Handler, count: int, *, parallel: int = 50) -> list[Socket]:
    """Open `count` sockets, at most `parallel` handshakes at a time."""
    gate = asyncio.Semaphore(parallel)

    async def one() -> Socket:
        async with gate:
            return await Socket(url, token, handler).open()

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def close_all(sockets: Iterable[Socket]) -> None:
    await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)
