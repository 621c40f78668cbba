"""GraphQL for Duo Chat conversations (SPEC §13.1): `aiMessages`, `aiConversationThreads`,
`deleteConversationThread` and `duoUserFeedback`, over `chat.conversations`.

Reads need any scope, the mutations `api`. Everything is the caller's own: another user's thread reads as
unknown (`Thread <gid> is not found.`), cannot be deleted (`User not authorized to delete thread`), and
another user's message takes no feedback (the resource-access error). Lists are GraphQL connections
(`nodes`, `edges { cursor node }`, `pageInfo`); cursors are opaque.

`contentHtml` of a saved answer is rendered here from its (saved) Markdown, as the worker renders the
final message it publishes (`subscriptions.messages.markdown_renderer`); questions and errored answers have none.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

import orjson
import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from access.reading import readable_resource
from access.tokens import Principal
from api.auth import READ_SCOPES, WRITE_SCOPES, require_scopes
from api.graphql.inputs import AiConversationsThreadsConversationType
from chat import commands, conversations
from chat.tools.references import page_type
from core.errors import THREAD_NOT_DELETABLE, InvalidInput
from core.ids import GlobalID
from core.tables import ConversationMessage, ConversationThread
from subscriptions.messages import markdown_renderer
from subscriptions.scalars import AiConversationThreadID, AiModelID, Time
from subscriptions.schema import AiMessageRole, AiMessageType

__all__ = ["ChatMutation", "ChatQuery"]

_MAX_REQUEST_IDS = 100
_MAX_EVENT_TEXT = 1_000
_MAX_EVENT_EXTRA = 50_000


@strawberry.type(name="PageInfo", description="Information about pagination in a connection.")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type(name="AiMessageEdge")
class AiMessageEdge:
    cursor: str
    node: AiMessageType


@strawberry.type(name="AiMessageConnection", description="The connection type for AiMessage.")
class AiMessageConnection:
    nodes: list[AiMessageType]
    edges: list[AiMessageEdge]
    page_info: PageInfo


@strawberry.type(name="AiConversationsThread", description="Conversation thread of the AI feature.")
class AiConversationsThread:
    id: AiConversationThreadID
    created_at: Time
    last_updated_at: Time
    conversation_type: AiConversationsThreadsConversationType
    title: str | None = strawberry.field(description="Title of the thread: its first question.")

    @classmethod
    def from_row(cls, row: ConversationThread) -> AiConversationsThread:
        return cls(
            id=AiConversationThreadID(conversations.thread_gid(row.id)),
            created_at=Time(row.created_at.isoformat()),
            last_updated_at=Time(row.last_updated_at.isoformat()),
            conversation_type=AiConversationsThreadsConversationType(row.conversation_type),
            title=row.title,
        )


@strawberry.type(name="AiConversationsThreadEdge")
class AiConversationsThreadEdge:
    cursor: str
    node: AiConversationsThread


@strawberry.type(name="AiConversationsThreadConnection", description="The connection type for AiConversationsThread.")
class AiConversationsThreadConnection:
    nodes: list[AiConversationsThread]
    edges: list[AiConversationsThreadEdge]
    page_info: PageInfo


@strawberry.input(name="DeleteConversationThreadInput")
class DeleteConversationThreadInput:
    thread_id: AiConversationThreadID = strawberry.field(description="Global ID of the thread to delete.")
    client_mutation_id: str | None = None


@strawberry.type(name="DeleteConversationThreadPayload")
class DeleteConversationThreadPayload:
    success: bool
    errors: list[str]
    client_mutation_id: str | None = None


@strawberry.input(name="TrackingEventInput", description="A tracking event (GitLab's Snowplow event of the feedback).")
class TrackingEventInput:
    category: str
    action: str
    label: str | None = None
    property: str | None = strawberry.field(
        default=None, description="Thumbs (`positive`, `negative`) or feedback choices (`helpful`, `unhelpful`, `wrong`, ...).")
    extra: JSON | None = strawberry.field(default=None, description="Optional `improveWhat` and `didWhat` texts.")


@strawberry.input(name="DuoUserFeedbackInput")
class DuoUserFeedbackInput:
    ai_message_id: str = strawberry.field(description="ID of the AI message (`AiMessage.id`).")
    tracking_event: TrackingEventInput | None = None
    agent_version_id: str | None = None
    client_mutation_id: str | None = None


@strawberry.type(name="DuoUserFeedbackPayload")
class DuoUserFeedbackPayload:
    errors: list[str]
    client_mutation_id: str | None = None


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def _decode(cursor: str | None, argument: str, prefix: str) -> str | None:
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeError, ValueError):
        text = ""
    if not text.startswith(prefix):
        raise InvalidInput(argument, "is not a valid cursor")
    return text[len(prefix):]


def _message_cursor(cursor: str | None, argument: str) -> int | None:
    value = _decode(cursor, argument, "m:")
    if value is None:
        return None
    if not value.isdigit():
        raise InvalidInput(argument, "is not a valid cursor")
    return int(value)


def _thread_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    value = _decode(cursor, "after", "t:")
    if value is None:
        return None
    stamp, _, last_id = value.rpartition("|")
    try:
        return datetime.fromisoformat(stamp), int(last_id)
    except ValueError:
        raise InvalidInput("after", "is not a valid cursor") from None


def _message_node(row: ConversationMessage) -> AiMessageType:
    message = conversations.to_message(row)
    node = AiMessageType.from_model(message)
    if row.role == "assistant" and not row.errors and row.content:
        node.content_html = markdown_renderer().render(row.content)
    return node


def _page_info(page: conversations.Page[Any], cursors: list[str]) -> PageInfo:
    return PageInfo(has_next_page=page.has_next, has_previous_page=page.has_previous,
                    start_cursor=cursors[0] if cursors else None, end_cursor=cursors[-1] if cursors else None)


def _caller(info: Info, scopes: frozenset[str]) -> Principal:
    return require_scopes(info.context.principal, scopes)


@strawberry.type(name="SlashCommand", description="A slash command Duo Chat offers on a page.")
class SlashCommandType:
    name: str = strawberry.field(description="The command, with its slash.")
    description: str
    should_submit: bool = strawberry.field(description="Whether the command is sent as soon as it is chosen.")


@strawberry.type
class ChatQuery:
    @strawberry.field(description="The slash commands Duo Chat offers the caller on a page: the resource it shows "
                      "(`resourceId`, else read from the page's `url`) and the caller's Duo add-on.")
    async def ai_slash_commands(
        self, info: Info, resource_id: AiModelID | None = None, url: str | None = None
    ) -> list[SlashCommandType]:
        principal = _caller(info, READ_SCOPES)
        services = info.context.services
        resource_type: str | None = page_type(url) if url else None
        async with services.sessions() as session:
            if resource_id is not None:
                gid = GlobalID.parse(resource_id, argument="resourceId")
                await readable_resource(session, principal, gid)
                resource_type = gid.type
            primitives = await services.gate.unit_primitives(session, principal)
        return [SlashCommandType(name=c.name, description=c.description, should_submit=c.should_submit)
                for c in commands.offered(resource_type, primitives)]

    @strawberry.field(description="Find GitLab Duo Chat messages: the caller's own, in time order; by default the "
                      "last 50 of the thread (`threadId`, else the latest thread of `conversationType`, else of DUO_CHAT). "
                      "With `requestIds` and no thread, from any of the caller's threads or none (cached answers).")
    async def ai_messages(
        self, info: Info, request_ids: list[str] | None = None, roles: list[AiMessageRole] | None = None,
        thread_id: AiConversationThreadID | None = None,
        conversation_type: AiConversationsThreadsConversationType | None = None,
        first: int | None = None, after: str | None = None, last: int | None = None, before: str | None = None,
    ) -> AiMessageConnection:
        principal = _caller(info, READ_SCOPES)
        if request_ids is not None and len(request_ids) > _MAX_REQUEST_IDS:
            raise InvalidInput("requestIds", f"has too many items (maximum is {_MAX_REQUEST_IDS})")
        thread = conversations.thread_pk(thread_id)
        async with info.context.services.sessions() as session:
            page = await conversations.list_messages(
                session, principal.user_id, thread_id=thread, request_ids=request_ids,
                roles=[role.value for role in roles] if roles is not None else None,
                conversation_type=conversation_type.value if conversation_type else None,
                first=first, after=_message_cursor(after, "after"), last=last, before=_message_cursor(before, "before"),
            )
        cursors = [_encode(f"m:{row.id}") for row in page.items]
        nodes = [_message_node(row) for row in page.items]
        return AiMessageConnection(nodes=nodes, edges=[AiMessageEdge(cursor=c, node=n) for c, n in zip(cursors, nodes, strict=True)],
                                   page_info=_page_info(page, cursors))

    @strawberry.field(description="The caller's conversation threads, most recently updated first.")
    async def ai_conversation_threads(
        self, info: Info, id: AiConversationThreadID | None = None,  # noqa: A002 - GitLab's argument name
        conversation_type: AiConversationsThreadsConversationType | None = None,
        first: int | None = None, after: str | None = None,
    ) -> AiConversationsThreadConnection:
        principal = _caller(info, READ_SCOPES)
        thread = conversations.thread_pk(id, "id")
        async with info.context.services.sessions() as session:
            page = await conversations.list_threads(
                session, principal.user_id, thread_id=thread,
                conversation_type=conversation_type.value if conversation_type else None,
                first=first, after=_thread_cursor(after),
            )
        cursors = [_encode(f"t:{row.last_updated_at.isoformat()}|{row.id}") for row in page.items]
        nodes = [AiConversationsThread.from_row(row) for row in page.items]
        return AiConversationsThreadConnection(
            nodes=nodes, edges=[AiConversationsThreadEdge(cursor=c, node=n) for c, n in zip(cursors, nodes, strict=True)],
            page_info=_page_info(page, cursors))


def _event(event: TrackingEventInput | None) -> dict[str, Any]:
    if event is None:
        return {}
    data: dict[str, Any] = {}
    for name in ("category", "action", "label", "property"):
        value = getattr(event, name)
        if value is not None and len(value) > _MAX_EVENT_TEXT:
            raise InvalidInput(f"trackingEvent.{name}", f"is too long (maximum is {_MAX_EVENT_TEXT} characters)")
        data[name] = value
    if event.extra is not None:
        if not isinstance(event.extra, dict):
            raise InvalidInput("trackingEvent.extra", "must be an object")
        if len(orjson.dumps(event.extra)) > _MAX_EVENT_EXTRA:
            raise InvalidInput("trackingEvent.extra", f"is too large (maximum is {_MAX_EVENT_EXTRA} bytes)")
        data["extra"] = event.extra
    return data


@strawberry.type
class ChatMutation:
    @strawberry.mutation(description="Delete one of the caller's conversation threads and its messages.")
    async def delete_conversation_thread(
        self, info: Info, input: DeleteConversationThreadInput  # noqa: A002 - GitLab's argument name
    ) -> DeleteConversationThreadPayload | None:  # nullable, as GitLab's: an error here must not null a sibling aiAction
        principal = _caller(info, WRITE_SCOPES)
        thread = conversations.thread_pk(input.thread_id)
        assert thread is not None
        async with info.context.services.sessions() as session, session.begin():
            deleted = await conversations.delete_thread(session, principal.user_id, thread)
        return DeleteConversationThreadPayload(success=deleted, errors=[] if deleted else [THREAD_NOT_DELETABLE],
                                               client_mutation_id=input.client_mutation_id)

    @strawberry.mutation(description="Feedback on one of the caller's AI answers (thumbs, and what to improve).")
    async def duo_user_feedback(
        self, info: Info, input: DuoUserFeedbackInput  # noqa: A002 - GitLab's argument name
    ) -> DuoUserFeedbackPayload | None:  # nullable, as GitLab's (see above)
        principal = _caller(info, WRITE_SCOPES)
        event = _event(input.tracking_event)
        async with info.context.services.sessions() as session, session.begin():
            await conversations.record_feedback(session, principal.user_id, input.ai_message_id, event)
        return DuoUserFeedbackPayload(errors=[], client_mutation_id=input.client_mutation_id)
