"""Per-user rate limits kept in Redis (GitLab's `ApplicationRateLimiter`): a fixed window per user.

One Redis round trip per call: a Lua script increments the user's counter and, on the first call of a
window, sets its expiry to the period. A call is throttled when the count goes past the limit; throttled
calls count too, as GitLab's do. A limit of 0 disables the check (no Redis call at all). While Redis is
unreachable the check raises `ServiceUnavailable`.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from core import keys
from core.errors import ServiceUnavailable
from core.redis import REDIS_UNAVAILABLE, LuaScript

__all__ = ["AI_ACTION_PERIOD_S", "RATE_LIMITED", "throttled"]

logger = logging.getLogger(__name__)

AI_ACTION_PERIOD_S = 8 * 3600
RATE_LIMITED = "This endpoint has been requested too many times. Try again later."

_INCREMENT = LuaScript("""
local count = redis.call('INCR', KEYS[1])
if count == 1 or redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
""")


async def throttled(redis: Redis, name: str, user_id: int, *, limit: int, period_s: int) -> bool:
    """Count one call of `name` by `user_id`; True when it goes past `limit` calls in `period_s`."""
    if limit <= 0:
        return False
    key = keys.rate_limit(name, user_id)
    try:
        count = await _INCREMENT(redis, keys=[key], args=[period_s])
    except REDIS_UNAVAILABLE as exc:
        raise ServiceUnavailable() from exc
    if int(count) > limit:
        logger.info("rate limit %s exceeded by user %s (%s calls)", name, user_id, count)
        return True
    return False
