"""The conversation history a chat prompt sees (SPEC §13.4).

The question/answer pairs of the thread after its last `/reset`, before the current request, without
errored or cancelled turns, in time order, trimmed from the oldest so that their tokens fit a budget (the
caller's: the model's context window minus the output budget and the rest of the prompt). A long
conversation never overflows the prompt (GitLab's A1005).

One query reads the thread newest first, in batches, and stops as soon as the budget is full or a `/reset`
is reached, so a 200-message thread costs what the turns that fit cost; `_MAX_ROWS` bounds it anyway.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.tables import ConversationMessage

__all__ = ["prompt_history"]

_RESET = re.compile(r"^\s*/reset(?:\s|$)")
_BATCH = 50
_MAX_ROWS = 2_000  # 1,000 turns: far beyond any context window


async def prompt_history(
    session: AsyncSession, thread_id: int, *, before_request_id: str, budget_tokens: int,
    count_tokens: Callable[[str], int],
) -> list[tuple[str, str]]:
    """(question, answer) pairs of the thread for the prompt of request `before_request_id`."""
    if budget_tokens <= 0:
        return []
    current = (
        select(func.min(ConversationMessage.id))
        .where(ConversationMessage.thread_id == thread_id, ConversationMessage.request_id == before_request_id)
        .scalar_subquery()
    )
    query = (
        select(ConversationMessage.request_id, ConversationMessage.role, ConversationMessage.content,
               ConversationMessage.errors, ConversationMessage.extras)
        .where(ConversationMessage.thread_id == thread_id,
               ConversationMessage.request_id != before_request_id,
               ConversationMessage.id < func.coalesce(current, 2**31 - 1),
               ConversationMessage.role.in_(("user", "assistant")))
        .order_by(ConversationMessage.id.desc())
        .limit(_MAX_ROWS)
        .execution_options(yield_per=_BATCH)
    )
    pairs: list[tuple[str, str]] = []
    answers: dict[str, str | None] = {}  # request id -> usable answer (None: errored, cancelled or empty)
    used = 0
    result = await session.stream(query)
    try:
        async for request_id, role, content, errors, extras in result:
            if role == "assistant":
                usable = not errors and not (extras or {}).get("cancelled") and bool((content or "").strip())
                answers.setdefault(request_id, content if usable else None)
                continue
            question = content or ""
            if _RESET.match(question):
                break
            answer = answers.pop(request_id, None)
            if answer is None or not question.strip():
                continue  # unanswered (still running, or never), errored, cancelled
            cost = count_tokens(question) + count_tokens(answer)
            if used + cost > budget_tokens:
                break  # the oldest turns go first
            used += cost
            pairs.append((question, answer))
    finally:
        await result.close()
    pairs.reverse()
    return pairs
