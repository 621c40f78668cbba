"""Model selection: instance feature settings, namespace feature settings, self-hosted models, audit log.

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def _updated_at() -> sa.Column:
    return sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "ai_self_hosted_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(2048), nullable=False),
        sa.Column("identifier", sa.String(255), nullable=False),
        sa.Column("encrypted_api_token", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
        _updated_at(),
        sa.PrimaryKeyConstraint("id", name="pk_ai_self_hosted_models"),
        sa.UniqueConstraint("name", name="uq_ai_self_hosted_models_name"),
    )
    op.create_table(
        "ai_feature_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feature", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("default_model_ref", sa.String(255), nullable=True),
        sa.Column("available_model_refs", sa.JSON(), nullable=False),
        _updated_at(),
        sa.PrimaryKeyConstraint("id", name="pk_ai_feature_settings"),
        sa.UniqueConstraint("feature", name="uq_ai_feature_settings_feature"),
        sa.CheckConstraint("provider IN ('disabled', 'vendored', 'self_hosted')", name="ck_ai_feature_settings_provider"),
    )
    op.create_table(
        "ai_namespace_feature_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=False),
        sa.Column("feature", sa.String(64), nullable=False),
        sa.Column("offered_model_ref", sa.String(255), nullable=False),
        sa.Column("offered_model_name", sa.String(255), nullable=False),
        _updated_at(),
        sa.PrimaryKeyConstraint("id", name="pk_ai_namespace_feature_settings"),
        sa.ForeignKeyConstraint(
            ["namespace_id"], ["groups.id"], name="fk_ai_namespace_feature_settings_namespace_id_groups", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("namespace_id", "feature", name="uq_ai_namespace_feature_settings_namespace_id_feature"),
    )
    op.create_table(
        "ai_model_selection_audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("author_name", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(1024), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ai_model_selection_audit_events"),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name="fk_ai_model_selection_audit_events_author_id_users", ondelete="SET NULL"
        ),
    )
    op.create_index("ix_ai_model_selection_audit_events_author_id", "ai_model_selection_audit_events", ["author_id"])


def downgrade() -> None:
    for table in ("ai_model_selection_audit_events", "ai_namespace_feature_settings", "ai_feature_settings", "ai_self_hosted_models"):
        op.drop_table(table)
