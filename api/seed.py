"""Deterministic demo data (SPEC §11): users, the `gitlab-duo` group tree, a project, issues and notes.

On an empty database the rows get the same IDs every time, on SQLite and PostgreSQL alike: they are
inserted one by one in a fixed order and take the first values of each table's sequence. On a seeded
database nothing new is created and IDs are kept; only fresh tokens are issued (earlier ones stay valid).
Like `api.accounts`, `seed` flushes but does not commit: the caller owns the transaction.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts import DEFAULT_SCOPES, create_token
from core.ids import GlobalID
from core.tables import AccessLevel, Base, Group, Issue, Member, Note, Project, User, Visibility

__all__ = ["seed"]

logger = logging.getLogger(__name__)

_Row = TypeVar("_Row", bound=Base)

_USERS = (
    ("root", "Administrator", True),
    ("alice", "Alice Liddell", False),
    ("bob", "Bob Ross", False),
    ("carol", "Carol Danvers", False),
    ("mallory", "Mallory Martin", False),
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
    users = await _users(session)
    private = Visibility.PRIVATE
    top = await _ensure(
        session, Group, full_path="gitlab-duo", name="GitLab Duo", path="gitlab-duo", visibility=private
    )
    child = await _ensure(
        session, Group, full_path="gitlab-duo/child", name="Child", path="child", parent_id=top.id, visibility=private
    )
    for username, level in _MEMBERS:
        await _ensure(
            session, Member, user_id=users[username].id, source_type="Group", source_id=top.id, access_level=level
        )
    project = await _ensure(session, Project, group_id=top.id, path="test", name="Test", visibility=private)
    issue, confidential = await _issues(session, project, users)
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


async def _users(session: AsyncSession) -> dict[str, User]:
    return {
        username: await _ensure(session, User, username=username, name=name, admin=admin)
        for username, name, admin in _USERS
    }


async def _issues(session: AsyncSession, project: Project, users: dict[str, User]) -> tuple[Issue, Issue]:
    title, description = _ISSUE
    issue = await _ensure(
        session, Issue, project_id=project.id, iid=1, title=title, description=description, author_id=users["bob"].id
    )
    for username, body in _NOTES:
        await _note(session, issue, users[username], body, system=False)
    username, body = _SYSTEM_NOTE
    await _note(session, issue, users[username], body, system=True)
    title, description = _CONFIDENTIAL_ISSUE
    confidential = await _ensure(
        session,
        Issue,
        project_id=project.id,
        iid=2,
        title=title,
        description=description,
        confidential=True,
        author_id=users["alice"].id,
    )
    return issue, confidential


async def _note(session: AsyncSession, issue: Issue, author: User, body: str, *, system: bool) -> Note:
    return await _ensure(
        session, Note, noteable_type="Issue", noteable_id=issue.id, author_id=author.id, body=body, system=system
    )


_KEYS: dict[type[Base], tuple[str, ...]] = {
    User: ("username",),
    Group: ("full_path",),
    Project: ("group_id", "path"),
    Member: ("user_id", "source_type", "source_id"),
    Issue: ("project_id", "iid"),
    Note: ("noteable_type", "noteable_id", "author_id", "body", "system"),
}


async def _ensure(session: AsyncSession, model: type[_Row], **values: Any) -> _Row:
    """The row of `model` whose natural key matches `values`, inserted (and flushed, to take the next ID)
    when missing. Existing rows are left as they are."""
    key = {name: values[name] for name in _KEYS[model]}
    row = await session.scalar(select(model).filter_by(**key))
    if row is None:
        row = model(**values)
        session.add(row)
        await session.flush()
    return row
