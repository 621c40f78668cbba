"""Changing feature flags with the semantics of GitLab's Features API, for the REST API and the CLI alike:
`true`/`false` with actors (un)gates those actors, without them turns the flag on/off for everyone, and a
number sets the percentage of actors (`0` means `false`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from access import flags
from access.flags import FlagState, actor_id
from catalogue.flags import FLAGS
from core.tables import Group, Project, User

__all__ = ["BadFlagChange", "apply_change", "feature_json"]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,254}$")
_TARGETS = (("user", "User"), ("group", "Group"), ("namespace", "Group"), ("project", "Project"))
_UNSUPPORTED = ("feature_group", "repository")


class BadFlagChange(ValueError):
    """A flag change that cannot be made; the message says why."""


def feature_json(name: str, state: FlagState | None) -> dict[str, object]:
    """A flag as GitLab's API shows it."""
    definition = FLAGS.get(name)
    current = state or FlagState(name, boolean=definition is not None and definition.default_enabled)
    return {
        "name": name,
        "state": current.state,
        "gates": current.gates(),
        "definition": definition.model_dump() if definition else None,
    }


async def apply_change(
    session: AsyncSession, name: str, value: str, *, key: str | None = None, targets: Mapping[str, str] | None = None
) -> FlagState | None:
    """Make one change with GitLab's semantics (see the module docstring); returns the flag's new state.
    Raises BadFlagChange. Flushes; the caller commits."""
    if not _NAME.match(name):
        raise BadFlagChange(f"invalid feature name {name!r}: lowercase letters, digits and '_'")
    actors = await _actors(session, targets or {})
    gate = _gate_value(value)
    if key not in (None, "", "percentage_of_actors"):
        raise BadFlagChange(f"key {key!r} is not supported; use percentage_of_actors")
    if isinstance(gate, bool):
        if actors:
            await (flags.add_actors if gate else flags.remove_actors)(session, name, actors)
        else:
            await (flags.enable if gate else flags.disable)(session, name)
    else:
        if actors:
            raise BadFlagChange("a percentage applies to all actors; give no user, group or project with it")
        if key != "percentage_of_actors":
            raise BadFlagChange("percentage_of_time is not supported; pass key=percentage_of_actors")
        await flags.set_percentage(session, name, gate)
    logger.info("feature flag %s set to %s (key %s, actors %s)", name, value, key, actors)
    return await flags.load_state(session, name)


def _gate_value(value: str) -> bool | float:
    text = str(value).strip().lower()
    if text == "true":
        return True
    if text in ("false", "0"):
        return False
    try:
        number = float(text)
    except ValueError:
        raise BadFlagChange(f"value must be true, false or a percentage, not {value!r}") from None
    if not 0 <= number <= 100:
        raise BadFlagChange(f"percentage must be between 0 and 100, not {value!r}")
    return number


async def _actors(session: AsyncSession, targets: Mapping[str, str]) -> list[str]:
    for name in _UNSUPPORTED:
        if targets.get(name):
            raise BadFlagChange(f"{name} gates are not supported; use user, group or project")
    found: list[str] = []
    for param, kind in _TARGETS:
        for ref in (part.strip() for part in str(targets.get(param) or "").split(",")):
            if ref:
                found.append(actor_id(kind, await _target_id(session, kind, ref)))
    return found


async def _target_id(session: AsyncSession, kind: str, ref: str) -> int:
    if "\x00" in ref or len(ref) > 1024:  # never sent to the database (PostgreSQL refuses NUL in text)
        raise BadFlagChange(f"{kind} {ref[:64]!r} not found")
    if kind == "User":
        found = await session.scalar(select(User.id).where(func.lower(User.username) == ref.lower()))
    elif kind == "Group":
        found = await session.scalar(select(Group.id).where(Group.full_path == ref))
    else:
        group_path, _, path = ref.rpartition("/")
        query = select(Project.id).join(Group, Group.id == Project.group_id)
        found = await session.scalar(query.where(Group.full_path == group_path, Project.path == path))
    if found is None:
        raise BadFlagChange(f"{kind} {ref!r} not found")
    return found
