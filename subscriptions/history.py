"""Chat history in Redis (GitLab's `ai_chat:<user_id>` stream): the last 50 messages, 3 days after the last.
Written for GitLab compatibility of `cache_response` features; the durable chat history is in the database."""

from __future__ import annotations

import orjson
from redis.asyncio import Redis

from core import keys
from subscriptions.messages import AiMessage

__all__ = ["append"]


async def append(redis: Redis, user_id: int, message: AiMessage) -> None:
    key = keys.chat_history(user_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xadd(key, {"m": orjson.dumps(message.to_wire())}, maxlen=keys.CHAT_HISTORY_MAXLEN, approximate=False)
        pipe.expire(key, keys.CHAT_HISTORY_TTL_S)
        await pipe.execute()
