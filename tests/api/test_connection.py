"""The web process's HTTP protocol (`api.connection`) on a real uvicorn server and real sockets: a client that
sends nothing, or trickles its request head or body, is answered 408 and disconnected; an oversized head gets
431; a slow answer is not cut. Timeouts are made small here instead of waiting long. Its websocket protocol
writes the frames of one loop turn at once, in order, and flushes before it closes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
import websockets

from api.connection import CoalescedWrites, CoalescingWebSocketProtocol, guarded_protocol

HEADER_TIMEOUT_S = 0.3
REQUEST_TIMEOUT_S = 0.6
MAX_HEADER_BYTES = 2048


async def _http_app(scope: dict, receive, send) -> None:  # noqa: ANN001
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/slow":
        await asyncio.sleep(REQUEST_TIMEOUT_S * 2)  # answering takes longer than any request deadline
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body) + 2).encode())]})
    await send({"type": "http.response.body", "body": b"ok" + body})


async def _ws_app(scope: dict, receive, send) -> None:  # noqa: ANN001
    """Answers a websocket's first message with three frames sent back to back, then closes with 4000."""
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    text = (await receive())["text"]
    for i in range(3):
        await send({"type": "websocket.send", "text": f"{text} {i}"})
    await send({"type": "websocket.close", "code": 4000})


async def _held_ws_app(scope: dict, receive, send) -> None:  # noqa: ANN001
    """Accepts, echoes each message, and holds the socket until the client goes."""
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message["text"]})


async def _app(scope: dict, receive, send) -> None:  # noqa: ANN001
    if scope["type"] == "websocket":
        return await (_held_ws_app if scope["path"] == "/held" else _ws_app)(scope, receive, send)
    return await _http_app(scope, receive, send)


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, uvicorn.Server]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        _app, lifespan="off", log_config=None, timeout_keep_alive=30, ws=CoalescingWebSocketProtocol,
        http=guarded_protocol(header_timeout_s=HEADER_TIMEOUT_S, request_timeout_s=REQUEST_TIMEOUT_S, max_header_bytes=MAX_HEADER_BYTES),
    )
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    try:
        yield sock.getsockname()[1], server
    finally:
        await server.shutdown(sockets=[sock])


@pytest.fixture
def port(server: tuple[int, uvicorn.Server]) -> int:
    return server[0]


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), 30)  # a hang guard, not a timing assertion


async def _trickle(writer: asyncio.StreamWriter, data: bytes) -> None:
    for i in range(len(data)):
        if writer.is_closing():
            return
        writer.write(data[i : i + 1])
        try:
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(0.05)  # the client under test is slow: this is its pace, not a synchronization


async def test_a_connection_that_sends_nothing_is_answered_408_and_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = await _answer(reader)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and b"connection: close" in answer
    writer.close()


async def test_an_incomplete_head_is_answered_408_and_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /api/graphql HTTP/1.1\r\nHost: x\r\nX-Padding: ")
    answer = await _answer(reader)
    assert answer.startswith(b"HTTP/1.1 408 ")
    writer.close()


async def test_a_head_trickled_byte_by_byte_does_not_hold_the_connection(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 1000 + b"\r\n"  # 50 s at this pace
    trickle = asyncio.create_task(_trickle(writer, head))
    answer = await _answer(reader)
    assert answer.startswith(b"HTTP/1.1 408 ")
    await trickle
    writer.close()


async def test_a_body_trickled_past_the_request_deadline_is_answered_408(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
    trickle = asyncio.create_task(_trickle(writer, b"x" * 1000))
    answer = await _answer(reader)
    assert answer.startswith(b"HTTP/1.1 408 ")
    await trickle
    writer.close()


async def test_an_oversized_head_is_answered_431(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * MAX_HEADER_BYTES + b"\r\n\r\n")
    answer = await _answer(reader)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    writer.close()


async def test_requests_within_the_limits_are_served_on_a_kept_alive_connection_and_slow_answers_are_not_cut(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for path, body in (("/", b"first"), ("/slow", b"second"), ("/", b"third")):
        writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert status.startswith(b"HTTP/1.1 200 OK"), status
        assert await reader.readexactly(len(body) + 2) == b"ok" + body
    writer.close()


async def test_a_websockets_frames_of_one_turn_arrive_in_order_and_before_its_close(port: int) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{port}/") as socket_:
        await socket_.send("hello")
        received = [await asyncio.wait_for(socket_.recv(), 30) for _ in range(3)]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket_.recv(), 30)
    assert received == ["hello 0", "hello 1", "hello 2"]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000


async def test_an_open_websocket_holds_neither_its_handshake_nor_asyncio_queues(server: tuple[int, uvicorn.Server]) -> None:
    """A web process holds thousands of open websockets (SPEC §12: ≤ 30 KB each): the handshake's request and
    response (~4.5 KB of headers) are let go once it is answered, and the inbox of ASGI events and the
    writable flag are not an asyncio.Queue and Event (~4 KB, empty). The socket still works both ways."""
    port, uvicorn_server = server
    async with websockets.connect(f"ws://127.0.0.1:{port}/held") as socket_:
        await socket_.send("one")
        assert await asyncio.wait_for(socket_.recv(), 30) == "one"
        [protocol] = [c for c in uvicorn_server.server_state.connections if isinstance(c, CoalescingWebSocketProtocol)]
        assert not hasattr(protocol, "request") and not hasattr(protocol, "response")
        parser = protocol.conn.parser  # websockets' parser generator keeps the request as a local
        assert not parser.gi_frame.f_locals["request"].headers  # type: ignore[attr-defined]
        assert not isinstance(protocol.queue, asyncio.Queue) and not isinstance(protocol.writable, asyncio.Event)
        for text in ("two", "three"):
            await socket_.send(text)
        assert [await asyncio.wait_for(socket_.recv(), 30) for _ in range(2)] == ["two", "three"]


class _RecordingTransport(asyncio.Transport):
    """The socket's edge: what reaches the kernel, one entry per write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


async def test_writes_of_one_loop_turn_become_one_and_close_flushes_first() -> None:
    inner = _RecordingTransport()
    transport = CoalescedWrites(inner, asyncio.get_running_loop())
    for frame in (b"a", b"b", b"c"):
        transport.write(frame)
    assert inner.writes == []  # not before the turn ends
    await asyncio.sleep(0)  # one turn of the loop
    assert inner.writes == [b"abc"]
    transport.write(b"d")
    transport.close()
    assert inner.writes == [b"abc", b"d"] and inner.closed
    transport.write(b"after close")
    await asyncio.sleep(0)
    assert inner.writes == [b"abc", b"d"]  # a closing transport gets nothing more
