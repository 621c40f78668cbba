"""Users, tokens, groups, projects, memberships, issues and notes.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False
    )


def _flag(name: str) -> sa.Column:
    return sa.Column(name, sa.Boolean(), server_default=sa.false(), nullable=False)


_VISIBILITY = "visibility IN ('private', 'internal', 'public')"


def upgrade() -> None:
    op.create_table(
        "users",
        _id(),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        _flag("admin"),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    op.create_table(
        "personal_access_tokens",
        _id(),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("token_digest", sa.String(64), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        _flag("revoked"),
        _created_at(),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_personal_access_tokens"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_personal_access_tokens_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("token_digest", name="uq_personal_access_tokens_token_digest"),
    )
    op.create_index("ix_personal_access_tokens_user_id", "personal_access_tokens", ["user_id"])
    op.create_table(
        "groups",
        _id(),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("full_path", sa.String(1024), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("visibility", sa.String(16), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_groups"),
        sa.ForeignKeyConstraint(["parent_id"], ["groups.id"], name="fk_groups_parent_id_groups", ondelete="CASCADE"),
        sa.UniqueConstraint("full_path", name="uq_groups_full_path"),
        sa.CheckConstraint(_VISIBILITY, name="ck_groups_visibility"),
    )
    op.create_index("ix_groups_parent_id", "groups", ["parent_id"])
    op.create_table(
        "projects",
        _id(),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("visibility", sa.String(16), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name="fk_projects_group_id_groups", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("group_id", "path", name="uq_projects_group_id_path"),
        sa.CheckConstraint(_VISIBILITY, name="ck_projects_visibility"),
    )
    op.create_table(
        "members",
        _id(),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("source_type", sa.String(16), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("access_level", sa.Integer(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_members"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_members_user_id_users", ondelete="CASCADE"),
        sa.UniqueConstraint("user_id", "source_type", "source_id", name="uq_members_user_id_source_type_source_id"),
        sa.CheckConstraint("source_type IN ('Group', 'Project')", name="ck_members_source_type"),
        sa.CheckConstraint("access_level IN (10, 20, 30, 40, 50)", name="ck_members_access_level"),
    )
    op.create_index("ix_members_source_type_source_id", "members", ["source_type", "source_id"])
    op.create_table(
        "issues",
        _id(),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("iid", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        _flag("confidential"),
        sa.Column("author_id", sa.Integer(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_issues"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_issues_project_id_projects", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name="fk_issues_author_id_users"),
        sa.UniqueConstraint("project_id", "iid", name="uq_issues_project_id_iid"),
    )
    op.create_index("ix_issues_author_id", "issues", ["author_id"])
    op.create_table(
        "notes",
        _id(),
        sa.Column("noteable_type", sa.String(32), nullable=False),
        sa.Column("noteable_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        _flag("system"),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_notes"),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name="fk_notes_author_id_users"),
    )
    op.create_index("ix_notes_noteable_type_noteable_id", "notes", ["noteable_type", "noteable_id"])
    op.create_index("ix_notes_author_id", "notes", ["author_id"])


def downgrade() -> None:
    for table in ("notes", "issues", "members", "projects", "groups", "personal_access_tokens", "users"):
        op.drop_table(table)
