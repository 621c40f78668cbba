"""Matching final messages to the requests that caused them (a final may arrive before the HTTP answer)."""

from __future__ import annotations

import asyncio

__all__ = ["Finals"]


class Finals:
    """Feed it every subscription message (`on_message`); await `wait(request_id)` for that request's final.

    Only ASSISTANT messages with `chunkId: null` count; a final that arrives before anyone waits for it is
    kept until `wait` is called, so nothing is lost in the race between the HTTP answer and the websocket.
    """

    def __init__(self) -> None:
        self._early: dict[str, tuple[float, dict]] = {}
        self._waiting: dict[str, asyncio.Future[tuple[float, dict]]] = {}
        self.count = 0
        self.errors = 0

    def on_message(self, _sub_id: str, data: dict, arrived: float) -> None:
        if data.get("chunkId") is not None or data.get("role") != "ASSISTANT":
            return
        self.count += 1
        if data.get("errors"):
            self.errors += 1
        request_id = data["requestId"]
        future = self._waiting.pop(request_id, None)
        if future is None:
            self._early[request_id] = (arrived, data)
        elif not future.done():
            future.set_result((arrived, data))

    async def wait(self, request_id: str, timeout_s: float) -> tuple[float, dict]:
        """(arrival perf_counter, message) of the request's final; raises TimeoutError."""
        early = self._early.pop(request_id, None)
        if early is not None:
            return early
        future = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            return await asyncio.wait_for(future, timeout_s)
        finally:
            self._waiting.pop(request_id, None)
