"""Matching subscription messages to the requests that caused them (a message may arrive before the HTTP
answer that names its request)."""

from __future__ import annotations

import asyncio

__all__ = ["Finals"]

Arrival = tuple[float, dict]  # (arrival perf_counter, aiCompletionResponse data)


class _Mailbox:
    """First message per request id: kept until someone waits for it, or handed to whoever waits already."""

    def __init__(self) -> None:
        self._early: dict[str, Arrival] = {}
        self._waiting: dict[str, asyncio.Future[Arrival]] = {}

    def put(self, request_id: str, arrival: Arrival) -> None:
        future = self._waiting.pop(request_id, None)
        if future is None:
            self._early.setdefault(request_id, arrival)
        elif not future.done():
            future.set_result(arrival)

    async def get(self, request_id: str, timeout_s: float) -> Arrival:
        early = self._early.pop(request_id, None)
        if early is not None:
            return early
        future: asyncio.Future[Arrival] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            return await asyncio.wait_for(future, timeout_s)
        finally:
            self._waiting.pop(request_id, None)

    def forget(self, request_id: str) -> None:
        self._early.pop(request_id, None)


class Finals:
    """Feed it every subscription message (`on_message`); await `wait(request_id)` for that request's final,
    `first_chunk(request_id)` for its first streamed chunk.

    Only ASSISTANT messages count; finals are those with `chunkId: null`. A message that arrives before anyone
    waits for it is kept until asked for, so nothing is lost in the race between the HTTP answer and the
    websocket. `count`, `errors` and `chunks` count every final, error final and chunk seen.
    """

    def __init__(self) -> None:
        self._finals = _Mailbox()
        self._chunks = _Mailbox()
        self.count = 0
        self.errors = 0
        self.chunks = 0

    def on_message(self, _sub_id: str, data: dict, arrived: float) -> None:
        if data.get("role") != "ASSISTANT":
            return
        if data.get("chunkId") is not None:
            self.chunks += 1
            if data["chunkId"] == 1:
                self._chunks.put(data["requestId"], (arrived, data))
            return
        self.count += 1
        if data.get("errors"):
            self.errors += 1
        self._finals.put(data["requestId"], (arrived, data))

    async def wait(self, request_id: str, timeout_s: float) -> Arrival:
        """(arrival perf_counter, message) of the request's final; raises TimeoutError."""
        try:
            return await self._finals.get(request_id, timeout_s)
        finally:
            self._chunks.forget(request_id)

    async def first_chunk(self, request_id: str, timeout_s: float) -> Arrival:
        """(arrival perf_counter, message) of the request's chunk 1; raises TimeoutError."""
        return await self._chunks.get(request_id, timeout_s)
