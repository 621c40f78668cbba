"""The reader tools: one issue, merge request, epic or vulnerability the user referred to, read only when
the user may read it and Duo is enabled where it lives (SPEC §13.3).

A reader answers, in order:
1. a `BadReference` text when the reference cannot name an item of its type (FAILED; names nothing);
2. GitLab's M3003 text (FAILED, nothing of the item) when the item does not exist, the user cannot read it
   (`access.reading.can_read`), or the entitlement decision about its project or group refuses it (Duo
   switched off on its namespace chain, `access.entitlement`): the three look the same to the model;
3. the item (`chat.tools.rendering`), capped, with the item as the result's one source.

(`chat.tools.run_tool` has already refused a tool the user's seats do not bundle, with M3005.)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from access.reading import can_read, container_of, find_resource
from catalogue.add_ons import Requirement, add_ons_bundling
from catalogue.tools import Tool
from chat.tools.context import ToolContext, ToolResult, capped, failed
from chat.tools.references import NOUNS, BadReference, ItemType, Reference, parse_reference, with_article
from chat.tools.rendering import Item, render_item, source_of
from core.errors import TOOL_ITEM_UNAVAILABLE
from core.ids import GlobalID
from core.tables import Epic, Group, Issue, MergeRequest, Note, Project, Vulnerability

__all__ = ["locate", "read_epic", "read_issue", "read_merge_request", "read_vulnerability"]

logger = logging.getLogger(__name__)

async def read_issue(context: ToolContext, tool: Tool, arguments: Mapping[str, object]) -> ToolResult:
    return await _read(context, tool, arguments, "Issue")


async def read_merge_request(context: ToolContext, tool: Tool, arguments: Mapping[str, object]) -> ToolResult:
    return await _read(context, tool, arguments, "MergeRequest")


async def read_epic(context: ToolContext, tool: Tool, arguments: Mapping[str, object]) -> ToolResult:
    return await _read(context, tool, arguments, "Epic")


async def read_vulnerability(context: ToolContext, tool: Tool, arguments: Mapping[str, object]) -> ToolResult:
    return await _read(context, tool, arguments, "Vulnerability")


async def _read(context: ToolContext, tool: Tool, arguments: Mapping[str, object], kind: ItemType) -> ToolResult:
    try:
        reference = parse_reference(str(arguments["reference"]), kind)
    except BadReference as exc:
        return failed(str(exc))
    async with context.sessions() as session:
        try:
            gid = await locate(session, reference, context.resource, context.project)
        except BadReference as exc:
            return failed(str(exc))
        item = await find_resource(session, gid) if gid is not None else None
        reason = await _refusal(session, context, tool, item)
        if reason is not None or not isinstance(item, Item):
            logger.info("tool_item_unavailable", extra={"tool": tool.name, "user_id": context.principal.user_id,
                                                         "reason": reason or "not found"})
            return failed(TOOL_ITEM_UNAVAILABLE)
        text = await render_item(session, item)
        return ToolResult(capped(text), "FINISHED", (source_of(item),))


async def _refusal(session: AsyncSession, context: ToolContext, tool: Tool, item: object) -> str | None:
    """Why the user may not have `item` read to the model (None: they may)."""
    if item is None:
        return "not found"
    if not await can_read(session, context.principal, item):
        return "not readable"
    requirement = Requirement(frozenset(add_ons_bundling(tool.unit_primitive)))
    gate = context.gate
    decision = await gate.entitlements.decide(
        session, context.principal.user_id, requirement, await container_of(item), gate.mode
    )
    return None if decision.allowed else str(decision.reason)


async def locate(
    session: AsyncSession, reference: Reference, resource: GlobalID | None, project: GlobalID | None
) -> GlobalID | None:
    """The global ID of the item `reference` names, seen from the page's `resource` (or aiAction's
    `project`); None when there is no such item. Authorizes nothing: the caller checks the item.
    BadReference when a relative reference has nothing to be relative to."""
    noun = NOUNS[reference.type]
    if reference.current:
        current = await _current(session, resource)
        if current is None or current.type != reference.type:
            raise BadReference(
                f"The user is not on {with_article(noun)} page, so 'current' names no {noun}: ask the user which {noun} "
                f"they mean, or use the reference they gave."
            )
        return current
    assert reference.number is not None
    if reference.type == "Vulnerability":
        query = select(Vulnerability.id).where(Vulnerability.id == reference.number)
        if reference.namespace is not None:
            query = query.where(Vulnerability.project_id.in_(_project_ids(reference.namespace)))
        found = await session.scalar(query)
    elif reference.type == "Epic":
        group_id = await _group_id(session, reference.namespace, resource, project)
        found = await session.scalar(select(Epic.id).where(Epic.group_id == group_id, Epic.iid == reference.number))
    elif reference.type == "Issue":
        project_id = await _project_id(session, reference.namespace, resource, project, noun)
        found = await session.scalar(select(Issue.id).where(Issue.project_id == project_id, Issue.iid == reference.number))
    else:
        project_id = await _project_id(session, reference.namespace, resource, project, noun)
        found = await session.scalar(
            select(MergeRequest.id).where(MergeRequest.project_id == project_id, MergeRequest.iid == reference.number)
        )
    return GlobalID(reference.type, found) if found is not None else None


async def _current(session: AsyncSession, resource: GlobalID | None) -> GlobalID | None:
    """The page's resource; for a note, the issue, merge request or epic it is on."""
    if resource is None or resource.type != "Note":
        return resource
    note = await session.get(Note, resource.id)
    return GlobalID(note.noteable_type, note.noteable_id) if note is not None else None


async def _project_id(
    session: AsyncSession, path: str | None, resource: GlobalID | None, project: GlobalID | None, noun: str
) -> int | None:
    if path is not None:
        return await session.scalar(_project_ids(path))
    place = await _place(session, resource)
    if isinstance(place, Project):
        return place.id
    if project is not None and project.type == "Project":
        return project.id
    raise BadReference(
        f"The user is not in a project, so a relative reference names no {noun}: give the full reference "
        f"(group/project#12, group/project!3) or the URL."
    )


async def _group_id(
    session: AsyncSession, path: str | None, resource: GlobalID | None, project: GlobalID | None
) -> int | None:
    if path is not None:
        return await session.scalar(select(Group.id).where(Group.full_path == path))
    place = await _place(session, resource)
    if place is None and project is not None and project.type == "Project":
        place = await session.get(Project, project.id)
    if isinstance(place, Project):
        return place.group_id
    if isinstance(place, Group):
        return place.id
    raise BadReference(
        "The user is not in a group or project, so a relative reference names no epic: give the full reference "
        "(group&4) or the URL."
    )


async def _place(session: AsyncSession, resource: GlobalID | None) -> Project | Group | None:
    """The project or group the page's resource is in (`access.reading.container_of`)."""
    if resource is None:
        return None
    found = await find_resource(session, resource)
    return await container_of(found) if found is not None else None


def _project_ids(path: str) -> Select[int]:
    group, _, name = path.rpartition("/")
    return select(Project.id).join(Group, Group.id == Project.group_id).where(Group.full_path == group, Project.path == name)
