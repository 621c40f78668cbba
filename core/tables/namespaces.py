"""Who and where: users, their tokens, groups (a tree), projects, memberships."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
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
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.tables.base import (
    AccessLevel,
    Base,
    UTCDateTime,
    Visibility,
    created_at,
    one_of,
)

__all__ = ["Group", "Member", "PersonalAccessToken", "Project", "User"]


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = created_at()


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
    created_at: Mapped[datetime] = created_at()
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship()


class Group(Base):
    """A group namespace. `full_path` ("parent/child") is stored, so look groups up by it.

    Duo settings: `duo_features_enabled` cascades down the tree (None: inherit from the parent, at the top
    from the instance); a group that sets `lock_duo_features_enabled` imposes its value on everything below.
    `experiment_features_enabled` is read on top-level groups only (beta and experimental features, SaaS).
    """

    __tablename__ = "groups"
    __table_args__ = (CheckConstraint(one_of("visibility", Visibility), name="visibility"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(255))
    full_path: Mapped[str] = mapped_column(String(1024), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), index=True)
    visibility: Mapped[str] = mapped_column(String(16), default=Visibility.PRIVATE)
    duo_features_enabled: Mapped[bool | None] = mapped_column(Boolean)
    lock_duo_features_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    experiment_features_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = created_at()

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
        CheckConstraint(one_of("visibility", Visibility), name="visibility"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(255))
    visibility: Mapped[str] = mapped_column(String(16), default=Visibility.PRIVATE)
    duo_features_enabled: Mapped[bool | None] = mapped_column(Boolean)  # None: inherit from the group
    created_at: Mapped[datetime] = created_at()

    group: Mapped[Group] = relationship()

    @property
    def full_path(self) -> str:
        """"group/sub/project"; needs `group` loaded."""
        return f"{self.group.full_path}/{self.path}"


class Member(Base):
    """A user's membership of a group (inherited by its subgroups and projects) or of one project."""

    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("user_id", "source_type", "source_id"),
        Index(None, "source_type", "source_id"),
        CheckConstraint("source_type IN ('Group', 'Project')", name="source_type"),
        CheckConstraint(one_of("access_level", AccessLevel), name="access_level"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    source_type: Mapped[str] = mapped_column(String(16))
    source_id: Mapped[int] = mapped_column(Integer)
    access_level: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_at()

    user: Mapped[User] = relationship()
