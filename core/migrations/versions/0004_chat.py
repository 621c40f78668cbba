"""Duo Chat conversations: threads, messages, feedback on answers.

Revision ID: 0004
Revises: 0003
Create Date: 2025-04-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False)


def _user(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=f"fk_{table}_user_id_users", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "ai_conversation_threads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("conversation_type", sa.String(32), nullable=False),
        sa.Column("title", sa.String(100), nullable=True),
        _created_at(),
        sa.Column("last_updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ai_conversation_threads"),
        _user("ai_conversation_threads"),
        sa.CheckConstraint(
            "conversation_type IN ('duo_chat', 'duo_chat_legacy', 'duo_code_review', 'duo_quick_chat')",
            name="ck_ai_conversation_threads_conversation_type",
        ),
    )
    op.create_index("ix_ai_conversation_threads_last_updated_at", "ai_conversation_threads", ["last_updated_at"])
    op.create_index("ix_ai_conversation_threads_user_type_updated", "ai_conversation_threads",
                    ["user_id", "conversation_type", "last_updated_at"])
    op.create_table(
        "ai_conversation_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("thread_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("message_xid", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("errors", sa.JSON(), nullable=True),
        sa.Column("extras", sa.JSON(), nullable=True),
        sa.Column("has_feedback", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("model", sa.String(255), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_ai_conversation_messages"),
        sa.ForeignKeyConstraint(["thread_id"], ["ai_conversation_threads.id"],
                                name="fk_ai_conversation_messages_thread_id_ai_conversation_threads", ondelete="CASCADE"),
        _user("ai_conversation_messages"),
        sa.UniqueConstraint("message_xid", name="uq_ai_conversation_messages_message_xid"),
        sa.UniqueConstraint("request_id", "role", name="uq_ai_conversation_messages_request_id_role"),
        sa.CheckConstraint("role IN ('user', 'assistant', 'system')", name="ck_ai_conversation_messages_role"),
    )
    op.create_index("ix_ai_conversation_messages_thread_id_id", "ai_conversation_messages", ["thread_id", "id"])
    op.create_index("ix_ai_conversation_messages_user_id_thread_id", "ai_conversation_messages", ["user_id", "thread_id"])
    op.create_table(
        "ai_message_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("sentiment", sa.String(16), nullable=True),
        sa.Column("improve_what", sa.Text(), nullable=True),
        sa.Column("did_what", sa.Text(), nullable=True),
        sa.Column("event", sa.JSON(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_ai_message_feedback"),
        sa.ForeignKeyConstraint(["message_id"], ["ai_conversation_messages.id"],
                                name="fk_ai_message_feedback_message_id_ai_conversation_messages", ondelete="SET NULL"),
        _user("ai_message_feedback"),
        sa.CheckConstraint("sentiment IN ('positive', 'negative')", name="ck_ai_message_feedback_sentiment"),
    )
    for column in ("message_id", "model", "user_id"):
        op.create_index(f"ix_ai_message_feedback_{column}", "ai_message_feedback", [column])


def downgrade() -> None:
    for table in ("ai_message_feedback", "ai_conversation_messages", "ai_conversation_threads"):
        op.drop_table(table)
