"""Conversations in the database (SPEC §13.1): the thread an aiAction joins, the messages saved (the user's
question by the web process, the final answer by the worker), reading them back for their owner only,
deleting threads (by their owner, and by the expiry job), and feedback on answers.

Every read and write is scoped to a user: another user's thread or message is answered as unknown.
Saving is idempotent: a request saves at most one message per role (insert-or-ignore on
`UNIQUE (request_id, role)`), so a job that runs twice saves its answer once.

The web path of a chat action costs two short statements: `resolve_thread` finds (or creates) the thread
and bumps it in one, `save_user_message(..., touch=False)` inserts the question.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import ColumnElement, Table, Update, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from core.errors import RESOURCE_NOT_AVAILABLE, THREAD_NOT_FOUND, AccessDenied, InvalidInput
from core.ids import GlobalID
from core.tables import (
    MAX_MESSAGE_CHARS,
    MAX_TITLE_CHARS,
    ConversationMessage,
    ConversationThread,
    ConversationType,
    MessageFeedback,
    utcnow,
)
from subscriptions.messages import AiMessage, Role

__all__ = [
    "FeedbackCount",
    "MAX_PAGE",
    "Page",
    "THREAD_TYPE",
    "delete_expired",
    "delete_thread",
    "feedback_counts",
    "list_messages",
    "list_threads",
    "record_feedback",
    "resolve_thread",
    "save_answer",
    "save_user_message",
    "starts_new_thread",
    "thread_gid",
    "thread_pk",
    "thread_not_found",
    "to_message",
]

THREAD_TYPE = "Ai::Conversation::Thread"
DEFAULT_PAGE = 50  # GitLab reads the last 50 messages of a thread
MAX_PAGE = 100
_NEW_THREAD = re.compile(r"^\s*/(?:clear|new)(?:\s|$)")
_RESET = re.compile(r"^\s*/reset(?:\s|$)")
_POSITIVE = frozenset({"helpful", "positive", "thumbs_up", "thumbsup", "up", "good", "useful"})
_NEGATIVE = frozenset({"unhelpful", "negative", "thumbs_down", "thumbsdown", "down", "bad", "incorrect", "wrong",
                       "long", "abuse", "not_relevant", "irrelevant"})

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    has_next: bool
    has_previous: bool


@dataclass(frozen=True, slots=True)
class FeedbackCount:
    positive: int = 0
    negative: int = 0
    other: int = 0  # feedback without thumbs (texts only)

    @property
    def total(self) -> int:
        return self.positive + self.negative + self.other


def thread_gid(thread_id: int) -> str:
    return str(GlobalID(THREAD_TYPE, thread_id))


def thread_pk(gid: str | None, argument: str = "threadId") -> int | None:
    """The database id of a thread's global ID (None for None); InvalidInput when it is not one."""
    return None if gid is None else GlobalID.parse(gid, argument=argument, types={THREAD_TYPE}).id


def thread_not_found(thread_id: int) -> AccessDenied:
    """`aiMessages`' answer for an unknown or foreign thread (GitLab's text)."""
    return AccessDenied(f"Thread {thread_gid(thread_id)} is not found.")


def starts_new_thread(content: str) -> bool:
    """`/clear` and `/new` start a new thread of the same type (the old one stays listed)."""
    return _NEW_THREAD.match(content) is not None


def _title(content: str) -> str | None:
    if _RESET.match(content) or starts_new_thread(content):
        return None
    return " ".join(content.split())[:MAX_TITLE_CHARS] or None


async def resolve_thread(
    session: AsyncSession, user_id: int, *, thread_id: int | None, conversation_type: str | None, content: str,
    now: datetime | None = None,
) -> int:
    """The thread a chat message joins, bumped (`last_updated_at`) and titled when it had no title yet:
    the given thread (the user's own, else AccessDenied(THREAD_NOT_FOUND)); a new one of `conversation_type`;
    else the user's latest DUO_CHAT thread or a new one. `/clear` and `/new` start a new thread of the
    type of the given thread, or `conversation_type`, or DUO_CHAT. One statement, two for a first thread."""
    now = now or utcnow()
    if starts_new_thread(content):
        kind = conversation_type or ConversationType.DUO_CHAT
        if thread_id is not None:
            found = await session.scalar(select(ConversationThread.conversation_type).where(
                ConversationThread.id == thread_id, ConversationThread.user_id == user_id))
            if found is None:
                raise AccessDenied(THREAD_NOT_FOUND)
            kind = found
        return await _new_thread(session, user_id, kind, None, now)
    title = _title(content)
    if thread_id is not None:
        touched = await _touch(session, user_id, thread_id, title, now)
        if touched is None:
            raise AccessDenied(THREAD_NOT_FOUND)
        return touched
    if conversation_type is not None:
        return await _new_thread(session, user_id, conversation_type, title, now)
    touched = await _touch(session, user_id, None, title, now)  # the latest DUO_CHAT thread
    return touched if touched is not None else await _new_thread(session, user_id, ConversationType.DUO_CHAT, title, now)


# The statements of the chat path, built once with bound parameters: building one per call (`.values(...)`)
# and computing its cache key cost more than running it (~0.1 ms each, a few per chat action).
_THREADS = cast(Table, ConversationThread.__table__)
_MESSAGES = cast(Table, ConversationMessage.__table__)


@cache
def _touch_statement(*, latest: bool, titled: bool) -> Update:
    """Bump a thread of `b_user` (`b_thread`, or with `latest` their latest DUO_CHAT thread) to `b_now`,
    titled `b_title` when `titled` and it had no title; returns its id."""
    thread = _THREADS.c
    if latest:
        which = thread.id == (
            select(thread.id)
            .where(thread.user_id == bindparam("b_user"), thread.conversation_type == ConversationType.DUO_CHAT)
            .order_by(thread.last_updated_at.desc(), thread.id.desc())
            .limit(1)
            .scalar_subquery()
        )
    else:
        which = thread.id == bindparam("b_thread")
    values: dict[str, Any] = {"last_updated_at": bindparam("b_now")}
    if titled:
        values["title"] = func.coalesce(thread.title, bindparam("b_title", type_=thread.title.type))
    return update(_THREADS).where(which, thread.user_id == bindparam("b_user")).values(**values).returning(thread.id)


_NEW_THREAD_STATEMENT = insert(_THREADS).returning(_THREADS.c.id)
_INSERT_MESSAGE = {
    "postgresql": postgresql.insert(_MESSAGES).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(_MESSAGES).on_conflict_do_nothing(),
}


async def _touch(
    executor: AsyncSession | AsyncConnection, user_id: int, thread_id: int | None, title: str | None, now: datetime
) -> int | None:
    """Bump thread `thread_id` (None: the user's latest DUO_CHAT thread) of `user_id`; its id, or None."""
    statement = _touch_statement(latest=thread_id is None, titled=title is not None)
    parameters = {"b_user": user_id, "b_thread": thread_id, "b_now": now, "b_title": title}
    return (await executor.execute(statement, parameters)).scalar_one_or_none()


async def _new_thread(session: AsyncSession, user_id: int, kind: str, title: str | None, now: datetime) -> int:
    parameters = {"user_id": user_id, "conversation_type": str(kind), "title": title, "created_at": now, "last_updated_at": now}
    return (await session.execute(_NEW_THREAD_STATEMENT, parameters)).scalar_one()


async def save_user_message(
    session: AsyncSession, user_id: int, thread_id: int | None, message: AiMessage, *, touch: bool = True
) -> None:
    """Save the user's question (`thread_id` None: a non-chat cached request, §5.3). `touch`: also bump the
    thread and title it when untitled (`resolve_thread` did both already)."""
    await _insert(session, user_id, thread_id, message, None)
    if touch and thread_id is not None:
        await _touch(session, user_id, thread_id, _title(message.content or ""), utcnow())


async def save_answer(
    engine: AsyncEngine, user_id: int, thread_id: int | None, message: AiMessage, model: str | None
) -> bool:
    """Save a final answer (errors and extras included) with the model that answered; False when the
    request had saved one already. The thread is bumped. One transaction on a connection of `engine`: no ORM
    session, which cost more CPU than the two statements."""
    async with engine.begin() as connection:
        saved = await _insert(connection, user_id, thread_id, message, model)
        if saved and thread_id is not None:
            await _touch(connection, user_id, thread_id, None, utcnow())
    return saved


async def _insert(
    executor: AsyncSession | AsyncConnection, user_id: int, thread_id: int | None, message: AiMessage, model: str | None
) -> bool:
    dialect = executor.dialect if isinstance(executor, AsyncConnection) else executor.get_bind().dialect
    statement = _INSERT_MESSAGE["postgresql" if dialect.name == "postgresql" else "sqlite"]
    parameters = {
        "thread_id": thread_id,
        "user_id": user_id,
        "message_xid": message.id,
        "request_id": message.request_id,
        "role": message.role,
        "content": message.content[:MAX_MESSAGE_CHARS] if message.content is not None else None,
        "errors": list(message.errors) or None,
        "extras": dict(message.extras) if message.extras else None,
        "model": model,
        "created_at": _timestamp(message.timestamp),
    }
    return bool(cast("Any", await executor.execute(statement, parameters)).rowcount)


def _timestamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return utcnow()
    return parsed if parsed.tzinfo is not None else utcnow()


def to_message(row: ConversationMessage) -> AiMessage:
    """A saved message as published (`contentHtml` is the presentation's to render)."""
    extras = {**(row.extras or {}), "has_feedback": row.has_feedback}
    return AiMessage(
        row.request_id, cast("Role", row.role), content=row.content, errors=tuple(row.errors or ()), extras=extras,
        thread_id=thread_gid(row.thread_id) if row.thread_id is not None else None, id=row.message_xid,
        timestamp=row.created_at.isoformat(),
    )


def _page_size(value: int | None, argument: str) -> int:
    if value is None:
        return DEFAULT_PAGE
    if value < 0:
        raise InvalidInput(argument, "must be greater than or equal to 0")
    return min(value, MAX_PAGE)


async def list_messages(
    session: AsyncSession, user_id: int, *, thread_id: int | None = None, request_ids: Sequence[str] | None = None,
    roles: Sequence[str] | None = None, conversation_type: str | None = None,
    first: int | None = None, after: int | None = None, last: int | None = None, before: int | None = None,
) -> Page[ConversationMessage]:
    """The user's messages in time order: of `thread_id` (theirs, else `thread_not_found`); else with
    `request_ids` from any of their threads (or none); else of their latest thread of `conversation_type`
    (DUO_CHAT). Without `first`/`after`, the last 50 (or `last`, before `before`); `after`/`before` are
    message ids (the connection's cursors)."""
    where: list[ColumnElement[bool]] = [ConversationMessage.user_id == user_id]
    if thread_id is not None:
        owned = await session.scalar(select(ConversationThread.id).where(
            ConversationThread.id == thread_id, ConversationThread.user_id == user_id))
        if owned is None:
            raise thread_not_found(thread_id)
        where.append(ConversationMessage.thread_id == thread_id)
    elif request_ids is not None:
        where.append(ConversationMessage.request_id.in_(list(request_ids)))
        if conversation_type is not None:
            where.append(ConversationMessage.thread_id.in_(select(ConversationThread.id).where(
                ConversationThread.user_id == user_id, ConversationThread.conversation_type == conversation_type)))
    else:
        latest = await _latest_thread(session, user_id, conversation_type or ConversationType.DUO_CHAT)
        if latest is None:
            return Page([], False, False)
        where.append(ConversationMessage.thread_id == latest)
    if request_ids is not None and thread_id is not None:
        where.append(ConversationMessage.request_id.in_(list(request_ids)))
    if roles is not None:
        where.append(ConversationMessage.role.in_(list(roles)))
    query = select(ConversationMessage).where(*where)
    if first is not None or after is not None:
        size = _page_size(first, "first")
        if after is not None:
            query = query.where(ConversationMessage.id > after)
        rows = list((await session.scalars(query.order_by(ConversationMessage.id).limit(size + 1))).all())
        return Page(rows[:size], len(rows) > size, after is not None)
    size = _page_size(last, "last")
    if before is not None:
        query = query.where(ConversationMessage.id < before)
    rows = list((await session.scalars(query.order_by(ConversationMessage.id.desc()).limit(size + 1))).all())
    return Page(rows[:size][::-1], before is not None, len(rows) > size)


async def _latest_thread(session: AsyncSession, user_id: int, conversation_type: str) -> int | None:
    return await session.scalar(
        select(ConversationThread.id)
        .where(ConversationThread.user_id == user_id, ConversationThread.conversation_type == conversation_type)
        .order_by(ConversationThread.last_updated_at.desc(), ConversationThread.id.desc())
        .limit(1)
    )


async def list_threads(
    session: AsyncSession, user_id: int, *, thread_id: int | None = None, conversation_type: str | None = None,
    first: int | None = None, after: tuple[datetime, int] | None = None,
) -> Page[ConversationThread]:
    """The user's threads, most recently updated first; `after` is the (last_updated_at, id) of the
    previous page's last thread."""
    size = _page_size(first, "first")
    query = select(ConversationThread).where(ConversationThread.user_id == user_id)
    if thread_id is not None:
        query = query.where(ConversationThread.id == thread_id)
    if conversation_type is not None:
        query = query.where(ConversationThread.conversation_type == conversation_type)
    if after is not None:
        updated, last_id = after
        query = query.where(or_(ConversationThread.last_updated_at < updated,
                                and_(ConversationThread.last_updated_at == updated, ConversationThread.id < last_id)))
    query = query.order_by(ConversationThread.last_updated_at.desc(), ConversationThread.id.desc()).limit(size + 1)
    rows = list((await session.scalars(query)).all())
    return Page(rows[:size], len(rows) > size, after is not None)


async def delete_thread(session: AsyncSession, user_id: int, thread_id: int) -> bool:
    """Delete the user's own thread and its messages; False when it is not theirs (or unknown)."""
    result = await session.execute(
        delete(ConversationThread).where(ConversationThread.id == thread_id, ConversationThread.user_id == user_id)
    )
    return bool(cast("Any", result).rowcount)


def _sentiment(event: dict[str, Any]) -> str | None:
    words = {word.strip().lower() for word in re.split(r"[,\s]+", str(event.get("property") or "")) if word.strip()}
    if words & _NEGATIVE:
        return "negative"
    return "positive" if words & _POSITIVE else None


def _extra_text(extra: object, *names: str) -> str | None:
    if not isinstance(extra, dict):
        return None
    value = next((extra[name] for name in names if extra.get(name) not in (None, "")), None)
    return str(value)[:MAX_MESSAGE_CHARS] if value is not None else None


async def record_feedback(session: AsyncSession, user_id: int, message_xid: str, event: dict[str, Any]) -> MessageFeedback:
    """Feedback on the user's own answer (`duoUserFeedback`): stored with the model that answered, and the
    message marked `has_feedback`. AccessDenied for another's message, an unknown one or a question.
    Thumbs come from `event["property"]` (`positive`/`negative`, or GitLab's choices such as `helpful`,
    `unhelpful`, `wrong`); `improveWhat`/`didWhat` from `event["extra"]`."""
    message = await session.scalar(select(ConversationMessage).where(
        ConversationMessage.message_xid == message_xid, ConversationMessage.user_id == user_id,
        ConversationMessage.role == "assistant"))
    if message is None:
        raise AccessDenied(RESOURCE_NOT_AVAILABLE)
    message.has_feedback = True
    extra = event.get("extra")
    feedback = MessageFeedback(
        message_id=message.id, user_id=user_id, model=message.model, sentiment=_sentiment(event),
        improve_what=_extra_text(extra, "improveWhat", "improve_what"),
        did_what=_extra_text(extra, "didWhat", "did_what"), event=event,
    )
    session.add(feedback)
    await session.flush()
    return feedback


async def feedback_counts(
    session: AsyncSession, *, since: datetime | None = None, until: datetime | None = None
) -> dict[str | None, FeedbackCount]:
    """Feedback per model (None: answers saved without one), optionally within [since, until)."""
    query = select(MessageFeedback.model, MessageFeedback.sentiment, func.count()).group_by(
        MessageFeedback.model, MessageFeedback.sentiment)
    if since is not None:
        query = query.where(MessageFeedback.created_at >= since)
    if until is not None:
        query = query.where(MessageFeedback.created_at < until)
    counts: dict[str | None, dict[str, int]] = {}
    for model, sentiment, count in (await session.execute(query)).all():
        counts.setdefault(model, {})[sentiment or "other"] = count
    return {model: FeedbackCount(**values) for model, values in counts.items()}


async def delete_expired(sessions: async_sessionmaker[AsyncSession], days: int, now: datetime) -> int:
    """Delete the threads not updated for `days` (their messages with them), and thread-less cached
    messages as old; the number of threads deleted. Harmless when several workers run it at once."""
    cutoff = now - timedelta(days=days)
    async with sessions() as session, session.begin():
        threads = await session.execute(delete(ConversationThread).where(ConversationThread.last_updated_at < cutoff))
        await session.execute(delete(ConversationMessage).where(
            ConversationMessage.thread_id.is_(None), ConversationMessage.created_at < cutoff))
    return int(cast("Any", threads).rowcount)
