"""Evaluation: runs of `switchboard eval`, their results, the cache of answers and judgements.

Revision ID: 0006
Revises: 0005
Create Date: 2025-05-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
# TEMPORARY on the runner branch: 0005 (rollouts) is written on the lead's branch; set to "0005" at merge.
down_revision: str | None = "0005"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "ai_eval_runs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("dataset", sa.String(255), nullable=False),
        sa.Column("dataset_sha256", sa.String(64), nullable=False),
        sa.Column("feature", sa.String(64), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("baseline", sa.String(255), nullable=True),
        sa.Column("prompt_version", sa.String(64), nullable=False),
        sa.Column("baseline_prompt_version", sa.String(64), nullable=True),
        sa.Column("judge", sa.String(255), nullable=True),
        sa.Column("repeat", sa.Integer(), nullable=False),
        sa.Column("mock", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("gate", sa.String(16), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("cache_hits", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _created_at(),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ai_eval_runs"),
        sa.CheckConstraint("status IN ('running', 'finished', 'failed')", name="ck_ai_eval_runs_status"),
        sa.CheckConstraint("gate IN ('pass', 'regression', 'error')", name="ck_ai_eval_runs_gate"),
    )
    op.create_table(
        "ai_eval_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("item_id", sa.String(255), nullable=False),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("item", sa.JSON(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ttfc_ms", sa.Float(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("judge", sa.JSON(), nullable=True),
        sa.Column("prompt", sa.String(255), nullable=True),
        sa.Column("answered_by", sa.String(255), nullable=True),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ai_eval_results"),
        sa.ForeignKeyConstraint(["run_id"], ["ai_eval_runs.id"], name="fk_ai_eval_results_run_id_ai_eval_runs",
                                ondelete="CASCADE"),
        sa.UniqueConstraint("run_id", "item_id", "arm", "epoch", name="uq_ai_eval_results_run_id_item_id_arm_epoch"),
        sa.CheckConstraint("arm IN ('candidate', 'baseline')", name="ck_ai_eval_results_arm"),
    )
    op.create_table(
        "ai_eval_cache",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("key", name="pk_ai_eval_cache"),
    )


def downgrade() -> None:
    for table in ("ai_eval_cache", "ai_eval_results", "ai_eval_runs"):
        op.drop_table(table)
