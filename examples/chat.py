"""Ask Duo Chat on a Switchboard and print the answer as it streams, the way GitLab's frontend does it.

    SWITCHBOARD_TOKEN=glpat-... python examples/chat.py "How do I revert a commit?"

Uses only what Switchboard's virtual environment has (httpx, websockets): run it with `.venv/bin/python`.
`SWITCHBOARD_URL` defaults to http://127.0.0.1:8080. Exit status 0 on the final answer, 1 on an error.

The exchange (SPEC §5):
1. `currentUser { id }` over HTTP: the subscription is keyed by the user's global ID;
2. a websocket with the `graphql-transport-ws` protocol: `connection_init` carrying the token, then a
   `subscribe` to `aiCompletionResponse(userId, aiAction: CHAT, clientSubscriptionId, after: "0-0")`: a
   fresh `clientSubscriptionId` names a new stream, and `after: "0-0"` replays it from its start, so no chunk
   published before the subscription is registered is lost;
3. the `aiAction` mutation with the same `clientSubscriptionId`, over HTTP;
4. messages with `chunkId` 1, 2, 3, ... carry the answer's pieces; the one with `chunkId: null` is final.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

SUBSCRIPTION = """subscription($userId: UserID, $id: String) {
  aiCompletionResponse(userId: $userId, aiAction: CHAT, clientSubscriptionId: $id, after: "0-0") {
    requestId content chunkId errors role
  }
}"""
ASK = """mutation($content: String!, $id: String) {
  aiAction(input: {chat: {content: $content}, clientSubscriptionId: $id}) { requestId errors }
}"""
TIMEOUT_S = 120.0


class ChatFailed(Exception):
    pass


async def graphql(http: httpx.AsyncClient, query: str, variables: dict[str, object]) -> dict:
    response = await http.post("/api/graphql", json={"query": query, "variables": variables})
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        errors = body.get("errors") or [{"message": body.get("message", response.reason_phrase)}]
        raise ChatFailed("; ".join(error["message"] for error in errors))
    return body["data"]


async def chat(url: str, token: str, question: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
        user = (await graphql(http, "{ currentUser { id } }", {}))["currentUser"]
        if user is None:
            raise ChatFailed("no user: set SWITCHBOARD_TOKEN to a personal access token")
        subscription_id = str(uuid.uuid4())
        ws_url = url.replace("http", "ws", 1) + "/api/graphql"
        async with connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
            if json.loads(await ws.recv())["type"] != "connection_ack":
                raise ChatFailed("the server refused the websocket")
            variables = {"userId": user["id"], "id": subscription_id}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION, "variables": variables}}))
            payload = (await graphql(http, ASK, {"content": question, "id": subscription_id}))["aiAction"]
            if payload["errors"]:
                raise ChatFailed("; ".join(payload["errors"]))
            await stream(ws, payload["requestId"])


async def stream(ws, request_id: str) -> None:  # noqa: ANN001 - a websockets connection
    """Print the answer's chunks as they come; return on the final message."""
    printed = False
    async for raw in ws:
        frame = json.loads(raw)
        if frame["type"] == "ping":
            await ws.send(json.dumps({"type": "pong"}))
            continue
        if frame["type"] == "error":
            raise ChatFailed("; ".join(error["message"] for error in frame["payload"]))
        if frame["type"] == "complete":
            raise ChatFailed("the subscription ended before the answer")
        if frame["type"] != "next":
            continue
        message = frame["payload"]["data"]["aiCompletionResponse"]
        if message is None or message["requestId"] != request_id or message["role"] != "ASSISTANT":
            continue
        if message["chunkId"] is not None:
            print(message["content"], end="", flush=True)
            printed = True
            continue
        if message["errors"]:
            raise ChatFailed("; ".join(message["errors"]))
        print("" if printed else message["content"], flush=True)  # the final message holds the whole answer
        return
    raise ChatFailed("the connection closed before the answer")


def main() -> int:
    if len(sys.argv) != 2:
        print('usage: python examples/chat.py "your question"', file=sys.stderr)
        return 2
    url = os.environ.get("SWITCHBOARD_URL", "http://127.0.0.1:8080").rstrip("/")
    token = os.environ.get("SWITCHBOARD_TOKEN", "")
    if not token:
        print("set SWITCHBOARD_TOKEN (`make run` prints the demo users' tokens)", file=sys.stderr)
        return 1
    try:
        asyncio.run(asyncio.wait_for(chat(url, token, sys.argv[1]), TIMEOUT_S))
    except ChatFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, httpx.HTTPError, WebSocketException, TimeoutError) as exc:
        print(f"error: cannot talk to {url}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
