"""What AI actions read: issues, merge requests (with their diff), epics, vulnerabilities and notes."""

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

from core.tables.base import Base, Severity, created_at, one_of
from core.tables.namespaces import Group, Project, User

__all__ = ["Epic", "Issue", "MergeRequest", "Note", "Vulnerability"]


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
    created_at: Mapped[datetime] = created_at()

    project: Mapped[Project] = relationship()
    author: Mapped[User] = relationship()


class MergeRequest(Base):
    """A merge request with the text of its diff (what AI actions about it read)."""

    __tablename__ = "merge_requests"
    __table_args__ = (UniqueConstraint("project_id", "iid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    iid: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    source_branch: Mapped[str] = mapped_column(String(255))
    target_branch: Mapped[str] = mapped_column(String(255), default="main", server_default="main")
    diff: Mapped[str] = mapped_column(Text, default="", server_default="")
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = created_at()

    project: Mapped[Project] = relationship()
    author: Mapped[User] = relationship()


class Epic(Base):
    """A group-level epic (confidential like an issue)."""

    __tablename__ = "epics"
    __table_args__ = (UniqueConstraint("group_id", "iid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    iid: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    confidential: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = created_at()

    group: Mapped[Group] = relationship()
    author: Mapped[User] = relationship()


class Vulnerability(Base):
    """A security finding of a project, with where it is and the code it is about."""

    __tablename__ = "vulnerabilities"
    __table_args__ = (CheckConstraint(one_of("severity", Severity), name="severity"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    severity: Mapped[str] = mapped_column(String(16), default=Severity.UNKNOWN)
    report_type: Mapped[str] = mapped_column(String(32), default="sast", server_default="sast")
    file: Mapped[str] = mapped_column(String(1024), default="", server_default="")
    start_line: Mapped[int | None] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = created_at()

    project: Mapped[Project] = relationship()


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
    created_at: Mapped[datetime] = created_at()

    author: Mapped[User] = relationship()
    # One view-only relationship per noteable type; `access.reading` picks it by `noteable_type`.
    issue: Mapped[Issue | None] = relationship(
        primaryjoin="and_(Note.noteable_type == 'Issue', foreign(Note.noteable_id) == Issue.id)", viewonly=True
    )
    merge_request: Mapped[MergeRequest | None] = relationship(
        primaryjoin="and_(Note.noteable_type == 'MergeRequest', foreign(Note.noteable_id) == MergeRequest.id)",
        viewonly=True,
    )
    epic: Mapped[Epic | None] = relationship(
        primaryjoin="and_(Note.noteable_type == 'Epic', foreign(Note.noteable_id) == Epic.id)", viewonly=True
    )
