"""The `aiCompletionResponse` subscription and the `AiMessage` GraphQL type."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from enum import Enum
from typing import Any, Protocol

import strawberry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.scalars import JSON

from access.reading import readable_resource
from access.tokens import READ_SCOPES, Principal, require_scopes
from core.errors import RESOURCE_NOT_AVAILABLE, AccessDenied
from core.ids import AI_MODEL_TYPES, GlobalID
from core.metrics import SUBSCRIPTION_EVENTS
from core.settings import Settings
from subscriptions.execution import EVENT_SINK, EventPlan, EventSink
from subscriptions.hub import Hub, Subscriber
from subscriptions.messages import AiMessage, route_id
from subscriptions.quota import QUOTA
from subscriptions.scalars import AiConversationThreadID, AiModelID, Time, UserID
from subscriptions.streams import after_cursor, parse_cursor, replay

__all__ = ["Subscription", "AiMessageExtras", "AiMessageType", "AiMessageRole", "AiAction", "SubscriptionContext"]


class SubscriptionContext(Protocol):
    principal: Principal | None
    settings: Settings
    hub: Hub
    redis: Redis
    sessions: async_sessionmaker[AsyncSession]


_SENT, _EXECUTED = SUBSCRIPTION_EVENTS.labels("sent"), SUBSCRIPTION_EVENTS.labels("executed")


@strawberry.enum(name="AiAction", description="Action to subscribe to.")
class AiAction(Enum):
    CHAT = "chat"


@strawberry.enum(name="AiMessageRole", description="Possible message roles for AI features.")
class AiMessageRole(Enum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"


@strawberry.enum(name="AiMessageType", description="Types of messages returned from AI features.")
class AiMessageTypeEnum(Enum):
    TOOL = "tool"


@strawberry.type(name="AiMessageExtras", description="Extra metadata for AI message.")
class AiMessageExtras:
    sources: list[JSON] | None = strawberry.field(default=None, description="Sources used to form the message.")
    has_feedback: bool | None = strawberry.field(default=None, description="Whether the user sent feedback on the message.")
    additional_context: list[JSON] | None = strawberry.field(default=None, description="Additional context of the message.")
    tool_calls: list[JSON] | None = strawberry.field(
        default=None, description="Tool calls of the answer: name, input, status (STARTED, FINISHED, FAILED), durationMs.")
    cancelled: bool | None = strawberry.field(default=None, description="The request was stopped (`aiActionCancel`).")

    @classmethod
    def from_extras(cls, extras: dict[str, object] | None) -> AiMessageExtras | None:
        """From a message's `extras` (keys `sources`, `has_feedback`, `additional_context`, `tool_calls`,
        `cancelled`), shared by the subscription and `aiMessages`."""
        if not extras:
            return None
        return cls(
            sources=extras.get("sources"),  # type: ignore[arg-type]
            has_feedback=extras.get("has_feedback"),  # type: ignore[arg-type]
            additional_context=extras.get("additional_context"),  # type: ignore[arg-type]
            tool_calls=extras.get("tool_calls"),  # type: ignore[arg-type]
            cancelled=extras.get("cancelled"),  # type: ignore[arg-type]
        )


@strawberry.type(name="AiMessage", description="AI features communication message")
class AiMessageType:
    id: strawberry.ID | None
    request_id: str | None = strawberry.field(description="UUID of the original request. Shared between chat prompt and response.")
    content: str | None
    content_html: str | None
    role: AiMessageRole
    timestamp: Time
    chunk_id: int | None = strawberry.field(description="Incremental ID for a chunk from a streamed message. Null when it is not a streamed message.")
    errors: list[str] | None
    type: AiMessageTypeEnum | None
    extras: AiMessageExtras | None
    thread_id: AiConversationThreadID | None
    cursor: str | None = strawberry.field(description="Position of this message in its subscription's stream; pass as `after` to resume.")

    @classmethod
    def from_model(cls, message: AiMessage) -> AiMessageType:
        return cls(
            id=strawberry.ID(message.id),
            request_id=message.request_id,
            content=message.content,
            content_html=message.content_html,
            role=AiMessageRole(message.role),
            timestamp=Time(message.timestamp),
            chunk_id=message.chunk_id,
            errors=list(message.errors),
            type=AiMessageTypeEnum(message.type) if message.type else None,
            extras=AiMessageExtras.from_extras(message.extras),
            thread_id=AiConversationThreadID(message.thread_id) if message.thread_id else None,
            cursor=message.cursor,
        )


async def _authorize(context: SubscriptionContext, user_id: str | None, resource_id: str | None) -> str | None:
    """The caller's GID when they may subscribe with these arguments; raises AccessDenied otherwise."""
    principal = require_scopes(context.principal, READ_SCOPES)
    if user_id is None:
        raise AccessDenied(RESOURCE_NOT_AVAILABLE)
    if GlobalID.parse(user_id, argument="userId", types={"User"}).id != principal.user_id:
        raise AccessDenied(RESOURCE_NOT_AVAILABLE)
    if resource_id is None:
        return None
    gid = GlobalID.parse(resource_id, argument="resourceId", types=AI_MODEL_TYPES)
    async with context.sessions() as session:
        await readable_resource(session, principal, gid)
    return str(gid)


class _Events:
    """One subscription's messages: the route's history after `since` (none when None), then the live ones,
    without a duplicate. Holds a place in the user's quota and in the hub from creation until `close()`.
    Once `sent_through` a sink with a plan, it is the `EventSource` a transport may run after the
    subscription's execution ended."""

    __slots__ = ("_redis", "_hub", "_user_id", "_subscriber", "_since", "_sent")

    def __init__(self, context: SubscriptionContext, user_id: int, route: str, since: tuple[int, int] | None) -> None:
        QUOTA.take(user_id, context.settings.max_subscriptions_per_user)
        self._redis, self._hub, self._user_id, self._since = context.redis, context.hub, user_id, since
        self._subscriber: Subscriber | None = context.hub.subscribe(route)  # before replaying: no gap between
        self._sent: tuple[EventPlan, EventSink] | None = None

    def sent_through(self, plan: EventPlan, sink: EventSink) -> _Events:
        self._sent = (plan, sink)
        return self

    async def messages(self) -> AsyncGenerator[AiMessage, None]:
        subscriber, since = self._subscriber, self._since
        assert subscriber is not None, "closed"
        if since is not None:
            for message in await replay(self._redis, subscriber.route, since):
                yield message
                since = parse_cursor(message.cursor or "0-0")
        async for message in subscriber:
            if since is not None and not after_cursor(message.cursor or "0-0", since):
                continue  # already replayed
            yield message

    async def run(self) -> None:
        """Send every message through the sink, rendered by the plan, until cancelled."""
        assert self._sent is not None
        plan, sink = self._sent
        async with aclosing(self.messages()) as messages:
            async for message in messages:
                _SENT.inc()
                await sink.send(plan.render(AiMessageType.from_model(message)))

    def close(self) -> None:
        subscriber, self._subscriber = self._subscriber, None
        if subscriber is not None:
            self._hub.unsubscribe(subscriber)
            QUOTA.release(self._user_id)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Triggered when a response from AI integration is received. Pass `after` (a message's "
        "`cursor`) to first replay what was published after it."
    )
    async def ai_completion_response(
        self,
        info: strawberry.Info,
        user_id: UserID | None = None,
        resource_id: AiModelID | None = None,
        client_subscription_id: str | None = None,
        ai_action: AiAction | None = None,
        after: str | None = None,
    ) -> AsyncGenerator[AiMessageType | None, None]:
        context: Any = info.context
        resource_gid = await _authorize(context, user_id, resource_id)
        since = parse_cursor(after) if after is not None else None
        route = route_id(
            context.principal.gid,
            resource_gid=resource_gid,
            client_subscription_id=client_subscription_id,
            ai_action=ai_action.value if ai_action else None,
        )
        # A websocket transport sends the events of a plain selection itself (subscriptions.execution), and
        # runs them after this execution ended when it can (then it closes them).
        sink = EVENT_SINK.get()
        plan = EventPlan.for_info(info._raw_info) if sink is not None else None  # strawberry is pinned
        events = _Events(context, context.principal.user_id, route, since)
        if sink is not None and plan is not None and sink.detach(events.sent_through(plan, sink)):
            return
        try:
            if sink is not None and plan is not None:
                await events.run()
                return
            async with aclosing(events.messages()) as messages:
                async for message in messages:
                    _EXECUTED.inc()
                    yield AiMessageType.from_model(message)
        finally:
            events.close()
