"""Duo entitlement data: the instance settings, add-on purchases and their seat assignments."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.tables.base import Base, UTCDateTime, created_at, utcnow
from core.tables.namespaces import Group, User

__all__ = ["AddOnAssignment", "AddOnPurchase", "InstanceSettings"]


class InstanceSettings(Base):
    """The instance's own settings: one row, id 1 (GitLab's application settings, the Duo part)."""

    __tablename__ = "instance_settings"
    __table_args__ = (CheckConstraint("id = 1", name="singleton"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    duo_features_enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    lock_duo_features_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Beta and experimental features on a self-managed instance (GitLab's setting of the same name).
    instance_level_ai_beta_features_enabled: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )


class AddOnPurchase(Base):
    """A Duo add-on bought with `quantity` seats, for a top-level group (SaaS) or, with no namespace, for
    the instance (self-managed). Active from `started_at` until `expires_at` (None: no end)."""

    __tablename__ = "add_on_purchases"
    __table_args__ = (
        CheckConstraint("add_on IN ('duo_pro', 'duo_enterprise')", name="add_on"),
        CheckConstraint("quantity >= 0", name="quantity"),
        UniqueConstraint("add_on", "namespace_id"),
        Index("uq_add_on_purchases_instance", "add_on", unique=True,
              sqlite_where=text("namespace_id IS NULL"), postgresql_where=text("namespace_id IS NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    add_on: Mapped[str] = mapped_column(String(32))
    namespace_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    quantity: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = created_at()

    namespace: Mapped[Group | None] = relationship()

    def active(self, now: datetime) -> bool:
        return self.started_at <= now and (self.expires_at is None or now < self.expires_at)


class AddOnAssignment(Base):
    """A seat of a purchase assigned to a user."""

    __tablename__ = "add_on_assignments"
    __table_args__ = (UniqueConstraint("purchase_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("add_on_purchases.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = created_at()

    purchase: Mapped[AddOnPurchase] = relationship()
    user: Mapped[User] = relationship()
