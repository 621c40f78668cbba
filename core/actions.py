"""The record of one accepted AI action: what the web process enqueues and the worker executes."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ActionRecord"]


class ActionRecord(BaseModel):
    """Everything a worker needs to run an action; travels in the arq job as JSON (a plain string)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: str
    feature: str
    user_id: int
    resource: str | None = None  # global ID
    inputs: dict[str, object] = Field(default_factory=dict)
    client_subscription_id: str | None = None
    thread_id: str | None = None
    project_id: str | None = None
    platform_origin: str | None = None
    flags: dict[str, bool] = Field(default_factory=dict)  # pushed flags, resolved at enqueue
    enqueued_at: float = Field(default_factory=time.time)
