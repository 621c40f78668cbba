"""Response messages and the routes they are published under.

Routing is exact-match, as in GitLab's GraphqlTriggers: a message goes out under one or more argument sets
and a subscription receives it iff its own arguments (ignoring `after`) equal one of them. An argument set
is reduced to a short `route_id` so that publishing and matching compare strings.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from functools import cache
from typing import Literal

from markdown_it import MarkdownIt

__all__ = ["AiMessage", "RequestRoutes", "Role", "markdown_renderer", "route_id", "routes_for"]

Role = Literal["user", "assistant", "system"]


@cache
def markdown_renderer() -> MarkdownIt:
    """How an answer's Markdown becomes its `contentHtml`, for the final message the worker publishes and the
    saved answer `aiMessages` reads back alike: CommonMark with raw HTML off."""
    return MarkdownIt("commonmark", {"html": False})


@dataclass(frozen=True, slots=True)
class AiMessage:
    request_id: str
    role: Role
    content: str | None = None
    content_html: str | None = None
    chunk_id: int | None = None
    errors: tuple[str, ...] = ()
    type: str | None = None
    extras: dict[str, object] | None = None
    thread_id: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timestamp: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    cursor: str | None = None  # the stream position; set when read back, never published

    @property
    def final(self) -> bool:
        """The request's answer (or its error): not the user's echo, a chunk, or a tool progress message."""
        return self.chunk_id is None and self.role != "user" and self.type is None

    def to_wire(self) -> dict[str, object]:
        """The published form: every field but the cursor, without empty ones."""
        return {name: value for name in _WIRE_FIELDS if (value := getattr(self, name)) is not None and value != ()}

    @classmethod
    def from_wire(cls, data: dict[str, object], cursor: str | None = None) -> AiMessage:
        """The published form read back; fields this version does not know (a newer publisher's, during a
        rolling deploy) are ignored. Raises TypeError or ValueError when it is no message at all."""
        if not isinstance(data, dict):
            raise TypeError(f"a message is a JSON object, not {type(data).__name__}")
        known = {name: value for name, value in data.items() if name in _WIRE_FIELD_SET}
        errors = known.get("errors") or ()
        if not isinstance(errors, list | tuple):
            raise TypeError("errors is not a list")
        return cls(**{**known, "errors": tuple(errors), "cursor": cursor})  # type: ignore[arg-type]


_WIRE_FIELDS = tuple(f.name for f in fields(AiMessage) if f.name != "cursor")
_WIRE_FIELD_SET = frozenset(_WIRE_FIELDS)


def route_id(
    user_gid: str,
    *,
    resource_gid: str | None = None,
    client_subscription_id: str | None = None,
    ai_action: str | None = None,
) -> str:
    """The id of one exact argument set of `aiCompletionResponse` (`after` is not part of it)."""
    canonical = "\x1f".join(
        f"{name}={value}"
        for name, value in (
            ("userId", user_gid),
            ("resourceId", resource_gid),
            ("clientSubscriptionId", client_subscription_id),
            ("aiAction", ai_action),
        )
        if value is not None
    )
    return hashlib.blake2b(canonical.encode(), digest_size=12).hexdigest()


def routes_for(
    user_gid: str,
    *,
    resource_gid: str | None,
    ai_action: str | None,
    client_subscription_id: str | None,
) -> list[str]:
    """The routes of one message: `{user, resource}` when it is about a resource and `{user, aiAction}` for
    chat, each with the client subscription id when given (pass None for the USER echo and broadcasts)."""
    routes: list[str] = []
    if resource_gid is not None:
        routes.append(route_id(user_gid, resource_gid=resource_gid, client_subscription_id=client_subscription_id))
    if ai_action is not None:
        routes.append(route_id(user_gid, ai_action=ai_action, client_subscription_id=client_subscription_id))
    return routes


@dataclass(frozen=True, slots=True)
class RequestRoutes:
    """Where the messages of one request go (SPEC §5.2), the one place that decides it for the web process
    (the USER echo) and the worker (chunks, tool progress, the final answer)."""

    user_id: int
    resource_gid: str | None
    ai_action: str | None  # "chat" for chat features
    client_subscription_id: str | None

    def _for(self, client_subscription_id: str | None) -> list[str]:
        user_gid = f"gid://gitlab/User/{self.user_id}"
        return routes_for(user_gid, resource_gid=self.resource_gid, ai_action=self.ai_action,
                          client_subscription_id=client_subscription_id)

    def echo(self) -> list[str]:
        """The user's own message: to their other subscriptions, never the request's own."""
        return self._for(None)

    def chunks(self) -> list[str]:
        """Streamed chunks and progress: the request's own subscription only (none without one)."""
        return self._for(self.client_subscription_id) if self.client_subscription_id is not None else []

    def final(self) -> list[str]:
        """The answer: the request's own routes; a chat answer also goes to every tab (no subscription id)."""
        routes = self._for(self.client_subscription_id)
        if self.client_subscription_id is not None and self.ai_action is not None:
            routes += self._for(None)
        return routes
