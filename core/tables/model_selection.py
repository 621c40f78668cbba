"""Model selection (SPEC §9): the instance's choice per feature setting, the namespaces' choices, the
self-hosted models an admin registered, and the audit log of every change to them.

Model references (`*_ref`) are catalogue identifiers (`claude_sonnet_4_6`) or, for a registered
self-hosted model, `self_hosted_<id>`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.tables.base import Base, UTCDateTime, created_at, utcnow

__all__ = ["FeatureSettingChoice", "ModelSelectionAuditEvent", "NamespaceFeatureSetting", "SelfHostedModel", "PROVIDER_KINDS"]

PROVIDER_KINDS = ("disabled", "vendored", "self_hosted")


def _updated_at() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class SelfHostedModel(Base):
    """A model served by the customer (vLLM, Ollama, LiteLLM) behind an OpenAI-compatible API. `model` is
    its family: the identifier of a self-hosted family in models.yml (`llama3`, `mistral`, `gpt`), which
    picks the prompts; `identifier` is the name the server serves it under. The API token is stored
    encrypted (`core.secrets`)."""

    __tablename__ = "ai_self_hosted_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    model: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(2048))
    identifier: Mapped[str] = mapped_column(String(255))
    encrypted_api_token: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = _updated_at()

    @property
    def ref(self) -> str:
        return f"self_hosted_{self.id}"


class FeatureSettingChoice(Base):
    """The instance admin's choice for one feature setting: provider, available models and default. No row:
    the catalogue's selectable models and default."""

    __tablename__ = "ai_feature_settings"
    __table_args__ = (CheckConstraint("provider IN ('disabled', 'vendored', 'self_hosted')", name="provider"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feature: Mapped[str] = mapped_column(String(64), unique=True)
    provider: Mapped[str] = mapped_column(String(16))
    default_model_ref: Mapped[str | None] = mapped_column(String(255))
    available_model_refs: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = _updated_at()


class NamespaceFeatureSetting(Base):
    """A group owner's choice of model for one feature setting (GitLab's `ai_namespace_feature_settings`)."""

    __tablename__ = "ai_namespace_feature_settings"
    __table_args__ = (UniqueConstraint("namespace_id", "feature"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    feature: Mapped[str] = mapped_column(String(64))
    offered_model_ref: Mapped[str] = mapped_column(String(255))
    offered_model_name: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = _updated_at()


class ModelSelectionAuditEvent(Base):
    """One change of a model selection setting: who, what (action and target), before and after."""

    __tablename__ = "ai_model_selection_audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    author_name: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(1024))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = created_at()
