"""What a prompt is given: the feature's inputs, the resource the action is about, and today's date.

`resource` is a `ResourceContext` whatever the resource's type, so templates read `resource.title`,
`resource.notes` (human notes only, oldest first: issues, merge requests, epics), `resource.diff` and the
branches (merge requests), `resource.severity`, `resource.file`, `resource.code` … (vulnerabilities);
fields a type does not have are empty. Long texts are cut to a budget, marked as cut. The resource is read
through `access.reading` after the worker's access re-check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from access.reading import Resource, find_resource, resource_notes
from catalogue import Feature, InputField
from core.actions import ActionRecord
from core.ids import GlobalID
from core.tables import Epic, Group, Issue, MergeRequest, Note, Project, Vulnerability

__all__ = ["NoteContext", "ResourceContext", "describe_resource", "prompt_variables", "MAX_TEXT_CHARS"]

# About 50,000 tokens for one long text (a diff, the notes of a long discussion).
MAX_TEXT_CHARS = 200_000
_CUT = "\n[… cut: too long]"


@dataclass(frozen=True, slots=True)
class NoteContext:
    author: str
    body: str
    created_at: str


@dataclass(frozen=True, slots=True)
class ResourceContext:
    type: str
    gid: str
    reference: str
    title: str = ""
    description: str = ""
    notes: tuple[NoteContext, ...] = ()
    diff: str = ""
    source_branch: str = ""
    target_branch: str = ""
    severity: str = ""
    report_type: str = ""
    file: str = ""
    start_line: int | None = None
    code: str = ""


def _cut(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + _CUT


def _project_path(project: Project) -> str:
    return f"{project.group.full_path}/{project.path}"


async def _notes(session: AsyncSession, resource: object) -> tuple[NoteContext, ...]:
    notes, budget = [], MAX_TEXT_CHARS
    for note in await resource_notes(session, resource):
        if budget <= 0:
            break
        body = _cut(note.body, budget)
        budget -= len(body)
        notes.append(NoteContext(note.author.username, body, note.created_at.isoformat(timespec="seconds")))
    return tuple(notes)


async def describe_resource(session: AsyncSession, gid: GlobalID, found: Resource | None = None) -> ResourceContext | None:
    """The resource as prompts see it (`found`: already loaded by `find_resource`); None when it does not
    exist (anymore)."""
    resource = found if found is not None else await find_resource(session, gid)
    if resource is None:
        return None
    base: dict[str, Any] = {"type": gid.type, "gid": str(gid)}
    match resource:
        case Issue():
            return ResourceContext(**base, reference=f"{_project_path(resource.project)}#{resource.iid}",
                                   title=resource.title, description=_cut(resource.description),
                                   notes=await _notes(session, resource))
        case MergeRequest():
            return ResourceContext(**base, reference=f"{_project_path(resource.project)}!{resource.iid}",
                                   title=resource.title, description=_cut(resource.description),
                                   notes=await _notes(session, resource), diff=_cut(resource.diff),
                                   source_branch=resource.source_branch, target_branch=resource.target_branch)
        case Epic():
            return ResourceContext(**base, reference=f"{resource.group.full_path}&{resource.iid}",
                                   title=resource.title, description=_cut(resource.description),
                                   notes=await _notes(session, resource))
        case Vulnerability():
            return ResourceContext(**base, reference=f"{_project_path(resource.project)} vulnerability {resource.id}",
                                   title=resource.title, description=_cut(resource.description),
                                   severity=resource.severity, report_type=resource.report_type,
                                   file=resource.file, start_line=resource.start_line, code=_cut(resource.code))
        case Project():
            return ResourceContext(**base, reference=_project_path(resource), title=resource.name)
        case Group():
            return ResourceContext(**base, reference=resource.full_path, title=resource.name)
        case Note():
            return await _describe_note(session, resource, base)
    return ResourceContext(**base, reference=str(gid))


async def _describe_note(session: AsyncSession, note: Note, base: dict[str, Any]) -> ResourceContext:
    """A note is described by its noteable, with the note's text as the description."""
    noteable = {"Issue": note.issue, "MergeRequest": note.merge_request, "Epic": note.epic}.get(note.noteable_type)
    about = await describe_resource(session, GlobalID(note.noteable_type, noteable.id)) if noteable else None
    reference = about.reference if about else base["gid"]
    return ResourceContext(**base, reference=reference, title=about.title if about else "", description=_cut(note.body))


def _input(field: InputField, value: object) -> object:
    """An input as templates see it: absent optional fields are None; objects have all their keys."""
    if value is None:
        return None
    if field.kind == "current_file" and isinstance(value, Mapping):
        keys = ("file_name", "selected_text", "content_above_cursor", "content_below_cursor")
        return {key: value.get(key) or "" for key in keys}
    if field.kind == "additional_context" and isinstance(value, list):
        item_keys = ("category", "id", "content")
        return [{**{key: item.get(key) or "" for key in item_keys}, "metadata": item.get("metadata") or {}} for item in value]
    return value


async def prompt_variables(
    session: AsyncSession, feature: Feature, record: ActionRecord, resource: Resource | None = None
) -> dict[str, object]:
    """Every variable the feature's prompt may use (see `catalogue.prompts`); reads the database only when
    the action is about a resource (`resource`: that resource, already loaded by the access re-check)."""
    variables: dict[str, object] = {field.name: _input(field, record.inputs.get(field.name)) for field in feature.fields}
    variables["current_date"] = datetime.now(UTC).date().isoformat()
    variables["resource"] = None
    if record.resource is not None:
        variables["resource"] = await describe_resource(session, GlobalID.parse(record.resource, argument="resourceId"),
                                                        resource)
    return variables
