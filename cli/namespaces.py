"""`switchboard groups`, `projects`, `members` and `settings`: the namespaces an operator manages.

Each command runs in one transaction and prints what it did; a problem is an `InvalidInput` whose message
says what is wrong and how to fix it (exit status 1).
"""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from access.admin import namespaces
from cli.commands import command, subcommands, target_options
from core.errors import InvalidInput
from core.tables import Group, InstanceSettings, Member, Project, User

__all__ = ["register"]


async def _target(session: AsyncSession, args: argparse.Namespace) -> Group | Project | None:
    if getattr(args, "group", None) and getattr(args, "project", None):
        raise InvalidInput(None, "give --group or --project, not both")
    if getattr(args, "group", None):
        return await namespaces.get_group(session, args.group)
    if getattr(args, "project", None):
        return await namespaces.get_project(session, args.project)
    return None


async def _required_target(session: AsyncSession, args: argparse.Namespace) -> Group | Project:
    target = await _target(session, args)
    if target is None:
        raise InvalidInput(None, "give --group PATH or --project PATH")
    return target


# groups and projects


async def _groups_create(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    group = await namespaces.create_group(session, args.path, name=args.name, visibility=args.visibility)
    return [f"gid://gitlab/Group/{group.id}"]


async def _groups_list(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    groups = await session.scalars(select(Group).order_by(Group.full_path))
    return [f"{g.full_path:<32} gid://gitlab/Group/{g.id:<6} {g.visibility}" for g in groups]


async def _projects_create(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    project = await namespaces.create_project(session, args.path, name=args.name, visibility=args.visibility)
    return [f"gid://gitlab/Project/{project.id}"]


async def _projects_list(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    rows = await session.execute(select(Project, Group.full_path).join(Group).order_by(Group.full_path, Project.path))
    return [f"{path}/{p.path:<24} gid://gitlab/Project/{p.id:<6} {p.visibility}" for p, path in rows.all()]


# members


async def _members_add(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    target = await _required_target(session, args)
    user = await namespaces.get_user(session, args.user)
    await namespaces.add_member(session, user, target, args.access_level)
    return [f"{user.username} is {args.access_level} of {target.full_path}"]


async def _members_remove(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    target = await _required_target(session, args)
    user = await namespaces.get_user(session, args.user)
    await namespaces.remove_member(session, user, target)
    return [f"{user.username} is no longer a direct member of {target.full_path}"]


async def _members_list(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    target = await _required_target(session, args)
    kind = "Group" if isinstance(target, Group) else "Project"
    query = select(User.username, Member.access_level).join(Member, Member.user_id == User.id)
    rows = await session.execute(query.where(Member.source_type == kind, Member.source_id == target.id).order_by(User.username))
    levels: dict[int, str] = {int(level): name for name, level in namespaces.ACCESS_LEVELS.items()}
    return [f"{username:<24} {levels[level]}" for username, level in rows.all()]


# settings


async def _settings_show(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    target = await _target(session, args)
    duo = await namespaces.duo_cascade(session, target)
    here = getattr(target, "full_path", "instance")
    origin = "set here" if duo.source == here else f"inherited from {duo.source}"
    lock = f", locked by {duo.locked_by}" if duo.locked_by not in (None, here) else ""
    lines = [f"duo_features_enabled: {str(duo.enabled).lower()} ({origin}{lock})"]
    if target is None:
        row = await session.get(InstanceSettings, 1) or InstanceSettings(
            lock_duo_features_enabled=False, instance_level_ai_beta_features_enabled=False
        )
        names: tuple[str, ...] = namespaces.INSTANCE_SETTINGS[1:]
        return lines + [f"{name}: {str(bool(getattr(row, name))).lower()}" for name in names]
    if isinstance(target, Group):
        top = await namespaces.get_group(session, target.full_path.split("/")[0])
        lines.append(f"lock_duo_features_enabled: {str(target.lock_duo_features_enabled).lower()}")
        suffix = "" if top.id == target.id else f" (top-level group {top.full_path})"
        lines.append(f"experiment_features_enabled: {str(top.experiment_features_enabled).lower()}{suffix}")
    return lines


async def _settings_set(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    target = await _target(session, args)
    await namespaces.set_setting(session, target, args.name, args.value)
    return [f"{args.name} = {args.value.lower()} on {getattr(target, 'full_path', 'the instance')}"]


# duo setup, users, tokens


def register(commands: Any) -> None:
    """Add groups, projects, members and settings to `switchboard`."""
    groups = subcommands(commands, "groups", "groups and subgroups")
    create = groups.add_parser("create", help="create a group (a subgroup's parent must exist); prints its global ID")
    _creation_options(create)
    command(create, _groups_create)
    command(groups.add_parser("list", help="every group"), _groups_list)

    projects = subcommands(commands, "projects", "projects")
    create = projects.add_parser("create", help="create a project in a group (GROUP/PROJECT); prints its global ID")
    _creation_options(create)
    command(create, _projects_create)
    command(projects.add_parser("list", help="every project"), _projects_list)

    members = subcommands(commands, "members", "memberships of groups and projects (inherited down the tree)")
    add = members.add_parser("add", help="make a user a member, or change their access level")
    add.add_argument("user")
    add.add_argument("--access-level", default="developer", choices=list(namespaces.ACCESS_LEVELS))
    target_options(add)
    command(add, _members_add)
    remove = members.add_parser("remove", help="remove a user's direct membership")
    remove.add_argument("user")
    target_options(remove)
    command(remove, _members_remove)
    listing = members.add_parser("list", help="the direct members of a group or project")
    target_options(listing)
    command(listing, _members_list)

    settings = subcommands(commands, "settings", "Duo settings of the instance, a group or a project")
    show = settings.add_parser("show", help="the effective settings (the instance without --group/--project)")
    target_options(show)
    command(show, _settings_show)
    change = settings.add_parser(
        "set", help="set a setting: instance: " + ", ".join(namespaces.INSTANCE_SETTINGS)
        + "; group: duo_features_enabled (or inherit), lock_duo_features_enabled, experiment_features_enabled "
        "(top-level); project: duo_features_enabled (or inherit)",
    )
    change.add_argument("name")
    change.add_argument("value", help="true, false, or inherit")
    target_options(change)
    command(change, _settings_set)


def _creation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="full path, e.g. gitlab-duo/child")
    parser.add_argument("--name", help="display name (default: the last part of the path)")
    parser.add_argument("--visibility", default="private", choices=["private", "internal", "public"])
