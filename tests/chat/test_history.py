"""The history a chat prompt sees (SPEC §13.4), read from a real database."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from access.admin.accounts import create_user
from chat import conversations
from chat.history import prompt_history
from core.db import create_engine, session_factory
from subscriptions.messages import AiMessage

_ids = itertools.count()


@dataclass
class Thread:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    user_id: int
    id: int

    async def turn(self, question: str, answer: str | None = "ok", *, errors: tuple[str, ...] = (),
                   extras: dict | None = None) -> str:
        """A question and (unless `answer` is None) its final answer; the request id."""
        request_id = f"r{next(_ids)}"
        async with self.sessions() as session, session.begin():
            await conversations.save_user_message(session, self.user_id, self.id, AiMessage(request_id, "user", content=question))
        if answer is not None:
            final = AiMessage(request_id, "assistant", content=answer, errors=errors, extras=extras)
            await conversations.save_answer(self.engine, self.user_id, self.id, final, "mock")
        return request_id

    async def history(self, before: str = "current", budget: int = 10_000, count=len) -> list[tuple[str, str]]:  # noqa: ANN001
        async with self.sessions() as session:
            return await prompt_history(session, self.id, before_request_id=before, budget_tokens=budget, count_tokens=count)


@pytest.fixture
async def thread(database_url: str) -> AsyncIterator[Thread]:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            user = await create_user(session, "talker")
            thread_id = await conversations.resolve_thread(session, user.id, thread_id=None, conversation_type="duo_chat",
                                                           content="first")
        yield Thread(engine, sessions, user.id, thread_id)
    finally:
        await engine.dispose()


async def test_pairs_come_in_time_order_without_the_current_request_or_later_ones(thread: Thread) -> None:
    await thread.turn("one", "1")
    await thread.turn("two", "2")
    current = await thread.turn("three", None)  # the request being answered
    await thread.turn("four", "4")  # asked in another tab meanwhile
    assert await thread.history(current) == [("one", "1"), ("two", "2")]


async def test_only_messages_after_the_last_reset_count(thread: Thread) -> None:
    await thread.turn("old", "forgotten")
    await thread.turn("/reset", None)
    await thread.turn("older", "also forgotten")
    await thread.turn("/reset", None)
    await thread.turn("new", "kept")
    assert await thread.history() == [("new", "kept")]


async def test_errored_cancelled_and_unanswered_turns_are_left_out(thread: Thread) -> None:
    await thread.turn("fine", "yes")
    await thread.turn("broken", "partial", errors=("I'm sorry, I can't generate a response. Please try again.",))
    await thread.turn("stopped", "half an ans", extras={"cancelled": True})
    await thread.turn("never answered", None)
    await thread.turn("also fine", "sure")
    assert await thread.history() == [("fine", "yes"), ("also fine", "sure")]


async def test_the_oldest_turns_are_trimmed_to_fit_the_budget(thread: Thread) -> None:
    await thread.turn("a" * 10, "b" * 10)
    await thread.turn("c" * 10, "d" * 10)
    await thread.turn("e" * 10, "f" * 10)
    assert await thread.history(budget=40) == [("c" * 10, "d" * 10), ("e" * 10, "f" * 10)]
    assert await thread.history(budget=39) == [("e" * 10, "f" * 10)]
    assert await thread.history(budget=19) == []


async def test_a_long_thread_is_read_from_the_newest_until_the_budget_is_full(thread: Thread) -> None:
    for n in range(100):  # 200 messages
        await thread.turn(f"question {n:03}", f"answer {n:03}")
    counted: list[str] = []

    def count(text: str) -> int:
        counted.append(text)
        return 10

    history = await thread.history(budget=100, count=count)
    assert history == [(f"question {n:03}", f"answer {n:03}") for n in range(95, 100)]
    assert len(counted) <= 12  # five turns that fit and the one that did not, never the whole thread
    assert len(await thread.history(budget=10**9)) == 100
