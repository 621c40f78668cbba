"""Publishing messages onto Redis streams and reading a route's history back.

A message is published atomically by one Lua call: an entry on the shared stream (`keys.FIREHOSE`, read by
every web process's hub) and an entry with the same ID on each route's own stream (kept for resume). The entry
ID is the message's cursor. One call publishes a batch of messages in order, each on its own: a message that
meets a Redis error fails alone, with that error. A final message is published at most once per request: the
script sets the request's final marker first and publishes nothing when it was already set. A route stream's
expiry is set by a request's first message and renewed by its final one (and messages without a chunk id),
not by every chunk: a stream lives `replay_ttl_s` after the last final published on it.

An answer's chunks go through a `ChunkStream`: published in order without the model waiting for each, so the
chunks a model sends together go out in one call; once one of them could not be published none after it is,
and the chunk ids a subscriber sees stay contiguous. Everything one process publishes goes out in the order
it was handed over, so a request's final, published after its chunks were handed over, comes after them.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Sequence

import orjson
from redis.asyncio import Redis

from core import keys
from core.errors import InvalidInput
from core.redis import LuaScript
from core.settings import Settings
from subscriptions.messages import AiMessage

__all__ = ["ChunkStream", "Publisher", "replay", "parse_cursor", "after_cursor"]

# KEYS: the firehose, then per message its request's final marker and its routes' streams. ARGV: the limits
# (firehose and route MAXLEN, the route expiry, the final marker's expiry), then per message: its number of
# routes, '1' when it is a final, '1' when it sets its routes' expiry, the routes' ids (for the hub), the
# message. Returns per message its entry ID, false (a final already published) or its error.
_PUBLISH = LuaScript("""
local function publish(k, a)
  if ARGV[a + 1] == '1' then
    if not redis.call('SET', KEYS[k], '1', 'NX', 'EX', ARGV[4]) then return false end
  end
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'r', ARGV[a + 3], 'm', ARGV[a + 4])
  for i = k + 1, k + tonumber(ARGV[a]) do
    redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[2], id, 'm', ARGV[a + 4])
    if ARGV[a + 2] == '1' then redis.call('EXPIRE', KEYS[i], ARGV[3]) end
  end
  return id
end
local results, k = {}, 2
for a = 5, #ARGV, 5 do
  local ok, result = pcall(publish, k, a)
  if ok or type(result) == 'table' then results[#results + 1] = result
  else results[#results + 1] = redis.error_reply(tostring(result)) end
  k = k + 1 + tonumber(ARGV[a])
end
return results
""")

_CURSOR = re.compile(r"^([0-9]{1,20})-([0-9]{1,20})\Z")
_MAX_PART = 2**64 - 1


class Publisher:
    """Publishes messages; one per process, sharing the process's Redis client.

    Concurrent publishes are coalesced: whatever is waiting when the flusher runs goes out in one Lua call
    (one command and one round trip for hundreds of streams), while a lone publish costs one call as before.
    The messages of one stream stay in order because each waits for its own publish before the next.
    """

    _BATCH = 512

    def __init__(self, redis: Redis, *, route_maxlen: int, firehose_maxlen: int, replay_ttl_s: int) -> None:
        self._redis = redis
        self._limits = (str(firehose_maxlen), str(route_maxlen), str(replay_ttl_s), str(keys.FINAL_TTL_S))
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None

    async def publish(self, message: AiMessage, routes: Sequence[str], *, final: bool = False) -> str | None:
        """Publish under `routes`; returns the cursor, or None when `final` and the request had its final."""
        cursor = await self._hand_over(message, routes, final=final)
        return cursor.decode() if isinstance(cursor, bytes) else None

    def chunks(self, routes: Sequence[str]) -> ChunkStream:
        """A stream for one answer's chunks on `routes` (see `ChunkStream`)."""
        return ChunkStream(self, routes)

    def _hand_over(
        self, message: AiMessage, routes: Sequence[str], *, final: bool = False, stream: ChunkStream | None = None
    ) -> asyncio.Future[object]:
        if not routes:
            raise ValueError("a message needs at least one route")
        expire = final or message.chunk_id is None or message.chunk_id == 1
        call_keys = [keys.final(message.request_id), *(keys.route(r) for r in routes)]
        call_args: list[str | bytes] = [str(len(routes)), "1" if final else "0", "1" if expire else "0", ",".join(routes),
                                        orjson.dumps(message.to_wire())]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        self._pending.append((call_keys, call_args, future, stream))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush(), name="switchboard-publisher")
        return future

    async def _flush(self) -> None:
        while self._pending:
            taken, self._pending = self._pending[: self._BATCH], self._pending[self._BATCH :]
            batch = []
            for pending in taken:
                _, _, future, stream = pending
                if stream is not None and stream.lost is not None:  # an earlier chunk of its stream failed
                    _settle(future, None, None)
                else:
                    batch.append(pending)
            if not batch:
                continue
            call_keys: list[str] = [keys.FIREHOSE]
            call_args: list[str | bytes] = [*self._limits]
            for message_keys, message_args, _, _ in batch:
                call_keys += message_keys
                call_args += message_args
            try:
                results = await _PUBLISH(self._redis, call_keys, call_args)  # one command for the batch
            except BaseException as exc:  # hand the failure to every waiting publisher, then go on
                for _, _, future, stream in batch:
                    _settle(future, stream, exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, _, future, stream), result in zip(batch, results, strict=True):
                _settle(future, stream, result)

    @classmethod
    def for_settings(cls, redis: Redis, settings: Settings) -> Publisher:
        return cls(
            redis,
            route_maxlen=settings.route_maxlen,
            firehose_maxlen=settings.firehose_maxlen,
            replay_ttl_s=settings.replay_ttl_s,
        )

    async def has_final(self, request_id: str) -> bool:
        return bool(await self._redis.exists(keys.final(request_id)))


class ChunkStream:
    """One answer's chunks, published in order without waiting for each (`send` returns once the chunk is
    handed over, unless `WINDOW` chunks are still unpublished): the chunks a model sends together go out in
    one call. The first error of a chunk is kept in `lost`, and no later chunk of the stream is published
    (the `Publisher` drops them; within one call a stream's messages share their keys, so an error there
    fails all of them alike): the chunk ids a subscriber sees stay contiguous. `drain` waits until every
    chunk handed over is published or dropped."""

    WINDOW = 64

    def __init__(self, publisher: Publisher, routes: Sequence[str]) -> None:
        self._publisher = publisher
        self._routes = routes
        self._unsettled: deque[asyncio.Future[object]] = deque()
        self.lost: BaseException | None = None

    async def send(self, message: AiMessage) -> None:
        if self.lost is not None:
            return
        unsettled = self._unsettled
        while unsettled and unsettled[0].done():
            unsettled.popleft()
        if len(unsettled) >= self.WINDOW:
            await unsettled.popleft()  # settled with None, also when its chunk failed (see `lost`)
            if self.lost is not None:
                return
        unsettled.append(self._publisher._hand_over(message, self._routes, stream=self))

    async def drain(self) -> None:
        if self._unsettled:
            await self._unsettled[-1]  # a process publishes in order: the last settles after the others
            self._unsettled.clear()


_Pending = tuple[list[str], list[str | bytes], asyncio.Future[object], ChunkStream | None]


def _settle(future: asyncio.Future[object], stream: ChunkStream | None, result: object) -> None:
    """A message's outcome to its publisher; a chunk's error goes to its stream instead (`ChunkStream.lost`)."""
    if isinstance(result, BaseException) and stream is not None:
        if stream.lost is None:
            stream.lost = result
        result = None
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


def parse_cursor(cursor: str, *, argument: str = "after") -> tuple[int, int]:
    """A stream entry ID `<ms>-<seq>`, each part a 64-bit unsigned integer as in Redis."""
    match = _CURSOR.match(cursor)
    if match is None or int(match.group(1)) > _MAX_PART or int(match.group(2)) > _MAX_PART:
        raise InvalidInput(argument, f"{cursor!r} is not a valid cursor")
    return int(match.group(1)), int(match.group(2))


def after_cursor(cursor: str, than: tuple[int, int]) -> bool:
    """True when `cursor` comes strictly after the position `than`."""
    ms, _, seq = cursor.partition("-")
    return (int(ms), int(seq)) > than


async def replay(redis: Redis, route: str, after: tuple[int, int], *, count: int = 1000) -> list[AiMessage]:
    """The route's messages published strictly after `after`, oldest first (at most `count`)."""
    ms, seq = after
    if seq < _MAX_PART:
        start = f"{ms}-{seq + 1}"
    elif ms < _MAX_PART:
        start = f"{ms + 1}-0"
    else:
        return []  # nothing comes after the last possible ID
    entries = await redis.xrange(keys.route(route), min=start, max="+", count=count)
    return [AiMessage.from_wire(orjson.loads(fields[b"m"]), cursor=entry_id.decode()) for entry_id, fields in entries]
