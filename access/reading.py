"""May the caller read this: GitLab's read rules.

Read rules (GitLab's, reduced to what Switchboard serves):
- an admin reads everything;
- a public project or group is readable by anyone, an internal one by any signed-in user;
- a private project needs a membership of the project or of any group above it (any level, guest up);
- a private group needs a membership of it, of a group above it, or of anything inside it;
- an issue needs its project, and when confidential also reporter+ or being its author;
- a merge request needs its project, and reporter+ when the project is private (guests see none there);
- an epic needs its group, and when confidential also reporter+ or being its author;
- a vulnerability needs developer+ on its project (GitLab's security dashboard);
- a note is readable iff its noteable is.

`container_of` names the project or group whose Duo settings govern a resource (SPEC §6).

The mutation hot path is `readable_resource` (at most two queries). Its statements are built once, with
bound parameters (an expanding one for a group's ancestors): building a statement and its loader options
per call, and computing its cache key, cost more than running it.
"""

from __future__ import annotations

import logging
from functools import cache

from sqlalchemy import Select, and_, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.interfaces import ORMOption

from access.tokens import Principal
from core.errors import AccessDenied
from core.ids import GlobalID
from core.tables import (
    AccessLevel,
    Epic,
    Group,
    Issue,
    Member,
    MergeRequest,
    Note,
    Project,
    Visibility,
    Vulnerability,
)

__all__ = [
    "Resource",
    "access_level",
    "can_read",
    "container_of",
    "eager_options",
    "find_resource",
    "readable_resource",
    "resource_notes",
]

logger = logging.getLogger(__name__)

Resource = Issue | MergeRequest | Epic | Vulnerability | Project | Group | Note
_MODELS: dict[str, type[Resource]] = {
    "Issue": Issue,
    "MergeRequest": MergeRequest,
    "Epic": Epic,
    "Vulnerability": Vulnerability,
    "Project": Project,
    "Group": Group,
    "Note": Note,
}
_NOTEABLES = {"Issue": "issue", "MergeRequest": "merge_request", "Epic": "epic"}


async def find_resource(session: AsyncSession, gid: GlobalID) -> Resource | None:
    """The resource a global ID names, with what `can_read` and `container_of` need loaded; else None."""
    model = _MODELS.get(gid.type)
    if model is None:
        return None
    return await session.scalar(_by_id(model), {"b_id": gid.id})


async def readable_resource(session: AsyncSession, principal: Principal | None, gid: GlobalID) -> Resource:
    """The resource `gid` names if `principal` may read it; AccessDenied (GitLab's text) otherwise."""
    resource = await find_resource(session, gid)
    if resource is None or not await can_read(session, principal, resource):
        raise AccessDenied()
    return resource


async def can_read(session: AsyncSession, principal: Principal | None, resource: object) -> bool:
    """GitLab's read permission of `principal` (None: anonymous) on `resource`."""
    if principal is not None and principal.admin:
        return True
    match resource:
        case Note():
            noteable = await _noteable(resource)
            return noteable is not None and await can_read(session, principal, noteable)
        case Issue():
            return await _can_read_issue(session, principal, resource)
        case MergeRequest():
            project = await resource.awaitable_attrs.project
            return await _can_read_in_project(session, principal, project, private_level=AccessLevel.REPORTER)
        case Vulnerability():
            project = await resource.awaitable_attrs.project
            return await _can_read_in_project(session, principal, project, level=AccessLevel.DEVELOPER)
        case Epic():
            return await _can_read_epic(session, principal, resource)
        case Project():
            if _open_to(principal, resource.visibility):
                return True
            return principal is not None and await access_level(session, principal, resource) > 0
        case Group():
            return _open_to(principal, resource.visibility) or await _member_in_tree(session, principal, resource)
    return False


async def access_level(session: AsyncSession, principal: Principal, resource: Project | Group) -> int:
    """The highest access level `principal` holds on a project or group, inherited from the groups above
    it; 0 without any membership. Admins get no implicit level here."""
    group = await resource.awaitable_attrs.group if isinstance(resource, Project) else resource
    parameters = {"b_user": principal.user_id, "b_paths": group.ancestor_paths}
    if isinstance(resource, Project):
        return await session.scalar(_LEVEL_IN_PROJECT, {**parameters, "b_project": resource.id}) or 0
    return await session.scalar(_LEVEL_IN_GROUP, parameters) or 0


async def resource_notes(session: AsyncSession, resource: object) -> list[Note]:
    """The human notes on an issue, merge request or epic, oldest first, with their authors loaded; []
    for anything else."""
    kind = type(resource).__name__
    if kind not in _NOTEABLES:
        return []
    return list(await session.scalars(_HUMAN_NOTES, {"b_type": kind, "b_id": resource.id}))  # type: ignore[attr-defined]


async def container_of(resource: object) -> Project | Group | None:
    """The project or group whose settings govern `resource` (a note: its noteable's); None for anything
    else. Loads what `find_resource` did not."""
    match resource:
        case Project() | Group():
            return resource
        case Issue() | MergeRequest() | Vulnerability():
            project = await resource.awaitable_attrs.project
            await project.awaitable_attrs.group
            return project
        case Epic():
            return await resource.awaitable_attrs.group
        case Note():
            return await container_of(await _noteable(resource))
    return None


@cache
def _by_id(model: type[Resource]) -> Select[tuple[Resource]]:
    """`model`'s row of ID `b_id`, with what `can_read` and `container_of` need."""
    return select(model).where(model.id == bindparam("b_id")).options(*eager_options(model))  # type: ignore[return-value]


_ANCESTOR_IDS = select(Group.id).where(Group.full_path.in_(bindparam("b_paths", expanding=True)))
_LEVEL_IN_GROUP = select(func.max(Member.access_level)).where(  # of `b_user` in the groups at `b_paths`
    Member.user_id == bindparam("b_user"), Member.source_type == "Group", Member.source_id.in_(_ANCESTOR_IDS)
)
_LEVEL_IN_PROJECT = select(func.max(Member.access_level)).where(  # … and in project `b_project`
    Member.user_id == bindparam("b_user"),
    or_(
        and_(Member.source_type == "Group", Member.source_id.in_(_ANCESTOR_IDS)),
        and_(Member.source_type == "Project", Member.source_id == bindparam("b_project")),
    ),
)
_HUMAN_NOTES = (  # of the noteable (`b_type`, `b_id`), oldest first, with their authors
    select(Note)
    .options(joinedload(Note.author))
    .where(Note.noteable_type == bindparam("b_type"), Note.noteable_id == bindparam("b_id"), Note.system.is_(False))
    .order_by(Note.created_at, Note.id)
)


@cache
def eager_options(model: type[Resource]) -> tuple[ORMOption, ...]:
    """The loader options that load with a `model` row what `can_read` and `container_of` read (its
    project and group, a note's noteable), built once per model."""
    return tuple(_eager(model))


def _eager(model: type[Resource]) -> list[ORMOption]:
    in_project = lambda attr: joinedload(attr, innerjoin=True).joinedload(Project.group, innerjoin=True)  # noqa: E731
    if model is Issue or model is MergeRequest or model is Vulnerability:
        return [in_project(model.project)]
    if model is Epic:
        return [joinedload(Epic.group, innerjoin=True)]
    if model is Note:
        return [
            joinedload(Note.issue).joinedload(Issue.project).joinedload(Project.group),
            joinedload(Note.merge_request).joinedload(MergeRequest.project).joinedload(Project.group),
            joinedload(Note.epic).joinedload(Epic.group),
        ]
    if model is Project:
        return [joinedload(Project.group, innerjoin=True)]
    return []


def _open_to(principal: Principal | None, visibility: str) -> bool:
    return visibility == Visibility.PUBLIC or (visibility == Visibility.INTERNAL and principal is not None)


async def _can_read_issue(session: AsyncSession, principal: Principal | None, issue: Issue) -> bool:
    project = await issue.awaitable_attrs.project
    open_project = _open_to(principal, project.visibility)
    if open_project and not issue.confidential:
        return True
    if principal is None:
        return False
    level = await access_level(session, principal, project)
    if not (open_project or level > 0):
        return False
    return not issue.confidential or level >= AccessLevel.REPORTER or issue.author_id == principal.user_id


async def _can_read_in_project(
    session: AsyncSession,
    principal: Principal | None,
    project: Project,
    *,
    level: int = 0,
    private_level: int = 0,
) -> bool:
    """Readable in `project`: it is open to the principal (and `level` is 0), or they hold at least
    `level`, and in a private project at least `private_level`, and some membership in any case."""
    if level == 0 and project.visibility != Visibility.PRIVATE and _open_to(principal, project.visibility):
        return True
    if principal is None:
        return False
    held = await access_level(session, principal, project)
    needed = max(level, private_level if project.visibility == Visibility.PRIVATE else 0)
    return held >= needed if needed else held > 0


async def _can_read_epic(session: AsyncSession, principal: Principal | None, epic: Epic) -> bool:
    group = await epic.awaitable_attrs.group
    if not await can_read(session, principal, group):
        return False
    if not epic.confidential:
        return True
    if principal is None:
        return False
    return epic.author_id == principal.user_id or await access_level(session, principal, group) >= AccessLevel.REPORTER


async def _noteable(note: Note) -> object | None:
    attribute = _NOTEABLES.get(note.noteable_type)
    if attribute is not None:
        return await getattr(note.awaitable_attrs, attribute)
    logger.warning("note %s has an unknown noteable type %r", note.id, note.noteable_type)
    return None


async def _member_in_tree(session: AsyncSession, principal: Principal | None, group: Group) -> bool:
    """Whether `principal` is a member of `group`, of a group above it, or of a subgroup or project in it."""
    if principal is None:
        return False
    below = Group.full_path.startswith(group.full_path + "/", autoescape=True)
    tree = select(Group.id).where(or_(Group.full_path.in_(group.ancestor_paths), below))
    projects = select(Project.id).where(
        Project.group_id.in_(select(Group.id).where(or_(Group.id == group.id, below)))
    )
    query = select(Member.id).where(
        Member.user_id == principal.user_id,
        or_(
            and_(Member.source_type == "Group", Member.source_id.in_(tree)),
            and_(Member.source_type == "Project", Member.source_id.in_(projects)),
        ),
    ).limit(1)
    return await session.scalar(query) is not None
