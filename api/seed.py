"""Deterministic demo data (SPEC §11): users, the `gitlab-duo` group tree, a project, issues and notes.

Rows are found by their natural keys (username, full path, ...); a missing one is inserted with its fixed
ID (the next free one if that is taken), so an empty database gets the same IDs every time, on SQLite and
PostgreSQL alike, whatever its sequences went through; PostgreSQL's sequences are then moved past them.
On a seeded database nothing new is created and IDs are kept; only fresh tokens are issued (earlier ones
stay valid). Like `api.accounts`, `seed` flushes but does not commit: the caller owns the transaction.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts import DEFAULT_SCOPES, create_token
from core.ids import GlobalID
from core.tables import AccessLevel, Base, Group, Issue, Member, Note, Project, User, Visibility

__all__ = ["seed"]

logger = logging.getLogger(__name__)

_Row = TypeVar("_Row", bound=Base)

_USERS = (  # id, username, name, admin
    (1, "root", "Administrator", True),
    (2, "alice", "Alice Liddell", False),
    (3, "bob", "Bob Ross", False),
    (4, "carol", "Carol Danvers", False),
    (5, "mallory", "Mallory Martin", False),
)
_MEMBERS = (("alice", AccessLevel.OWNER), ("bob", AccessLevel.DEVELOPER), ("carol", AccessLevel.DEVELOPER))

_ISSUE = (
    "Broken pipeline on main",
    "Since this morning the `test` job on `main` fails with `ModuleNotFoundError: No module named 'redis'`.\n\n"
    "It started with the base image bump. To reproduce, push any commit to `main` and watch the `test` job.",
)
_NOTES = (
    ("alice", "I can reproduce it locally with the new base image: `pip install -e .` no longer pulls in redis."),
    ("bob", "The image dropped its system redis package. Let's declare `redis>=5.2` in pyproject.toml instead."),
    ("carol", "Pinned it on my branch and the pipeline is green again; opening a merge request."),
)
_SYSTEM_NOTE = ("alice", 'added ~"bug" label')
_CONFIDENTIAL_ISSUE = (
    "Deploy token exposed in job logs",
    "The `deploy` job prints `CI_DEPLOY_PASSWORD` when `DEBUG=1` is set. Rotate the token and mask the variable.",
)


async def seed(session: AsyncSession) -> dict[str, Any]:
    """Create what is missing of the demo data, issue fresh tokens, and return SPEC §11's document."""
    users = {
        username: await _ensure(session, User, id=number, username=username, name=name, admin=admin)
        for number, username, name, admin in _USERS
    }
    private = Visibility.PRIVATE
    top = await _ensure(
        session, Group, id=1, full_path="gitlab-duo", name="GitLab Duo", path="gitlab-duo", visibility=private
    )
    child = await _ensure(
        session,
        Group,
        id=2,
        full_path="gitlab-duo/child",
        name="Child",
        path="child",
        parent_id=top.id,
        visibility=private,
    )
    for number, (username, level) in enumerate(_MEMBERS, start=1):
        member = {"user_id": users[username].id, "source_type": "Group", "source_id": top.id}
        await _ensure(session, Member, id=number, access_level=level, **member)
    project = await _ensure(session, Project, id=1, group_id=top.id, path="test", name="Test", visibility=private)
    issue, confidential = await _issues(session, project, users)
    await _advance_sequences(session)
    tokens = {name: await create_token(session, name, scopes=DEFAULT_SCOPES, name="seed") for name in users}
    logger.info("seeded demo data; issued %d tokens", len(tokens))
    return {
        "users": {
            name: {"id": user.id, "gid": str(GlobalID("User", user.id)), "token": tokens[name]}
            for name, user in users.items()
        },
        "groups": {group.full_path: str(GlobalID("Group", group.id)) for group in (top, child)},
        "projects": {f"{top.full_path}/{project.path}": str(GlobalID("Project", project.id))},
        "resources": {
            "issue": str(GlobalID("Issue", issue.id)),
            "confidential_issue": str(GlobalID("Issue", confidential.id)),
        },
    }


async def _issues(session: AsyncSession, project: Project, users: dict[str, User]) -> tuple[Issue, Issue]:
    title, description = _ISSUE
    issue = await _ensure(
        session,
        Issue,
        id=1,
        project_id=project.id,
        iid=1,
        title=title,
        description=description,
        author_id=users["bob"].id,
    )
    notes = [(username, body, False) for username, body in _NOTES] + [(*_SYSTEM_NOTE, True)]
    for number, (username, body, system) in enumerate(notes, start=1):
        noteable = {"noteable_type": "Issue", "noteable_id": issue.id}
        await _ensure(session, Note, id=number, author_id=users[username].id, body=body, system=system, **noteable)
    title, description = _CONFIDENTIAL_ISSUE
    confidential = await _ensure(
        session,
        Issue,
        id=2,
        project_id=project.id,
        iid=2,
        title=title,
        description=description,
        confidential=True,
        author_id=users["alice"].id,
    )
    return issue, confidential


_KEYS: dict[type[Base], tuple[str, ...]] = {
    User: ("username",),
    Group: ("full_path",),
    Member: ("user_id", "source_type", "source_id"),
    Project: ("group_id", "path"),
    Issue: ("project_id", "iid"),
    Note: ("noteable_type", "noteable_id", "author_id", "body", "system"),
}


async def _ensure(session: AsyncSession, model: type[_Row], *, id: int, **values: Any) -> _Row:
    """The row of `model` whose natural key matches `values`; when missing, inserted with `id` (or the
    sequence's next one if `id` is taken) and flushed. Existing rows are left as they are."""
    key = {name: values[name] for name in _KEYS[model]}
    row = await session.scalar(select(model).filter_by(**key))
    if row is None:
        if await session.get(model, id) is None:
            values["id"] = id
        row = model(**values)
        session.add(row)
        await session.flush()
    return row


async def _advance_sequences(session: AsyncSession) -> None:
    """Move PostgreSQL's ID sequences past the explicit IDs (SQLite takes max(id) + 1 by itself)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for model in _KEYS:
        table = model.__table__.name
        next_id = f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table})"
        await session.execute(
            text(f"SELECT setval(pg_get_serial_sequence(:table, 'id'), {next_id}, false)"), {"table": table}
        )
