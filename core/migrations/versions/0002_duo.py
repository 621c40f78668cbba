"""Duo: namespace settings, merge requests, epics, vulnerabilities, instance settings, add-on purchases and
seats, feature flags.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False
    )


def _flag(name: str, default: bool = False) -> sa.Column:
    return sa.Column(name, sa.Boolean(), server_default=sa.true() if default else sa.false(), nullable=False)


def _text(name: str, default: str = "") -> sa.Column:
    return sa.Column(name, sa.Text(), server_default=default, nullable=False)


def _author(table: str) -> tuple[sa.Column, sa.ForeignKeyConstraint]:
    column = sa.Column("author_id", sa.Integer(), nullable=False)
    return column, sa.ForeignKeyConstraint(["author_id"], ["users.id"], name=f"fk_{table}_author_id_users")


def _parent(table: str, column: str, parent: str) -> tuple[sa.Column, sa.ForeignKeyConstraint]:
    return sa.Column(column, sa.Integer(), nullable=False), sa.ForeignKeyConstraint(
        [column], [f"{parent}.id"], name=f"fk_{table}_{column}_{parent}", ondelete="CASCADE"
    )


def _namespace_settings() -> None:
    with op.batch_alter_table("groups") as batch:
        batch.add_column(sa.Column("duo_features_enabled", sa.Boolean(), nullable=True))
        batch.add_column(_flag("lock_duo_features_enabled"))
        batch.add_column(_flag("experiment_features_enabled"))
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("duo_features_enabled", sa.Boolean(), nullable=True))


def _resources() -> None:
    project, project_fk = _parent("merge_requests", "project_id", "projects")
    author, author_fk = _author("merge_requests")
    op.create_table(
        "merge_requests",
        _id(),
        project,
        sa.Column("iid", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        _text("description"),
        sa.Column("source_branch", sa.String(255), nullable=False),
        sa.Column("target_branch", sa.String(255), server_default="main", nullable=False),
        _text("diff"),
        author,
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_merge_requests"),
        project_fk,
        author_fk,
        sa.UniqueConstraint("project_id", "iid", name="uq_merge_requests_project_id_iid"),
    )
    op.create_index("ix_merge_requests_author_id", "merge_requests", ["author_id"])
    group, group_fk = _parent("epics", "group_id", "groups")
    author, author_fk = _author("epics")
    op.create_table(
        "epics",
        _id(),
        group,
        sa.Column("iid", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        _text("description"),
        _flag("confidential"),
        author,
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_epics"),
        group_fk,
        author_fk,
        sa.UniqueConstraint("group_id", "iid", name="uq_epics_group_id_iid"),
    )
    op.create_index("ix_epics_author_id", "epics", ["author_id"])
    project, project_fk = _parent("vulnerabilities", "project_id", "projects")
    op.create_table(
        "vulnerabilities",
        _id(),
        project,
        sa.Column("title", sa.String(255), nullable=False),
        _text("description"),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("report_type", sa.String(32), server_default="sast", nullable=False),
        sa.Column("file", sa.String(1024), server_default="", nullable=False),
        sa.Column("start_line", sa.Integer(), nullable=True),
        _text("code"),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_vulnerabilities"),
        project_fk,
        sa.CheckConstraint(
            "severity IN ('info', 'unknown', 'low', 'medium', 'high', 'critical')", name="ck_vulnerabilities_severity"
        ),
    )
    op.create_index("ix_vulnerabilities_project_id", "vulnerabilities", ["project_id"])


def _entitlement() -> None:
    op.create_table(
        "instance_settings",
        _id(),
        _flag("duo_features_enabled", default=True),
        _flag("lock_duo_features_enabled"),
        _flag("instance_level_ai_beta_features_enabled"),
        sa.PrimaryKeyConstraint("id", name="pk_instance_settings"),
        sa.CheckConstraint("id = 1", name="ck_instance_settings_singleton"),
    )
    op.create_table(
        "add_on_purchases",
        _id(),
        sa.Column("add_on", sa.String(32), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_add_on_purchases"),
        sa.ForeignKeyConstraint(
            ["namespace_id"], ["groups.id"], name="fk_add_on_purchases_namespace_id_groups", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("add_on", "namespace_id", name="uq_add_on_purchases_add_on_namespace_id"),
        sa.CheckConstraint("add_on IN ('duo_pro', 'duo_enterprise')", name="ck_add_on_purchases_add_on"),
        sa.CheckConstraint("quantity >= 0", name="ck_add_on_purchases_quantity"),
    )
    # One instance purchase per add-on (the unique constraint above does not compare NULLs).
    op.create_index(
        "uq_add_on_purchases_instance",
        "add_on_purchases",
        ["add_on"],
        unique=True,
        sqlite_where=sa.text("namespace_id IS NULL"),
        postgresql_where=sa.text("namespace_id IS NULL"),
    )
    purchase, purchase_fk = _parent("add_on_assignments", "purchase_id", "add_on_purchases")
    user, user_fk = _parent("add_on_assignments", "user_id", "users")
    op.create_table(
        "add_on_assignments",
        _id(),
        purchase,
        user,
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_add_on_assignments"),
        purchase_fk,
        user_fk,
        sa.UniqueConstraint("purchase_id", "user_id", name="uq_add_on_assignments_purchase_id_user_id"),
    )
    op.create_index("ix_add_on_assignments_user_id", "add_on_assignments", ["user_id"])


def _flags() -> None:
    op.create_table(
        "features",
        _id(),
        sa.Column("key", sa.String(255), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_features"),
        sa.UniqueConstraint("key", name="uq_features_key"),
    )
    op.create_table(
        "feature_gates",
        _id(),
        sa.Column("feature_key", sa.String(255), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_feature_gates"),
        sa.ForeignKeyConstraint(
            ["feature_key"], ["features.key"], name="fk_feature_gates_feature_key_features", ondelete="CASCADE"
        ),
    )
    op.create_index(
        "ix_feature_gates_feature_key_key_value", "feature_gates", ["feature_key", "key", "value"], unique=True
    )


def upgrade() -> None:
    _namespace_settings()
    _resources()
    _entitlement()
    _flags()


def downgrade() -> None:
    for table in (
        "feature_gates",
        "features",
        "add_on_assignments",
        "add_on_purchases",
        "instance_settings",
        "vulnerabilities",
        "epics",
        "merge_requests",
    ):
        op.drop_table(table)
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("duo_features_enabled")
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("experiment_features_enabled")
        batch.drop_column("lock_duo_features_enabled")
        batch.drop_column("duo_features_enabled")
