"""Groups, projects, memberships and Duo settings, as an operator manages them (the `switchboard` CLI).

Like `access.admin.accounts`, these functions flush but never commit, and raise `InvalidInput` with a message that
says what is wrong and how to fix it.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from access.entitlement import Cascade, cascade, load_chain, load_instance
from core.errors import InvalidInput
from core.tables import (
    AccessLevel,
    Group,
    InstanceSettings,
    Member,
    Project,
    User,
    Visibility,
)

__all__ = [
    "ACCESS_LEVELS",
    "INSTANCE_SETTINGS",
    "add_member",
    "create_group",
    "create_project",
    "duo_cascade",
    "get_group",
    "get_project",
    "get_user",
    "remove_member",
    "set_setting",
]

logger = logging.getLogger(__name__)

ACCESS_LEVELS = {level.name.lower(): level for level in AccessLevel}
INSTANCE_SETTINGS = ("duo_features_enabled", "lock_duo_features_enabled", "instance_level_ai_beta_features_enabled")
GROUP_SETTINGS = ("duo_features_enabled", "lock_duo_features_enabled", "experiment_features_enabled")
PROJECT_SETTINGS = ("duo_features_enabled",)
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}\Z")


async def get_user(session: AsyncSession, username: str) -> User:
    if "\x00" in username:
        raise InvalidInput("user", "a username holds no NUL character")
    user = await session.scalar(select(User).where(func.lower(User.username) == username.lower()))
    if user is None:
        raise InvalidInput("user", f"no user named {username!r}; create one with `switchboard users create {username}`")
    return user


async def get_group(session: AsyncSession, full_path: str) -> Group:
    _segments(full_path, "group")
    group = await session.scalar(select(Group).where(Group.full_path == full_path.strip("/")))
    if group is None:
        raise InvalidInput("group", f"no group {full_path!r}; create it with `switchboard groups create {full_path}`")
    return group


async def get_project(session: AsyncSession, full_path: str) -> Project:
    _segments(full_path, "project")
    group_path, _, path = full_path.strip("/").rpartition("/")
    query = (
        select(Project).join(Group, Group.id == Project.group_id).options(joinedload(Project.group))
        .where(Group.full_path == group_path, Project.path == path)
    )
    project = await session.scalar(query)
    if project is None:
        raise InvalidInput(
            "project", f"no project {full_path!r}; create it with `switchboard projects create {full_path}`"
        )
    return project


def _segments(full_path: str, what: str) -> list[str]:
    parts = full_path.strip("/").split("/")
    bad = [part for part in parts if not _SEGMENT.match(part)]
    if bad or not parts:
        raise InvalidInput(what, f"{full_path!r}: each part of a path is letters, digits, '_', '.' or '-'")
    return parts


async def create_group(
    session: AsyncSession, full_path: str, *, name: str | None = None, visibility: str = Visibility.PRIVATE
) -> Group:
    """A new group; a subgroup's parent must exist."""
    parts = _segments(full_path, "group")
    full_path = "/".join(parts)
    _visibility(visibility)
    if await session.scalar(select(Group.id).where(Group.full_path == full_path)) is not None:
        raise InvalidInput("group", f"{full_path!r} exists already")
    parent = await get_group(session, "/".join(parts[:-1])) if len(parts) > 1 else None
    group = Group(
        name=name or parts[-1], path=parts[-1], full_path=full_path, visibility=visibility,
        parent_id=parent.id if parent else None,
    )
    session.add(group)
    await session.flush()
    logger.info("created group %s (id %s)", full_path, group.id)
    return group


async def create_project(
    session: AsyncSession, full_path: str, *, name: str | None = None, visibility: str = Visibility.PRIVATE
) -> Project:
    """A new project in an existing group (`group/sub/project`)."""
    parts = _segments(full_path, "project")
    if len(parts) < 2:
        raise InvalidInput("project", f"{full_path!r}: a project lives in a group: give GROUP/PROJECT")
    _visibility(visibility)
    group = await get_group(session, "/".join(parts[:-1]))
    exists = select(Project.id).where(Project.group_id == group.id, Project.path == parts[-1])
    if await session.scalar(exists) is not None:
        raise InvalidInput("project", f"{'/'.join(parts)!r} exists already")
    project = Project(group_id=group.id, name=name or parts[-1], path=parts[-1], visibility=visibility)
    session.add(project)
    await session.flush()
    await session.refresh(project, ["group"])
    logger.info("created project %s (id %s)", "/".join(parts), project.id)
    return project


def _visibility(value: str) -> None:
    if value not in set(Visibility):
        raise InvalidInput("visibility", f"{value!r}: one of {', '.join(v.value for v in Visibility)}")


def _source(target: Group | Project) -> tuple[str, int]:
    return ("Group" if isinstance(target, Group) else "Project", target.id)


async def add_member(session: AsyncSession, user: User, target: Group | Project, level: str) -> Member:
    """Make `user` a member of `target` at `level` (or change their level there)."""
    if level not in ACCESS_LEVELS:
        raise InvalidInput("access_level", f"{level!r}: one of {', '.join(ACCESS_LEVELS)}")
    kind, source_id = _source(target)
    member = await session.scalar(
        select(Member).where(Member.user_id == user.id, Member.source_type == kind, Member.source_id == source_id)
    )
    if member is None:
        member = Member(user_id=user.id, source_type=kind, source_id=source_id, access_level=ACCESS_LEVELS[level])
        session.add(member)
    else:
        member.access_level = ACCESS_LEVELS[level]
    await session.flush()
    return member


async def remove_member(session: AsyncSession, user: User, target: Group | Project) -> None:
    kind, source_id = _source(target)
    member = await session.scalar(
        select(Member).where(Member.user_id == user.id, Member.source_type == kind, Member.source_id == source_id)
    )
    if member is None:
        raise InvalidInput("user", f"{user.username} is not a direct member there")
    await session.delete(member)
    await session.flush()


async def duo_cascade(session: AsyncSession, target: Group | Project | None, *, above_only: bool = False) -> Cascade:
    """The effective `duo_features_enabled` at `target` (the instance when None); with `above_only`, what
    it would inherit if it set nothing itself."""
    instance = await load_instance(session)
    if target is None:
        return cascade(instance, ())
    group = await target.awaitable_attrs.group if isinstance(target, Project) else target
    chain = await load_chain(session, group)
    if isinstance(target, Project):
        return cascade(instance, chain, None if above_only else (target.full_path, target.duo_features_enabled))
    return cascade(instance, chain[:-1] if above_only else chain)


async def set_setting(session: AsyncSession, target: Group | Project | None, name: str, value: str) -> None:
    """Set one Duo setting of the instance (None), a group or a project. `duo_features_enabled` of a group
    or project also takes `inherit`."""
    allowed = INSTANCE_SETTINGS if target is None else GROUP_SETTINGS if isinstance(target, Group) else PROJECT_SETTINGS
    where = "the instance" if target is None else f"a {type(target).__name__.lower()}"
    if name not in allowed:
        raise InvalidInput("setting", f"{name!r} is not a setting of {where}; one of {', '.join(allowed)}")
    parsed = _boolean(value, inherit=target is not None and name == "duo_features_enabled")
    if name == "experiment_features_enabled" and isinstance(target, Group) and target.parent_id is not None:
        top = target.full_path.split("/")[0]
        raise InvalidInput("setting", f"experiment_features_enabled is set on top-level groups: use --group {top}")
    if name == "duo_features_enabled" and target is not None:
        above = await duo_cascade(session, target, above_only=True)
        if above.locked_by is not None:
            fix = ("switchboard settings set lock_duo_features_enabled false"
                   + ("" if above.locked_by == "instance" else f" --group {above.locked_by}"))
            raise InvalidInput("setting", f"duo_features_enabled is locked by {above.locked_by}; unlock it there first: {fix}")
    row = target if target is not None else await _instance_row(session)
    setattr(row, name, parsed)
    await session.flush()
    logger.info("set %s = %s on %s", name, value, getattr(target, "full_path", "the instance"))


async def _instance_row(session: AsyncSession) -> InstanceSettings:
    row = await session.get(InstanceSettings, 1)
    if row is None:
        row = InstanceSettings(id=1)
        session.add(row)
    return row


def _boolean(value: str, *, inherit: bool) -> bool | None:
    text = value.strip().lower()
    if text in ("true", "on", "yes", "1"):
        return True
    if text in ("false", "off", "no", "0"):
        return False
    if inherit and text in ("inherit", "null", "none"):
        return None
    choices = "true, false" + (" or inherit" if inherit else "")
    raise InvalidInput("value", f"{value!r}: give {choices}")
