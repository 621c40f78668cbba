"""Deterministic demo data (SPEC §11): users, the `gitlab-duo` group tree with Duo and experiments on, a
private project with an issue (three human notes and a system note), a confidential issue, a merge request
with its diff, an epic, a vulnerability, the discussions the evaluation datasets are about
(`access.admin.seed_discussions`: more issues and merge requests with comments), and Duo add-ons for the mode: on SaaS bought for `gitlab-duo`, on a
self-managed instance for the instance (which also turns beta and experimental features on). alice holds a
Duo Enterprise seat, bob a Duo Pro seat; carol holds none and mallory is no member.

Rows are found by their natural keys (username, full path, ...); a missing one is inserted with its fixed
ID (the next free one if that is taken), so an empty database gets the same IDs every time, on SQLite and
PostgreSQL alike, whatever its sequences went through; PostgreSQL's sequences are then moved past them.
On a seeded database nothing new is created and IDs are kept (settings left as an operator changed them);
only fresh tokens are issued (earlier ones stay valid), except those the caller hands back through `reuse`
while they are still valid (`switchboard run` keeps its demo tokens across runs). Seeding again in the other mode adds that mode's
purchases. Like `access.admin.accounts`, `seed` flushes but does not commit: the caller owns the transaction.
`seeded_resources` reads the document's `resources` back without creating anything (evaluation runs).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from access.admin.accounts import DEFAULT_SCOPES, create_token
from access.admin.seed_discussions import FIRST_NOTE_ID, ISSUES, MERGE_REQUESTS, Discussion, note_times
from access.entitlement import Mode
from access.tokens import hash_token, principals_by_digest
from core.ids import GlobalID
from core.tables import (
    AccessLevel,
    AddOnAssignment,
    AddOnPurchase,
    Base,
    Epic,
    Group,
    InstanceSettings,
    Issue,
    Member,
    MergeRequest,
    Note,
    Project,
    Severity,
    User,
    Visibility,
    Vulnerability,
)

__all__ = ["seed", "seeded_resources"]

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


_MERGE_REQUEST = (
    "Declare redis as a dependency",
    "The new base image no longer ships redis, which broke `test` on `main` (#1). Declare it in pyproject.toml.",
    "declare-redis",
    """diff --git a/pyproject.toml b/pyproject.toml
index 3b18e51..a9c4f2d 100644
--- a/pyproject.toml
+++ b/pyproject.toml
@@ -8,6 +8,7 @@ requires-python = ">=3.11"
 dependencies = [
     "arq>=0.26",
+    "redis>=5.2",
     "starlette>=0.40",
 ]
""",
)
_MR_NOTES = (
    ("alice", "Thanks! Could you also pin the lower bound of hiredis while you're at it?"),
    ("carol", "Done in the second commit; the pipeline is green."),
)
_EPIC = (
    "Reliable CI on main",
    "Keep `main` green: declare every runtime dependency, and alert when the base image changes.",
)
_EPIC_NOTES = (("bob", "The base image bump in #1 is the first item; a Renovate rule would catch the next one."),)
_VULNERABILITY = {
    "title": "SQL injection in the search endpoint",
    "description": "User input reaches a raw SQL query without escaping, so a crafted `q` can read any table.",
    "severity": Severity.HIGH,
    "report_type": "sast",
    "file": "app/search.py",
    "start_line": 14,
    "code": 'cursor.execute(f"SELECT * FROM issues WHERE title LIKE \'%{q}%\'")',
}
_SEATS = (("alice", "duo_enterprise"), ("bob", "duo_pro"))
_SEAT_COUNT = 10


async def seed(session: AsyncSession, *, mode: Mode = "self_managed", reuse: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Create what is missing of the demo data, issue fresh tokens, and return SPEC §11's document.

    `reuse` maps usernames to tokens issued earlier: each one that is still valid (not revoked, not expired,
    that user's, with the demo scopes) is handed out again instead of a new one."""
    users = {
        username: await _ensure(session, User, id=number, username=username, name=name, admin=admin)
        for number, username, name, admin in _USERS
    }
    private = Visibility.PRIVATE
    top = await _ensure(
        session,
        Group,
        id=1,
        full_path="gitlab-duo",
        name="GitLab Duo",
        path="gitlab-duo",
        visibility=private,
        duo_features_enabled=True,
        experiment_features_enabled=True,
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
    merge_request, epic, vulnerability = await _other_resources(session, top, project, users)
    discussions = await _discussions(session, project, users)
    await _duo(session, mode, top, users)
    await _advance_sequences(session)
    tokens = await _still_valid(session, {name: t for name, t in (reuse or {}).items() if name in users})
    issued = [name for name in users if name not in tokens]
    tokens |= {name: await create_token(session, name, scopes=DEFAULT_SCOPES, name="seed") for name in issued}
    logger.info("seeded demo data (%s); issued %d tokens, reused %d", mode, len(issued), len(users) - len(issued))
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
            "merge_request": str(GlobalID("MergeRequest", merge_request.id)),
            "epic": str(GlobalID("Epic", epic.id)),
            "vulnerability": str(GlobalID("Vulnerability", vulnerability.id)),
            "project": str(GlobalID("Project", project.id)),
            **discussions,
        },
    }


async def seeded_resources(session: AsyncSession) -> dict[str, str]:
    """The seed document's `resources` as they are in the database (found by natural key; nothing is
    created, no token issued), for an evaluation run to resolve its items' resources; keys whose row is
    missing are left out."""
    project = await session.scalar(
        select(Project).join(Group, Group.id == Project.group_id).where(Group.full_path == "gitlab-duo", Project.path == "test")
    )
    top = await session.scalar(select(Group).where(Group.full_path == "gitlab-duo"))
    if project is None or top is None:
        return {}
    wanted: list[tuple[str, type[Base], dict[str, Any]]] = [
        ("issue", Issue, {"project_id": project.id, "iid": 1}),
        ("confidential_issue", Issue, {"project_id": project.id, "iid": 2}),
        ("merge_request", MergeRequest, {"project_id": project.id, "iid": 1}),
        ("epic", Epic, {"group_id": top.id, "iid": 1}),
        ("vulnerability", Vulnerability, {"project_id": project.id, "title": _VULNERABILITY["title"]}),
        ("project", Project, {"id": project.id}),
    ]
    wanted += [(entry.key, Issue, {"project_id": project.id, "iid": entry.id}) for entry in ISSUES]
    wanted += [(entry.key, MergeRequest, {"project_id": project.id, "iid": entry.id}) for entry in MERGE_REQUESTS]
    found = {}
    for key, model, where in wanted:  # in the seed document's order
        row_id = await session.scalar(select(model.id).filter_by(**where))  # type: ignore[attr-defined]
        if row_id is not None:
            found[key] = str(GlobalID(model.__name__, row_id))
    return found


async def _still_valid(session: AsyncSession, reuse: Mapping[str, str]) -> dict[str, str]:
    """The tokens of `reuse` that still open their user's account with the demo scopes."""
    principals = await principals_by_digest(session, [hash_token(token) for token in reuse.values()])
    kept = {}
    for name, token in reuse.items():
        principal = principals.get(hash_token(token))
        if principal is not None and principal.username == name and principal.scopes >= set(DEFAULT_SCOPES):
            kept[name] = token
    return kept


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
    await _notes(session, "Issue", issue.id, notes, users, first_id=1)
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


async def _other_resources(
    session: AsyncSession, group: Group, project: Project, users: dict[str, User]
) -> tuple[MergeRequest, Epic, Vulnerability]:
    title, description, branch, diff = _MERGE_REQUEST
    merge_request = await _ensure(
        session, MergeRequest, id=1, project_id=project.id, iid=1, title=title, description=description,
        source_branch=branch, target_branch="main", diff=diff, author_id=users["carol"].id,
    )
    await _notes(session, "MergeRequest", merge_request.id, [(*n, False) for n in _MR_NOTES], users, first_id=5)
    title, description = _EPIC
    epic = await _ensure(
        session, Epic, id=1, group_id=group.id, iid=1, title=title, description=description, author_id=users["alice"].id
    )
    await _notes(session, "Epic", epic.id, [(*n, False) for n in _EPIC_NOTES], users, first_id=7)
    vulnerability = await _ensure(session, Vulnerability, id=1, project_id=project.id, **_VULNERABILITY)
    return merge_request, epic, vulnerability


async def _discussions(session: AsyncSession, project: Project, users: dict[str, User]) -> dict[str, str]:
    """The issues and merge requests of `seed_discussions` with their notes; their `resources` entries."""
    resources: dict[str, str] = {}
    note_id = FIRST_NOTE_ID
    kinds: tuple[tuple[type[Issue] | type[MergeRequest], tuple[Discussion, ...]], ...] = (
        (Issue, ISSUES), (MergeRequest, MERGE_REQUESTS),
    )
    for model, entries in kinds:
        for entry in entries:
            values = {"project_id": project.id, "iid": entry.id, "title": entry.title, "description": entry.description,
                      "author_id": users[entry.author].id, "created_at": entry.opened}
            if model is MergeRequest:
                values |= {"source_branch": entry.branch, "target_branch": "main", "diff": entry.diff}
            row = await _ensure(session, model, id=entry.id, **values)
            for (author, body), written in zip(entry.notes, note_times(entry), strict=True):
                username = author.removeprefix("system:")
                await _ensure(session, Note, id=note_id, noteable_type=model.__name__, noteable_id=row.id,
                              author_id=users[username].id, body=body, system=author != username, created_at=written)
                note_id += 1
            resources[entry.key] = str(GlobalID(model.__name__, row.id))
    return resources


async def _notes(
    session: AsyncSession,
    noteable_type: str,
    noteable_id: int,
    notes: list[tuple[str, str, bool]],
    users: dict[str, User],
    *,
    first_id: int,
) -> None:
    for number, (username, body, system) in enumerate(notes, start=first_id):
        noteable = {"noteable_type": noteable_type, "noteable_id": noteable_id}
        await _ensure(session, Note, id=number, author_id=users[username].id, body=body, system=system, **noteable)


async def _duo(session: AsyncSession, mode: Mode, top: Group, users: dict[str, User]) -> None:
    """The instance settings, the add-on purchases of `mode` (SaaS: for `top`), and the seats."""
    if await session.get(InstanceSettings, 1) is None:
        session.add(InstanceSettings(id=1, instance_level_ai_beta_features_enabled=True))
        await session.flush()
    namespace_id = top.id if mode == "saas" else None
    first_id = 1 if mode == "saas" else 3
    purchases = {}
    for number, add_on in enumerate(("duo_pro", "duo_enterprise"), start=first_id):
        purchases[add_on] = await _ensure(
            session, AddOnPurchase, id=number, add_on=add_on, namespace_id=namespace_id, quantity=_SEAT_COUNT
        )
    for number, (username, add_on) in enumerate(_SEATS, start=first_id):
        await _ensure(session, AddOnAssignment, id=number, purchase_id=purchases[add_on].id, user_id=users[username].id)


_KEYS: dict[type[Base], tuple[str, ...]] = {
    User: ("username",),
    Group: ("full_path",),
    Member: ("user_id", "source_type", "source_id"),
    Project: ("group_id", "path"),
    Issue: ("project_id", "iid"),
    MergeRequest: ("project_id", "iid"),
    Epic: ("group_id", "iid"),
    Vulnerability: ("project_id", "title"),
    Note: ("noteable_type", "noteable_id", "author_id", "body", "system"),
    AddOnPurchase: ("add_on", "namespace_id"),
    AddOnAssignment: ("purchase_id", "user_id"),
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
        table = model.__tablename__
        next_id = f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table})"
        await session.execute(
            text(f"SELECT setval(pg_get_serial_sequence(:table, 'id'), {next_id}, false)"), {"table": table}
        )
