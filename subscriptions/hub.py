"""The per-process fan-out hub: one Redis connection reads every message for every local subscriber.

The hub follows the shared stream (`keys.FIREHOSE`) with a blocking XREAD on its own connection and hands
each entry to the subscribers registered for one of the entry's routes. However many websockets a web
process holds, it reads Redis through this one connection (plus the bounded pool used for replays).
A lost connection is re-established and reading resumes from the last entry seen, so nothing is skipped.

The hub must outlive anything it reads: an entry it cannot dispatch (malformed, or from a newer version
during a rolling deploy) is skipped, counted (`switchboard_hub_bad_entries_total`) and logged without its
content; any other error is logged and reading starts again after a backoff. `running` is False only when
the task ended (cancelled), and the readiness check reports that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator

import orjson
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core import keys
from core.errors import SubscriberOverflow
from core.metrics import HUB_BAD_ENTRIES
from subscriptions.messages import AiMessage

__all__ = ["Hub", "Subscriber"]

log = logging.getLogger(__name__)


class Subscriber:
    """One subscription's inbox. Iterate it (once) to receive messages; the hub fills it.

    A process holds thousands of these, mostly idle, so an idle one holds no container: the deque exists
    while messages wait, and the future while the reader waits (an `asyncio.Queue` is ~3.3 KB, empty)."""

    __slots__ = ("route", "_maxsize", "_messages", "_waiter", "_overflowed")

    def __init__(self, route: str, maxsize: int) -> None:
        self.route = route
        self._maxsize = maxsize
        self._messages: deque[AiMessage] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._overflowed = False

    def deliver(self, message: AiMessage) -> None:
        if self._messages is None:
            self._messages = deque()
        elif len(self._messages) >= self._maxsize:
            self._overflowed = True
            return
        self._messages.append(message)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def __aiter__(self) -> AsyncIterator[AiMessage]:
        while True:
            messages = self._messages
            if not messages:
                if self._overflowed:
                    raise SubscriberOverflow()
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
                continue
            message = messages.popleft()
            if not messages:
                self._messages = None
            yield message


class Hub:
    def __init__(self, redis: Redis, *, block_ms: int = 5_000, batch: int = 1_000, inbox_size: int = 10_000) -> None:
        self._redis = redis  # a client of its own: XREAD BLOCK holds its connection
        self._block_ms = block_ms
        self._batch = batch
        self._inbox_size = inbox_size
        self._routes: defaultdict[str, set[Subscriber]] = defaultdict(set)
        self._last_id: str | None = None
        self._ready = asyncio.Event()
        self.running = False  # True while `run` follows the stream
        self.lag_s = 0.0  # age of the newest entry of the last batch read (stream ids are milliseconds)

    @property
    def subscriber_count(self) -> int:
        return sum(len(subs) for subs in self._routes.values())

    def subscribe(self, route: str) -> Subscriber:
        subscriber = Subscriber(route, self._inbox_size)
        self._routes[route].add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subs = self._routes.get(subscriber.route)
        if subs is not None:
            subs.discard(subscriber)
            if not subs:
                del self._routes[subscriber.route]

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def run(self) -> None:
        """Follow the shared stream until cancelled; no error ends it."""
        backoff = 0.1
        self.running = True
        try:
            while True:
                try:
                    if self._last_id is None:
                        newest = await self._redis.xrevrange(keys.FIREHOSE, count=1)
                        self._last_id = newest[0][0].decode() if newest else "0-0"
                        self._ready.set()
                    await self._read_once()
                    backoff = 0.1
                    continue
                except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                    log.warning("hub lost Redis (%s); reconnecting in %.1fs", exc, backoff)
                except Exception as exc:  # a bug must not silence every subscriber of the process
                    log.error("hub failed (%s); reading again in %.1fs", type(exc).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        finally:
            self.running = False

    async def _read_once(self) -> None:
        assert self._last_id is not None
        response = await self._redis.xread({keys.FIREHOSE: self._last_id}, count=self._batch, block=self._block_ms)
        if not response:
            self.lag_s = 0.0
        for _stream, entries in response:
            for entry_id, fields in entries:
                cursor = entry_id.decode()
                try:
                    self._dispatch(cursor, fields)
                except Exception as exc:  # skip the entry; its content may be user data: not logged
                    HUB_BAD_ENTRIES.inc()
                    log.warning("hub skipped entry %s of %s: %s", cursor, keys.FIREHOSE, type(exc).__name__)
                self._last_id = cursor
            self.lag_s = max(0.0, time.time() - int(self._last_id.partition("-")[0]) / 1000)

    def _dispatch(self, cursor: str, fields: dict[bytes, bytes]) -> None:
        targets = [self._routes.get(route) for route in fields[b"r"].decode().split(",")]
        if not any(targets):
            return
        message = AiMessage.from_wire(orjson.loads(fields[b"m"]), cursor=cursor)
        for subs in targets:
            for subscriber in subs or ():
                subscriber.deliver(message)
