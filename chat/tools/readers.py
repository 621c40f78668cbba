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
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import contains_eager, joinedload
from sqlalchemy.orm.interfaces import ORMOption

from access.reading import can_read, container_of, eager_options, find_resource
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

async def read_issue(context: ToolContext, session: AsyncSession, tool: Tool, arguments: Mapping[str, object]) -> ToolResult:
    return await _read(context, session, tool, arguments, "Issue")


async def read_merge_request(
    context: ToolContext, session: AsyncSession, tool: Tool, arguments: Mapping[str, object]
) -> ToolResult:
    return await _read(context, session, tool, arguments, "MergeRequest")


async def read_epic(context: ToolContext, session: AsyncSession, tool: Tool, arguments: Mapping[str, object]) -> ToolResult:
    return await _read(context, session, tool, arguments, "Epic")


async def read_vulnerability(
    context: ToolContext, session: AsyncSession, tool: Tool, arguments: Mapping[str, object]
) -> ToolResult:
    return await _read(context, session, tool, arguments, "Vulnerability")


async def _read(
    context: ToolContext, session: AsyncSession, tool: Tool, arguments: Mapping[str, object], kind: ItemType
) -> ToolResult:
    try:
        reference = parse_reference(str(arguments["reference"]), kind)
        item = await locate(session, reference, context.resource, context.project)
    except BadReference as exc:
        return failed(str(exc))
    reason = await _refusal(session, context, tool, item)
    if reason is not None or item is None:
        logger.info("tool_item_unavailable", extra={"tool": tool.name, "user_id": context.principal.user_id,
                                                     "reason": reason or "not found"})
        return failed(TOOL_ITEM_UNAVAILABLE)
    text = await render_item(session, item)
    return ToolResult(capped(text), "FINISHED", (source_of(item),))


async def _refusal(session: AsyncSession, context: ToolContext, tool: Tool, item: Item | None) -> str | None:
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
) -> Item | None:
    """The item `reference` names, seen from the page's `resource` (or aiAction's `project`), loaded with
    its project and group (what the read checks need) and its author (what `render_item` shows); None
    when there is no such item. Authorizes nothing: the caller checks the item. BadReference when a
    relative reference has nothing to be relative to. A full reference is one query."""
    noun = NOUNS[reference.type]
    if reference.current:
        current = await _current(session, resource)
        if current is None or current.type != reference.type:
            raise BadReference(
                f"The user is not on {with_article(noun)} page, so 'current' names no {noun}: ask the user which {noun} "
                f"they mean, or use the reference they gave."
            )
        return await session.scalar(_BY_ID[reference.type], {"b_id": current.id})
    assert reference.number is not None
    if reference.namespace is not None:
        if reference.type == "Epic":
            return await session.scalar(_AT_PATH["Epic"], {"b_number": reference.number, "b_group": reference.namespace})
        group, _, name = reference.namespace.rpartition("/")
        return await session.scalar(_AT_PATH[reference.type], {"b_number": reference.number, "b_group": group, "b_name": name})
    if reference.type == "Vulnerability":
        return await session.scalar(_BY_ID["Vulnerability"], {"b_id": reference.number})
    if reference.type == "Epic":
        place_id = await _group_id(session, resource, project)
    else:
        place_id = await _project_id(session, resource, project, noun)
    return await session.scalar(_IN_PLACE[reference.type], {"b_number": reference.number, "b_place": place_id})


# The lookups, built once with bound parameters (building a statement and its loader options per call cost
# more than running it). Each loads the item with its project and group (the read checks) and its author.
def _loaded(model: type[Item], *more: ORMOption) -> tuple[ORMOption, ...]:
    return (*eager_options(model), *more)


def _in_project(model: type[Issue] | type[MergeRequest]) -> Select[Any]:
    """The item of iid `b_number` in project `b_place`."""
    return (select(model).where(model.project_id == bindparam("b_place"), model.iid == bindparam("b_number"))
            .options(*_loaded(model, joinedload(model.author))))


def _at_project_path(model: type[Issue] | type[MergeRequest] | type[Vulnerability], number: Any, *more: ORMOption) -> Select[Any]:
    """The item whose `number` (iid, a vulnerability's ID) is `b_number` in the project `b_name` of the group at
    `b_group`, its project and group loaded by the same joins."""
    return (
        select(model).join(model.project).join(Project.group)
        .where(Group.full_path == bindparam("b_group"), Project.path == bindparam("b_name"), number == bindparam("b_number"))
        .options(contains_eager(model.project).contains_eager(Project.group), *more)
    )


_BY_ID: dict[ItemType, Select[Any]] = {
    "Issue": select(Issue).where(Issue.id == bindparam("b_id")).options(*_loaded(Issue, joinedload(Issue.author))),
    "MergeRequest": select(MergeRequest).where(MergeRequest.id == bindparam("b_id"))
    .options(*_loaded(MergeRequest, joinedload(MergeRequest.author))),
    "Epic": select(Epic).where(Epic.id == bindparam("b_id")).options(*_loaded(Epic, joinedload(Epic.author))),
    "Vulnerability": select(Vulnerability).where(Vulnerability.id == bindparam("b_id")).options(*_loaded(Vulnerability)),
}
_IN_PLACE: dict[ItemType, Select[Any]] = {  # relative references: in project (an epic: group) `b_place`
    "Issue": _in_project(Issue),
    "MergeRequest": _in_project(MergeRequest),
    "Epic": select(Epic).where(Epic.group_id == bindparam("b_place"), Epic.iid == bindparam("b_number"))
    .options(*_loaded(Epic, joinedload(Epic.author))),
}
_AT_PATH: dict[ItemType, Select[Any]] = {  # full references
    "Issue": _at_project_path(Issue, Issue.iid, joinedload(Issue.author)),
    "MergeRequest": _at_project_path(MergeRequest, MergeRequest.iid, joinedload(MergeRequest.author)),
    "Vulnerability": _at_project_path(Vulnerability, Vulnerability.id),
    "Epic": select(Epic).join(Epic.group)  # in the group at `b_group`
    .where(Group.full_path == bindparam("b_group"), Epic.iid == bindparam("b_number"))
    .options(contains_eager(Epic.group), joinedload(Epic.author)),
}


async def _current(session: AsyncSession, resource: GlobalID | None) -> GlobalID | None:
    """The page's resource; for a note, the issue, merge request or epic it is on."""
    if resource is None or resource.type != "Note":
        return resource
    note = await session.get(Note, resource.id)
    return GlobalID(note.noteable_type, note.noteable_id) if note is not None else None


async def _project_id(session: AsyncSession, resource: GlobalID | None, project: GlobalID | None, noun: str) -> int:
    place = await _place(session, resource)
    if isinstance(place, Project):
        return place.id
    if project is not None and project.type == "Project":
        return project.id
    raise BadReference(
        f"The user is not in a project, so a relative reference names no {noun}: give the full reference "
        f"(group/project#12, group/project!3) or the URL."
    )


async def _group_id(session: AsyncSession, resource: GlobalID | None, project: GlobalID | None) -> int:
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
