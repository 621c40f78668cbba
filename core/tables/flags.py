"""Feature flags as Flipper (GitLab's flag library) stores them: a row per flag that was ever set, and its
gates. `access.flags` reads and writes them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from core.tables.base import Base, created_at

__all__ = ["FeatureFlag", "FeatureGate"]


class FeatureFlag(Base):
    """A flag that was set (GitLab: "persisted"); a flag without a row has its definition's default."""

    __tablename__ = "features"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = created_at()


class FeatureGate(Base):
    """One gate value: `boolean` ("true"), `percentage_of_actors` ("25"), or one of `actors` ("User:2")."""

    __tablename__ = "feature_gates"
    __table_args__ = (Index(None, "feature_key", "key", "value", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feature_key: Mapped[str] = mapped_column(ForeignKey("features.key", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = created_at()
