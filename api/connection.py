"""uvicorn's HTTP protocol (httptools) with the limits it lacks: how long a client may take to send a request,
and how large the request head may be.

uvicorn times out only an idle keep-alive connection between requests (`timeout_keep_alive`), and the timer
is dropped at the first byte received. A client that connects and sends nothing, or trickles a request head
or body, holds its connection (and a file descriptor) for good; httptools has no limit on the head's size.
ASGI middleware cannot help: the app is called only once the head is complete. So, per connection:

- the head must be complete within `header_timeout_s` of the connection opening or of the first byte of a
  next request (keep-alive), and the whole request (head and body) within `request_timeout_s` of that;
  otherwise the client gets 408 and the connection is closed. The deadline is disarmed once the request is
  received: a slow answer (a streamed response) is the app's business. A websocket upgrade disarms it too.
- a head (request line and headers) larger than `max_header_bytes` gets 431 and the connection is closed.

And uvicorn's websocket protocol (websockets' sans-I/O one, uvicorn's default) writes every frame with its
own `send()` system call: a quarter of a web process's CPU when it delivers chunks to many subscriptions.
`CoalescingWebSocketProtocol` gathers the frames a websocket gets in one turn of the event loop into one write.
It also holds less per open websocket (a web process holds thousands, SPEC §12): its inbox of ASGI events and
its "writable" flag are a list and a flag instead of an `asyncio.Queue` and an `asyncio.Event` (~4 KB, empty),
and the handshake's request and response (their headers: ~4.5 KB) are let go once the handshake is done.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["CoalescedWrites", "CoalescingWebSocketProtocol", "GuardedHttpProtocol", "guarded_protocol"]

log = logging.getLogger(__name__)


class _HeadTooLarge(Exception):
    pass


def _response(status: str, text: str) -> bytes:
    body = text.encode()
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode() + body


class GuardedHttpProtocol(HttpToolsProtocol):
    header_timeout_s: float = 10.0
    request_timeout_s: float = 60.0
    max_header_bytes: int = 64 << 10

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._head_too_large = False
        self._started = 0.0

    # The deadline: armed when a connection opens and when a request's first byte arrives, moved on when
    # its head is complete, disarmed when it is received in full (or upgraded, or the connection is lost).
    def _arm(self, delay: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(delay, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_response("408 Request Timeout", "Request Timeout"))
        if self.cycle is not None:
            self.cycle.keep_alive = False
        log.info("http_request_timeout", extra={"client": self.client and self.client[0]})
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._arm(self.header_timeout_s)
        self._started = self.loop.time()

    def _count_head(self, *parts: bytes) -> None:
        self._head_bytes += sum(len(part) for part in parts)
        if self._head_bytes > self.max_header_bytes:
            self._head_too_large = True
            raise _HeadTooLarge  # httptools turns it into a parser error: uvicorn answers 400, see below

    def on_url(self, url: bytes) -> None:
        self._count_head(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(name, value)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        remaining = self.request_timeout_s - (self.loop.time() - self._started)
        self._arm(max(remaining, 0.0))
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the websocket protocol takes over: connection_init has its own deadline
        super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._disarm()
            self.transport.write(_response("431 Request Header Fields Too Large", "Request Header Fields Too Large"))
            self.transport.close()
            return
        super().send_400_response(msg)


def guarded_protocol(*, header_timeout_s: float, request_timeout_s: float, max_header_bytes: int) -> type[GuardedHttpProtocol]:
    """The protocol class to pass as uvicorn's `http`, with these limits."""
    return type(
        "GuardedHttpProtocol",
        (GuardedHttpProtocol,),
        {"header_timeout_s": header_timeout_s, "request_timeout_s": request_timeout_s, "max_header_bytes": max_header_bytes},
    )


class CoalescedWrites:
    """A transport whose writes of one event-loop turn go out as one: the first write of a turn schedules the
    flush (`call_soon`), the next ones join it. Bytes keep their order; `close()` flushes first. Everything
    else is the wrapped transport's (flow control included: it still calls the protocol's pause_writing)."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Inbox:
    """What uvicorn's websocket protocol asks of its `asyncio.Queue` of ASGI receive events: `put_nowait`,
    `get`, `empty`, `qsize`. Unbounded, as uvicorn's queue; a few events per connection, so a list."""

    __slots__ = ("_loop", "_events", "_getters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._events: list[Any] = []
        self._getters: list[asyncio.Future[None]] = []

    def put_nowait(self, event: Any) -> None:
        self._events.append(event)
        for getter in self._getters:  # each woken getter looks again; one takes the event
            if not getter.done():
                getter.set_result(None)

    async def get(self) -> Any:
        while not self._events:
            getter = self._loop.create_future()
            self._getters.append(getter)
            try:
                await getter
            finally:
                self._getters.remove(getter)
        return self._events.pop(0)

    def empty(self) -> bool:
        return not self._events

    def qsize(self) -> int:
        return len(self._events)


class _Flag:
    """What uvicorn's websocket protocol asks of its `asyncio.Event` "writable": set, clear, is_set, wait."""

    __slots__ = ("_loop", "_set", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._set = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = self._loop.create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        await waiter
        return True


class CoalescingWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol over `CoalescedWrites` (pass as uvicorn's `ws`), holding less per socket."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox(self.loop)  # type: ignore[assignment]
        self.writable = _Flag(self.loop)  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(CoalescedWrites(transport, self.loop))  # type: ignore[arg-type]

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete and hasattr(self, "response"):
            # Read only until the handshake's answer is written. websockets' parser keeps the request for the
            # socket's life (a local of its suspended generator), so its headers are emptied too.
            self.request.headers.clear()
            del self.request, self.response
