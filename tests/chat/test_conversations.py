"""The conversation store (`chat.conversations`) on a real database: expiry, idempotent saving, limits,
feedback counted per model."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from access.admin.accounts import create_user
from chat import conversations
from chat.conversations import FeedbackCount
from core.db import create_engine, session_factory
from core.errors import THREAD_NOT_FOUND, AccessDenied
from core.settings import Settings
from core.tables import ConversationMessage, ConversationThread, MessageFeedback
from subscriptions.messages import AiMessage
from worker.process import build_worker, expire_chat_threads

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


async def _users(sessions: async_sessionmaker[AsyncSession], *names: str) -> list[int]:
    async with sessions() as session, session.begin():
        return [(await create_user(session, name)).id for name in names]


async def _ask(sessions: async_sessionmaker[AsyncSession], user: int, text: str, *, thread: int | None = None,
               kind: str | None = None, now: datetime = NOW) -> int:
    async with sessions() as session, session.begin():
        thread_id = await conversations.resolve_thread(session, user, thread_id=thread, conversation_type=kind,
                                                       content=text, now=now)
        await conversations.save_user_message(session, user, thread_id, AiMessage(str(uuid.uuid4()), "user", content=text),
                                              touch=False)
    return thread_id


async def _count(sessions: async_sessionmaker[AsyncSession], table: type) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_threads_not_updated_within_the_expiry_are_deleted_with_their_messages(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    [alice] = await _users(sessions, "alice")
    old = await _ask(sessions, alice, "old", kind="duo_chat", now=NOW - timedelta(days=31))
    kept = await _ask(sessions, alice, "recent", kind="duo_chat", now=NOW - timedelta(days=29))
    await _ask(sessions, alice, "bumped", thread=old, now=NOW - timedelta(days=31))
    async with sessions() as session, session.begin():  # a cached non-chat request, without a thread
        await conversations.save_user_message(session, alice, None, AiMessage("cached", "user", content="Summarize comments",
                                                                              timestamp=(NOW - timedelta(days=40)).isoformat()))
    assert await conversations.delete_expired(sessions, 30, NOW) == 1
    assert await conversations.delete_expired(sessions, 30, NOW) == 0  # a second run (another worker) is harmless
    async with sessions() as session:
        assert (await session.scalars(select(ConversationThread.id))).all() == [kept]
        assert (await session.scalars(select(ConversationMessage.content))).all() == ["recent"]


async def test_a_thread_is_kept_while_it_is_used(sessions: async_sessionmaker[AsyncSession]) -> None:
    [alice] = await _users(sessions, "alice")
    thread = await _ask(sessions, alice, "started long ago", kind="duo_chat", now=NOW - timedelta(days=60))
    await _ask(sessions, alice, "still talking", thread=thread, now=NOW - timedelta(days=1))
    assert await conversations.delete_expired(sessions, 30, NOW) == 0


async def test_an_answer_saved_twice_is_saved_once(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
    [alice] = await _users(sessions, "alice")
    thread = await _ask(sessions, alice, "q", kind="duo_chat")
    first = AiMessage("req-1", "assistant", content="first run")
    second = AiMessage("req-1", "assistant", content="second run")  # a retried job: another message id
    assert await conversations.save_answer(engine, alice, thread, first, "claude") is True
    assert await conversations.save_answer(engine, alice, thread, second, "claude") is False
    async with sessions() as session:
        rows = (await session.scalars(select(ConversationMessage).where(ConversationMessage.role == "assistant"))).all()
    assert [(row.message_xid, row.content, row.model) for row in rows] == [(first.id, "first run", "claude")]


async def test_titles_and_contents_are_cut_and_foreign_threads_are_not_found(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
    alice, bob = await _users(sessions, "alice", "bob")
    thread = await _ask(sessions, alice, "t" * 150, kind="duo_chat")
    await conversations.save_answer(engine, alice, thread, AiMessage("long", "assistant", content="x" * 30_000), None)
    async with sessions() as session:
        assert (await session.get(ConversationThread, thread)).title == "t" * 100  # type: ignore[union-attr]
        lengths = (await session.scalars(select(func.length(ConversationMessage.content)))).all()
        assert sorted(lengths) == [150, 20_000]
        with pytest.raises(AccessDenied, match=THREAD_NOT_FOUND):
            await conversations.resolve_thread(session, bob, thread_id=thread, conversation_type=None, content="hi")


async def test_feedback_is_counted_per_model_and_outlives_its_message(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
    alice, bob = await _users(sessions, "alice", "bob")
    thread = await _ask(sessions, alice, "q", kind="duo_chat", now=NOW - timedelta(days=40))
    answers = [AiMessage(f"r{n}", "assistant", content="a", timestamp=(NOW - timedelta(days=40)).isoformat()) for n in range(3)]
    for answer, model in zip(answers, ["new", "new", "old"], strict=True):
        await conversations.save_answer(engine, alice, thread, answer, model)
    events = [{"property": "negative", "extra": {"improveWhat": "shorter", "didWhat": "asked about CI"}},
              {"property": "helpful"}, {"property": "positive"}]
    async with sessions() as session, session.begin():
        for answer, event in zip(answers, events, strict=True):
            await conversations.record_feedback(session, alice, answer.id, event)
        with pytest.raises(AccessDenied):
            await conversations.record_feedback(session, bob, answers[0].id, {"property": "negative"})
    async with sessions() as session:
        assert await conversations.feedback_counts(session) == {"new": FeedbackCount(positive=1, negative=1),
                                                                "old": FeedbackCount(positive=1)}
        texts = (await session.execute(select(MessageFeedback.improve_what, MessageFeedback.did_what)
                                       .where(MessageFeedback.sentiment == "negative"))).all()
        assert texts == [("shorter", "asked about CI")]
    later = datetime.now(UTC) + timedelta(days=31)  # saving an answer bumped the thread to the real now
    assert await conversations.delete_expired(sessions, 30, later) == 1  # the thread and its answers go; the counts stay
    async with sessions() as session:
        assert await _count(sessions, ConversationMessage) == 0
        assert sum(c.total for c in (await conversations.feedback_counts(session)).values()) == 3


async def test_workers_expire_threads_hourly_with_the_configured_days(settings: Settings) -> None:
    worker = build_worker(settings, burst=True, handle_signals=False)
    try:
        [job] = worker.cron_jobs
        assert job.coroutine is expire_chat_threads and job.minute == 17 and job.hour is None
    finally:
        await worker.close()


async def test_the_expiry_job_uses_the_setting(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
    [alice] = await _users(sessions, "alice")
    now = datetime.now(UTC)
    await _ask(sessions, alice, "stale", kind="duo_chat", now=now - timedelta(days=8))
    await _ask(sessions, alice, "fresh", kind="duo_chat", now=now - timedelta(days=6))

    class _Deps:  # what the job reads of the worker's deps
        def __init__(self) -> None:
            self.sessions = sessions
            self.settings = settings.model_copy(update={"chat_thread_expiry_days": 7})

    assert await expire_chat_threads({"deps": _Deps()}) == 1
    assert await _count(sessions, ConversationThread) == 1
