"""GraphQL `currentUser`, `group(fullPath:)` and `project(fullPath:)`, with what a frontend needs to decide
which Duo features to show: the effective Duo settings and, per feature, whether the caller may use it there.

A group or project that does not exist or that the caller cannot read is `null`, as in GitLab.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import select
from sqlalchemy.orm import joinedload
from strawberry.types import Info

from access.reading import can_read, container_of, readable_resource
from catalogue import external_features
from core.ids import AI_MODEL_TYPES, GlobalID
from core.tables import Group, Project, User, utcnow

if TYPE_CHECKING:
    from api.graphql.queries import AiFeatureType

__all__ = [
    "CurrentUserType",
    "GroupType",
    "ProjectType",
    "ai_features_about",
    "ai_features_for",
    "current_user",
    "find_group",
    "find_project",
]

_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*\Z")

async def ai_features_for(info: Info, container: Project | Group | None, resource_type: str | None = None) -> list[Any]:
    """Every external feature with `available` for the caller, about something in `container`."""
    from api.graphql.queries import (
        AiFeatureType,  # not at the top: api.queries imports this module
    )

    context = info.context
    principal = context.principal
    found = []
    async with context.services.sessions() as session:
        for feature in external_features():
            fits = resource_type is None or resource_type in feature.resource_types
            available = (
                principal is not None
                and fits
                and await context.services.gate.available(session, principal, feature, container)
            )
            found.append(AiFeatureType.from_model(feature, available=available))
    return found


@strawberry.type(name="UserCore", description="Core representation of a GitLab user.")
class CurrentUserType:
    id: strawberry.ID
    username: str
    name: str
    admin: bool
    duo_add_ons: list[str] = strawberry.field(description="The Duo add-ons whose seat the user holds (active ones).")

    @strawberry.field(description="User access to AI chat feature.")
    async def duo_chat_available(self, info: Info) -> bool:
        context = info.context
        chats = [feature for feature in external_features() if feature.ai_action == "chat"]
        async with context.services.sessions() as session:
            for feature in chats:
                if await context.services.gate.available(session, context.principal, feature, None):
                    return True
        return False


@strawberry.type(name="Group", description="A group namespace with its GitLab Duo settings.")
class GroupType:
    id: strawberry.ID
    name: str
    path: str
    full_path: str
    visibility: str
    duo_features_enabled: bool = strawberry.field(description="Whether GitLab Duo features are enabled here (inherited or set).")
    lock_duo_features_enabled: bool = strawberry.field(description="Whether this group imposes its Duo setting on everything below.")
    duo_features_enabled_locked_by: str | None = strawberry.field(
        description="The group (or `instance`) whose lock fixes the Duo setting here; null when it may be changed."
    )
    experiment_features_enabled: bool = strawberry.field(description="Experiment and beta features, as set on the top-level group.")
    _model: strawberry.Private[Group]

    @strawberry.field(description="The AI features and whether the caller may use them in this group.")
    async def ai_features(self, info: Info) -> list[Annotated[AiFeatureType, strawberry.lazy("api.graphql.queries")]]:
        return await ai_features_for(info, self._model)


@strawberry.type(name="Project", description="A project with its GitLab Duo settings.")
class ProjectType:
    id: strawberry.ID
    name: str
    path: str
    full_path: str
    visibility: str
    duo_features_enabled: bool = strawberry.field(description="Whether GitLab Duo features are enabled here (inherited or set).")
    duo_features_enabled_locked_by: str | None
    _model: strawberry.Private[Project]

    @strawberry.field(description="The AI features and whether the caller may use them in this project.")
    async def ai_features(self, info: Info) -> list[Annotated[AiFeatureType, strawberry.lazy("api.graphql.queries")]]:
        return await ai_features_for(info, self._model)


async def current_user(info: Info) -> CurrentUserType | None:
    principal = info.context.principal
    if principal is None:
        return None
    services = info.context.services
    async with services.sessions() as session:
        name = await session.scalar(select(User.name).where(User.id == principal.user_id))
        seats = await services.entitlements.seats(session, principal.user_id)
    instance_seats = services.settings.mode == "self_managed"
    now = utcnow()
    add_ons = sorted({s.add_on for s in seats if s.active(now) and (s.namespace_id is None) == instance_seats})
    return CurrentUserType(
        id=strawberry.ID(principal.gid), username=principal.username, name=name or principal.username,
        admin=principal.admin, duo_add_ons=add_ons,
    )


def _valid_path(full_path: str) -> bool:
    """Only what a path can hold reaches the database (PostgreSQL refuses NUL in text, for one)."""
    return _PATH.match(full_path) is not None


async def find_group(info: Info, full_path: str) -> GroupType | None:
    if not _valid_path(full_path):
        return None
    services = info.context.services
    async with services.sessions() as session:
        group = await session.scalar(select(Group).where(Group.full_path == full_path))
        if group is None or not await can_read(session, info.context.principal, group):
            return None
        place, experiments = await services.entitlements.place(session, group)
    return GroupType(
        id=strawberry.ID(str(GlobalID("Group", group.id))), name=group.name, path=group.path,
        full_path=group.full_path, visibility=group.visibility, duo_features_enabled=place.enabled,
        lock_duo_features_enabled=group.lock_duo_features_enabled,
        duo_features_enabled_locked_by=place.locked_by if place.locked_by != group.full_path else None,
        experiment_features_enabled=experiments, _model=group,
    )


async def find_project(info: Info, full_path: str) -> ProjectType | None:
    if not _valid_path(full_path):
        return None
    group_path, _, path = full_path.rpartition("/")
    services = info.context.services
    async with services.sessions() as session:
        query = (
            select(Project).join(Group, Group.id == Project.group_id).options(joinedload(Project.group))
            .where(Group.full_path == group_path, Project.path == path)
        )
        project = await session.scalar(query)
        if project is None or not await can_read(session, info.context.principal, project):
            return None
        place, _ = await services.entitlements.place(session, project)
    return ProjectType(
        id=strawberry.ID(str(GlobalID("Project", project.id))), name=project.name, path=project.path,
        full_path=project.full_path, visibility=project.visibility, duo_features_enabled=place.enabled,
        duo_features_enabled_locked_by=place.locked_by, _model=project,
    )


async def ai_features_about(info: Info, resource_id: str | None) -> list[Any]:
    """`aiFeatures(resourceId:)`: availability about that resource (an error when it cannot be read)."""
    if resource_id is None:
        return await ai_features_for(info, None)
    gid = GlobalID.parse(resource_id, argument="resourceId", types=AI_MODEL_TYPES)
    async with info.context.services.sessions() as session:
        container = await container_of(await readable_resource(session, info.context.principal, gid))
    return await ai_features_for(info, container, gid.type)
