"""Issue 10's limits on a real `switchboard web` process started with small timeouts through its settings:
idle and unfinished HTTP connections are closed, websockets of both protocols that never send
`connection_init` are closed with 4408, a body over the limit is refused with 413 before it is sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
import websockets

from tests._redis import free_port
from tests._stack import Stack, _spawn, _stop, _wait_ready

pytestmark = [pytest.mark.timeout(90), pytest.mark.sqlite_stack]

LIMITS = {
    "SWITCHBOARD_HTTP_HEADER_TIMEOUT_S": "0.5",
    "SWITCHBOARD_HTTP_REQUEST_TIMEOUT_S": "1",
    "SWITCHBOARD_HTTP_KEEP_ALIVE_S": "0.5",
    "SWITCHBOARD_WS_INIT_TIMEOUT_S": "1",
    "SWITCHBOARD_MAX_BODY_BYTES": "100000",
    "SWITCHBOARD_MAX_HEADER_BYTES": "4096",
}


@pytest.fixture(scope="module")
def limited(stack: Stack) -> Iterator[str]:
    """A second web process on the stack's database and Redis, with the small limits above."""
    port = free_port()
    web = _spawn(["web", "--port", str(port)], {**stack.env, **LIMITS}, stack.logs / "web-limits.log")
    try:
        _wait_ready(f"http://127.0.0.1:{port}", [web], stack.logs)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(web)


async def _closed_after(address: str, data: bytes) -> bytes:
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), 30)  # everything until the server closes (hang guard)
    finally:
        writer.close()


async def test_connections_that_never_finish_a_request_are_closed(limited: str) -> None:
    many = await asyncio.gather(*(
        _closed_after(limited, b"" if i % 2 else b"POST /api/graphql HTTP/1.1\r\nHost: x\r\n") for i in range(50)
    ))
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in many)
    unfinished_body = b"POST /api/graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{"
    assert (await _closed_after(limited, unfinished_body)).startswith(b"HTTP/1.1 408 ")
    huge_head = b"GET /-/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n"
    assert (await _closed_after(limited, huge_head)).startswith(b"HTTP/1.1 431 ")


async def test_an_idle_kept_alive_connection_is_closed(limited: str) -> None:
    answer = await _closed_after(limited, b"GET /-/health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b'{"status":"ok"}')


async def test_a_body_over_the_limit_is_refused_by_its_declared_length(limited: str) -> None:
    head = b"POST /api/graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
    answer = await _closed_after(limited, head)  # no body sent: the answer comes without it
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 413 ")
    assert json.loads(body) == {"errors": [{"message": "Request body is too large (maximum is 100000 bytes)"}]}
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"http://{limited}/api/graphql", json={"query": "{ __typename }"})
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("protocol", ["graphql-ws", "graphql-transport-ws"])
async def test_a_websocket_without_connection_init_is_closed_with_4408(limited: str, protocol: str) -> None:
    async with websockets.connect(f"ws://{limited}/api/graphql", subprotocols=[protocol], open_timeout=5) as ws:  # type: ignore[list-item]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 30)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4408, "Connection initialisation timeout")


async def test_an_initialised_legacy_websocket_stays_open_past_the_deadline(limited: str, stack: Stack) -> None:
    async with websockets.connect(f"ws://{limited}/api/graphql", subprotocols=["graphql-ws"], open_timeout=5) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {stack.token('alice')}"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "connection_ack"}
        await ws.send(json.dumps({"type": "start", "id": "1", "payload": {"query": "subscription { aiCompletionResponse(userId: \"x\") { id } }"}}))
        await asyncio.sleep(1.5)  # past the init deadline (1 s): the socket must still serve
        await ws.send("not a message")  # ignored by the legacy protocol (not JSON)
        await ws.send(json.dumps({"type": "start", "id": 2}))  # not a protocol message: closed with 4400
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
