"""Guarded rollouts of models and prompt versions, and their history.

Revision ID: 0005
Revises: 0004
Create Date: 2025-05-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "ai_rollouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("flag", sa.String(255), nullable=False),
        sa.Column("from_ref", sa.String(255), nullable=False),
        sa.Column("to_ref", sa.String(255), nullable=False),
        sa.Column("eval_run_id", sa.String(36), nullable=True),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("extended", sa.Boolean(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("last_check", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ai_rollouts"),
        sa.CheckConstraint("kind IN ('model', 'prompt')", name="ck_ai_rollouts_kind"),
        sa.CheckConstraint(
            "state IN ('running', 'paused', 'completed', 'rolled_back', 'aborted', 'promoted')", name="ck_ai_rollouts_state"
        ),
    )
    op.create_index("ix_ai_rollouts_subject", "ai_rollouts", ["subject"])
    op.create_index("ix_ai_rollouts_state", "ai_rollouts", ["state"])
    active = sa.text("state IN ('running', 'paused', 'completed')")
    op.create_index("uq_ai_rollouts_active_subject", "ai_rollouts", ["kind", "subject"], unique=True,
                    sqlite_where=active, postgresql_where=active)
    op.create_table(
        "ai_rollout_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ai_rollout_events"),
        sa.ForeignKeyConstraint(["rollout_id"], ["ai_rollouts.id"], name="fk_ai_rollout_events_rollout_id_ai_rollouts",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_ai_rollout_events_rollout_id", "ai_rollout_events", ["rollout_id"])


def downgrade() -> None:
    op.drop_table("ai_rollout_events")
    op.drop_table("ai_rollouts")
