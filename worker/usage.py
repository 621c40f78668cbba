"""Token usage per request (SPEC §8.2): the provider's count when it gives one, else an estimate, kept in
Redis for a day (`keys.usage`) and written to the `completion_service_performed` log line."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import cast

from redis.asyncio import Redis

from core import keys
from worker.llm import Completion, Usage, estimate_tokens

__all__ = ["estimated_usage", "record_usage", "read_usage"]


def estimated_usage(completion: Completion, answer: str) -> Usage:
    prompt = sum(estimate_tokens(message.content) for message in completion.messages)
    return Usage(prompt, estimate_tokens(answer), estimated=True)


async def record_usage(redis: Redis, request_id: str, model: str, usage: Usage, *, selected: str | None = None) -> None:
    """`model` answered; `selected` is what model selection picked (they differ in mock mode and after a
    fallback)."""
    key = keys.usage(request_id)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(key, mapping={
            "model": model,
            "selected_model": selected or model,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "estimated": int(usage.estimated),
        })
        pipe.expire(key, keys.USAGE_TTL_S)
        await pipe.execute()


async def read_usage(redis: Redis, request_id: str) -> dict[str, str]:
    """The recorded usage of a request (empty when none was recorded)."""
    raw = await cast("Awaitable[dict[bytes, bytes]]", redis.hgetall(keys.usage(request_id)))  # redis-py types both clients alike
    return {k.decode(): v.decode() for k, v in raw.items()}
