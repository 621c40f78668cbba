"""The conversation history a chat prompt sees (SPEC §13.4).

The question/answer pairs of the thread after its last `/reset`, before the current request, without
errored or cancelled turns, in time order, trimmed from the oldest so that their tokens fit a budget (the
caller's: the model's context window minus the output budget and the rest of the prompt). A long
conversation never overflows the prompt (GitLab's A1005).

It reads the thread newest first, a batch of rows per query, and stops as soon as the budget is full or a
`/reset` is reached, so a 200-message thread costs what the turns that fit cost; `_MAX_ROWS` bounds it
anyway. The query is built once with bound parameters (building it per call cost more than running it), on
the table's Core columns with its two roles written inline, and runs on the session's connection: an ORM
select's execution and row loading, and an expanding IN rendered anew at each call, cost more CPU than the
query.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import cast

from sqlalchemy import Table, bindparam, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.tables import ConversationMessage

__all__ = ["prompt_history"]

_RESET = re.compile(r"^\s*/reset(?:\s|$)")
_BATCH = 50
_MAX_ROWS = 2_000  # 1,000 turns: far beyond any context window


_ID_LIMIT = 2**31 - 1
_MESSAGE = cast(Table, ConversationMessage.__table__).c  # Core columns: rows come back as plain rows, no ORM loading
_CURRENT = (  # where the current request's messages start in the thread (none saved yet: no bound)
    select(func.min(_MESSAGE.id))
    .where(_MESSAGE.thread_id == bindparam("b_thread"), _MESSAGE.request_id == bindparam("b_request"))
    .scalar_subquery()
)
_BATCH_BELOW = (  # the next batch, newest first, of the question and answer rows before `b_below`
    select(_MESSAGE.id, _MESSAGE.request_id, _MESSAGE.role, _MESSAGE.content, _MESSAGE.errors, _MESSAGE.extras)
    .where(_MESSAGE.thread_id == bindparam("b_thread"),
           _MESSAGE.request_id != bindparam("b_request"),
           _MESSAGE.id < func.coalesce(_CURRENT, _ID_LIMIT),
           _MESSAGE.id < bindparam("b_below"),
           _MESSAGE.role.in_((literal_column("'user'"), literal_column("'assistant'"))))  # no expanding IN to render per call
    .order_by(_MESSAGE.id.desc())
    .limit(_BATCH)
)


async def prompt_history(
    session: AsyncSession, thread_id: int, *, before_request_id: str, budget_tokens: int,
    count_tokens: Callable[[str], int],
) -> list[tuple[str, str]]:
    """(question, answer) pairs of the thread for the prompt of request `before_request_id`."""
    if budget_tokens <= 0:
        return []
    connection = await session.connection()  # the session's own connection; a Core statement needs no ORM execution
    pairs: list[tuple[str, str]] = []
    answers: dict[str, str | None] = {}  # request id -> usable answer (None: errored, cancelled or empty)
    used = read = 0
    below = _ID_LIMIT
    while read < _MAX_ROWS:
        parameters = {"b_thread": thread_id, "b_request": before_request_id, "b_below": below}
        rows = (await connection.execute(_BATCH_BELOW, parameters)).all()
        for _, request_id, role, content, errors, extras in rows:
            if role == "assistant":
                usable = not errors and not (extras or {}).get("cancelled") and bool((content or "").strip())
                answers.setdefault(request_id, content if usable else None)
                continue
            question = content or ""
            if _RESET.match(question):
                return pairs[::-1]
            answer = answers.pop(request_id, None)
            if answer is None or not question.strip():
                continue  # unanswered (still running, or never), errored, cancelled
            cost = count_tokens(question) + count_tokens(answer)
            if used + cost > budget_tokens:
                return pairs[::-1]  # the oldest turns go first
            used += cost
            pairs.append((question, answer))
        if len(rows) < _BATCH:
            break
        read += len(rows)
        below = rows[-1].id
    return pairs[::-1]
