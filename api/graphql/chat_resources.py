"""`aiChatResources`: what the chat page's resource picker offers (SPEC §14) — the issues, merge requests,
epics and vulnerabilities the caller can read, each with its global ID (the chat's `resourceId`).

Readability is `access.reading.can_read`, row by row, so the list never holds an item (nor its title) that
`aiAction` would refuse as unreadable. Projects and groups are checked first, once each, so the rows of
containers the caller cannot see are never loaded. Newest first, at most `first` of each type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload
from strawberry.types import Info

from access.reading import can_read
from access.tokens import Principal
from api.auth import READ_SCOPES, require_scopes
from core.errors import InvalidInput
from core.ids import GlobalID
from core.tables import Epic, Group, Issue, MergeRequest, Project, Vulnerability
from subscriptions.scalars import AiModelID

__all__ = ["ChatResourcesQuery", "AiChatResource", "AiChatResourceType", "readable_chat_resources"]

DEFAULT_FIRST = 25
MAX_FIRST = 100


@strawberry.enum(name="AiChatResourceType", description="Kinds of item Duo Chat can talk about.")
class AiChatResourceType(Enum):
    ISSUE = "Issue"
    MERGE_REQUEST = "MergeRequest"
    EPIC = "Epic"
    VULNERABILITY = "Vulnerability"


@strawberry.type(name="AiChatResource", description="An item the caller can read and ask Duo Chat about.")
class AiChatResource:
    id: AiModelID = strawberry.field(description="Global ID, to pass as the chat's `resourceId`.")
    type: AiChatResourceType
    title: str
    reference: str = strawberry.field(description="GitLab's reference: `group/project#1`, `group/project!1`, "
                                      "`group&1`, or the path of a vulnerability.")


async def _readable(session: AsyncSession, principal: Principal, rows: Sequence[Any]) -> list[Any]:
    return [row for row in rows if await can_read(session, principal, row)]


async def readable_chat_resources(session: AsyncSession, principal: Principal, first: int) -> list[AiChatResource]:
    """Up to `first` readable items of each type, newest first: issues, merge requests, epics, vulnerabilities."""
    projects = [p for p in await session.scalars(select(Project).options(joinedload(Project.group)))
                if await can_read(session, principal, p)]
    groups = [g for g in await session.scalars(select(Group)) if await can_read(session, principal, g)]
    project_ids = [p.id for p in projects]
    found: list[AiChatResource] = []

    async def collect(model: Any, where: Any, kind: AiChatResourceType, reference: Callable[[Any], str]) -> None:
        query = select(model).where(where).order_by(model.id.desc())
        if model is Epic:
            query = query.options(joinedload(Epic.group))
        else:
            query = query.options(joinedload(model.project).joinedload(Project.group))
        kept = 0
        batch_start = 0
        while kept < first:  # rows of readable containers, each checked; unreadable ones are skipped
            rows = list(await session.scalars(query.offset(batch_start).limit(first * 2)))
            if not rows:
                return
            batch_start += len(rows)
            for row in await _readable(session, principal, rows):
                if kept == first:
                    return
                found.append(AiChatResource(id=AiModelID(str(GlobalID(kind.value, row.id))), type=kind,
                                            title=row.title, reference=reference(row)))
                kept += 1

    if project_ids:
        await collect(Issue, Issue.project_id.in_(project_ids), AiChatResourceType.ISSUE,
                      lambda i: f"{i.project.full_path}#{i.iid}")
        await collect(MergeRequest, MergeRequest.project_id.in_(project_ids), AiChatResourceType.MERGE_REQUEST,
                      lambda m: f"{m.project.full_path}!{m.iid}")
    if groups:
        await collect(Epic, Epic.group_id.in_([g.id for g in groups]), AiChatResourceType.EPIC,
                      lambda e: f"{e.group.full_path}&{e.iid}")
    if project_ids:
        await collect(Vulnerability, Vulnerability.project_id.in_(project_ids), AiChatResourceType.VULNERABILITY,
                      lambda v: f"{v.project.full_path}/-/security/vulnerabilities/{v.id}")
    return found


@strawberry.type
class ChatResourcesQuery:
    @strawberry.field(description="The issues, merge requests, epics and vulnerabilities the caller can read, to "
                      "talk about in Duo Chat: newest first, at most `first` (default 25, maximum 100) of each type.")
    async def ai_chat_resources(self, info: Info, first: int | None = None) -> list[AiChatResource]:
        principal = require_scopes(info.context.principal, READ_SCOPES)
        count = DEFAULT_FIRST if first is None else first
        if not 1 <= count <= MAX_FIRST:
            raise InvalidInput("first", f"must be between 1 and {MAX_FIRST}")
        async with info.context.services.sessions() as session:
            return await readable_chat_resources(session, principal, count)
