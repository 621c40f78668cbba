"""Duo Chat conversations (SPEC §13.1): threads, their messages, and the feedback given on answers.

A message without a thread is the cached request or answer of a non-chat `cache_response` feature (§5.3).
A request saves at most one message per role (`UNIQUE (request_id, role)`), so a job that runs twice saves
its answer once. Feedback keeps the model that answered and outlives its message (the evaluation and the
guarded migrations count it per model).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.tables.base import Base, UTCDateTime, created_at, one_of, utcnow

__all__ = [
    "ConversationMessage",
    "ConversationThread",
    "ConversationType",
    "MAX_MESSAGE_CHARS",
    "MAX_TITLE_CHARS",
    "MessageFeedback",
]

MAX_TITLE_CHARS = 100
MAX_MESSAGE_CHARS = 20_000  # GitLab's MAX_TEXT_LIMIT


class ConversationType(StrEnum):
    DUO_CHAT = "duo_chat"
    DUO_CHAT_LEGACY = "duo_chat_legacy"
    DUO_CODE_REVIEW = "duo_code_review"
    DUO_QUICK_CHAT = "duo_quick_chat"


class ConversationThread(Base):
    """A user's conversation; its title is its first question."""

    __tablename__ = "ai_conversation_threads"
    __table_args__ = (
        CheckConstraint(one_of("conversation_type", ConversationType), name="conversation_type"),
        Index("ix_ai_conversation_threads_user_type_updated", "user_id", "conversation_type", "last_updated_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    conversation_type: Mapped[str] = mapped_column(String(32))
    title: Mapped[str | None] = mapped_column(String(MAX_TITLE_CHARS))
    created_at: Mapped[datetime] = created_at()
    # indexed alone too: the expiry job scans it across users
    last_updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class ConversationMessage(Base):
    """One message of a request: the user's question or the final answer (chunks are never saved).
    `message_xid` is the published `AiMessage.id`; `model` the identifier of the model that answered."""

    __tablename__ = "ai_conversation_messages"
    __table_args__ = (
        CheckConstraint("role IN ('user', 'assistant', 'system')", name="role"),
        UniqueConstraint("request_id", "role"),
        Index(None, "thread_id", "id"),
        Index(None, "user_id", "thread_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    thread_id: Mapped[int | None] = mapped_column(ForeignKey("ai_conversation_threads.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    message_xid: Mapped[str] = mapped_column(String(64), unique=True)
    request_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str | None] = mapped_column(Text)
    errors: Mapped[list[str] | None] = mapped_column(JSON)
    extras: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    has_feedback: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    model: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = created_at()


class MessageFeedback(Base):
    """Feedback on an answer (`duoUserFeedback`): thumbs (`sentiment`), the optional texts, the raw
    tracking event, and the model that answered (kept when the message expires)."""

    __tablename__ = "ai_message_feedback"
    __table_args__ = (CheckConstraint("sentiment IN ('positive', 'negative')", name="sentiment"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("ai_conversation_messages.id", ondelete="SET NULL"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    model: Mapped[str | None] = mapped_column(String(255), index=True)
    sentiment: Mapped[str | None] = mapped_column(String(16))
    improve_what: Mapped[str | None] = mapped_column(Text)
    did_what: Mapped[str | None] = mapped_column(Text)
    event: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = created_at()
