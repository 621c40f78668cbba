"""Publishing messages onto Redis streams and reading a route's history back.

One Lua call publishes a message atomically: an entry on the shared stream (`keys.FIREHOSE`, read by every
web process's hub) and an entry with the same ID on each route's own stream (kept for resume). The entry ID
is the message's cursor. A final message is published at most once per request: the script sets the
request's final marker first and publishes nothing when it was already set.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import orjson
from redis.asyncio import Redis

from core import keys
from core.errors import InvalidInput
from core.settings import Settings
from subscriptions.messages import AiMessage

__all__ = ["Publisher", "replay", "parse_cursor", "after_cursor"]

_PUBLISH = """
if ARGV[6] == '1' then
  if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[7]) then return false end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'r', ARGV[2], 'm', ARGV[1])
for i = 3, #KEYS do
  redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[4], id, 'm', ARGV[1])
  redis.call('EXPIRE', KEYS[i], ARGV[5])
end
return id
"""

_CURSOR = re.compile(r"^([0-9]{1,20})-([0-9]{1,20})$")


class Publisher:
    """Publishes messages; one per process, sharing the process's Redis client."""

    def __init__(self, redis: Redis, *, route_maxlen: int, firehose_maxlen: int, replay_ttl_s: int) -> None:
        self._redis = redis
        self._script = redis.register_script(_PUBLISH)
        self._limits = (str(firehose_maxlen), str(route_maxlen), str(replay_ttl_s))

    async def publish(self, message: AiMessage, routes: Sequence[str], *, final: bool = False) -> str | None:
        """Publish under `routes`; returns the cursor, or None when `final` and the request had its final."""
        if not routes:
            raise ValueError("a message needs at least one route")
        firehose_maxlen, route_maxlen, ttl = self._limits
        cursor = await self._script(
            keys=[keys.FIREHOSE, keys.final(message.request_id), *(keys.route(r) for r in routes)],
            args=[
                orjson.dumps(message.to_wire()),
                ",".join(routes),
                firehose_maxlen,
                route_maxlen,
                ttl,
                "1" if final else "0",
                str(keys.FINAL_TTL_S),
            ],
        )
        return cursor.decode() if cursor else None

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


def parse_cursor(cursor: str, *, argument: str = "after") -> tuple[int, int]:
    match = _CURSOR.match(cursor)
    if match is None:
        raise InvalidInput(argument, f"{cursor!r} is not a valid cursor")
    return int(match.group(1)), int(match.group(2))


def after_cursor(cursor: str, than: tuple[int, int]) -> bool:
    """True when `cursor` comes strictly after the position `than`."""
    ms, _, seq = cursor.partition("-")
    return (int(ms), int(seq)) > than


async def replay(redis: Redis, route: str, after: tuple[int, int], *, count: int = 1000) -> list[AiMessage]:
    """The route's messages published strictly after `after`, oldest first (at most `count`)."""
    ms, seq = after
    start = f"{ms}-{seq + 1}"
    entries = await redis.xrange(keys.route(route), min=start, max="+", count=count)
    return [AiMessage.from_wire(orjson.loads(fields[b"m"]), cursor=entry_id.decode()) for entry_id, fields in entries]
