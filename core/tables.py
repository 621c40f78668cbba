"""The SQL schema as SQLAlchemy declarative models: users, tokens, namespaces, memberships, issues, notes.

Schema changes go through Alembic (`core/migrations/versions/`); `tests/core/test_db.py` checks that the
migrations and these models agree. Constraint names follow `Base.metadata.naming_convention`.

Timestamps are timezone-aware UTC on every backend (`UTCDateTime`). Relationships load lazily by default,
which async code must not trigger implicitly: eager-load with `joinedload`/`selectinload`, or go through
`await obj.awaitable_attrs.<name>`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum, StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

__all__ = [
    "AccessLevel",
    "Base",
    "Group",
    "Issue",
    "Member",
    "Note",
    "PersonalAccessToken",
    "Project",
    "User",
    "UTCDateTime",
    "Visibility",
    "utcnow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Visibility(StrEnum):
    PRIVATE = "private"
    INTERNAL = "internal"
    PUBLIC = "public"


class AccessLevel(IntEnum):
    """GitLab's membership access levels."""

    GUEST = 10
    REPORTER = 20
    DEVELOPER = 30
    MAINTAINER = 40
    OWNER = 50


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime, also on SQLite (which stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _created_at() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), default=utcnow, server_default=func.current_timestamp())


def _in(column: str, values: type[StrEnum] | type[IntEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Base(AsyncAttrs, DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = _created_at()


class PersonalAccessToken(Base):
    """A token as GitLab stores it: only the SHA-256 digest; scopes comma-separated."""

    __tablename__ = "personal_access_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = _created_at()
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship()


class Group(Base):
    """A group namespace. `full_path` ("parent/child") is stored, so look groups up by it."""

    __tablename__ = "groups"
    __table_args__ = (CheckConstraint(_in("visibility", Visibility), name="visibility"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(255))
    full_path: Mapped[str] = mapped_column(String(1024), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), index=True)
    visibility: Mapped[str] = mapped_column(String(16), default=Visibility.PRIVATE)
    created_at: Mapped[datetime] = _created_at()

    parent: Mapped[Group | None] = relationship(remote_side=[id])

    @property
    def ancestor_paths(self) -> list[str]:
        """The full paths of this group and every ancestor, top-level first."""
        parts = self.full_path.split("/")
        return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (
        UniqueConstraint("group_id", "path"),
        CheckConstraint(_in("visibility", Visibility), name="visibility"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(255))
    visibility: Mapped[str] = mapped_column(String(16), default=Visibility.PRIVATE)
    created_at: Mapped[datetime] = _created_at()

    group: Mapped[Group] = relationship()


class Member(Base):
    """A user's membership of a group (inherited by its subgroups and projects) or of one project."""

    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("user_id", "source_type", "source_id"),
        Index(None, "source_type", "source_id"),
        CheckConstraint("source_type IN ('Group', 'Project')", name="source_type"),
        CheckConstraint(_in("access_level", AccessLevel), name="access_level"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    source_type: Mapped[str] = mapped_column(String(16))
    source_id: Mapped[int] = mapped_column(Integer)
    access_level: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created_at()

    user: Mapped[User] = relationship()


class Issue(Base):
    __tablename__ = "issues"
    __table_args__ = (UniqueConstraint("project_id", "iid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    iid: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    confidential: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = _created_at()

    project: Mapped[Project] = relationship()
    author: Mapped[User] = relationship()


class Note(Base):
    """A comment (or a system note) on a noteable, GitLab's polymorphic (noteable_type, noteable_id)."""

    __tablename__ = "notes"
    __table_args__ = (Index(None, "noteable_type", "noteable_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    noteable_type: Mapped[str] = mapped_column(String(32))
    noteable_id: Mapped[int] = mapped_column(Integer)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    body: Mapped[str] = mapped_column(Text)
    system: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = _created_at()

    author: Mapped[User] = relationship()
    # One view-only relationship per noteable type; `core.access` picks it by `noteable_type`.
    issue: Mapped[Issue | None] = relationship(
        primaryjoin="and_(Note.noteable_type == 'Issue', foreign(Note.noteable_id) == Issue.id)",
        viewonly=True,
    )
