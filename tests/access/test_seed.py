from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from access.admin.accounts import create_user
from access.admin.seed import seed, seeded_resources
from access.admin.seed_discussions import ISSUES, MERGE_REQUESTS, note_times
from access.reading import find_resource, resource_notes
from access.tokens import authenticate
from catalogue.evals import SEED_RESOURCES
from core.db import create_engine, session_factory
from core.ids import GlobalID
from core.tables import (
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
    PersonalAccessToken,
    Project,
    User,
    Vulnerability,
)

USERS = ["root", "alice", "bob", "carol", "mallory"]
EVAL_ISSUES = [
    "issue_stack_trace", "issue_feature_debate", "issue_performance_regression", "issue_flaky_test",
    "issue_security_question", "issue_dependency_upgrade", "issue_docs_self_hosted", "issue_memory_leak",
    "issue_ux_feedback", "issue_migration_failure", "issue_without_comments",
]
EVAL_MERGE_REQUESTS = ["mr_memory_leak_fix", "mr_request_metrics", "mr_partial_indexes", "mr_chat_copy_button"]


def _without_tokens(data: dict[str, Any]) -> dict[str, Any]:
    users = {name: {k: v for k, v in user.items() if k != "token"} for name, user in data["users"].items()}
    return {**data, "users": users}


async def _counts(session: AsyncSession) -> dict[str, int]:
    models: list[type[Base]] = [
        User, PersonalAccessToken, Group, Project, Member, Issue, Note, MergeRequest, Epic, Vulnerability,
        InstanceSettings, AddOnPurchase, AddOnAssignment,
    ]
    return {model.__tablename__: await session.scalar(select(func.count()).select_from(model)) for model in models}


async def test_seed_returns_the_documented_json(session: AsyncSession) -> None:
    data = await seed(session)
    assert list(data) == ["users", "groups", "projects", "resources"]
    assert list(data["users"]) == USERS
    for number, name in enumerate(USERS, start=1):
        user = data["users"][name]
        assert set(user) == {"id", "gid", "token"}
        assert user["id"] == number and user["gid"] == f"gid://gitlab/User/{number}"
        assert user["token"].startswith("glpat-")
    assert data["groups"] == {"gitlab-duo": "gid://gitlab/Group/1", "gitlab-duo/child": "gid://gitlab/Group/2"}
    assert data["projects"] == {"gitlab-duo/test": "gid://gitlab/Project/1"}
    assert data["resources"] == {
        "issue": "gid://gitlab/Issue/1",
        "confidential_issue": "gid://gitlab/Issue/2",
        "merge_request": "gid://gitlab/MergeRequest/1",
        "epic": "gid://gitlab/Epic/1",
        "vulnerability": "gid://gitlab/Vulnerability/1",
        "project": "gid://gitlab/Project/1",
        **{key: f"gid://gitlab/Issue/{number}" for number, key in enumerate(EVAL_ISSUES, start=3)},
        **{key: f"gid://gitlab/MergeRequest/{number}" for number, key in enumerate(EVAL_MERGE_REQUESTS, start=2)},
    }


async def test_seed_creates_the_demo_world(session: AsyncSession) -> None:
    await seed(session)
    assert await _counts(session) == {
        "users": 5,
        "personal_access_tokens": 5,
        "groups": 2,
        "projects": 1,
        "members": 3,
        "issues": 13,
        "notes": 58,
        "merge_requests": 5,
        "epics": 1,
        "vulnerabilities": 1,
        "instance_settings": 1,
        "add_on_purchases": 2,
        "add_on_assignments": 2,
    }
    root = await session.scalar(select(User).where(User.username == "root"))
    assert root is not None and root.admin
    levels = dict((await session.execute(select(User.username, Member.access_level).join(Member))).all())
    assert levels == {"alice": 50, "bob": 30, "carol": 30}
    confidential = await session.get(Issue, 2)
    assert confidential is not None and confidential.confidential and confidential.author_id == 2


async def test_seeding_twice_keeps_ids_and_creates_only_tokens(session: AsyncSession) -> None:
    first = await seed(session)
    await session.commit()
    before = await _counts(session)
    second = await seed(session)
    await session.commit()
    after = await _counts(session)
    assert _without_tokens(second) == _without_tokens(first)
    assert after == {**before, "personal_access_tokens": before["personal_access_tokens"] + len(USERS)}
    assert all(first["users"][name]["token"] != second["users"][name]["token"] for name in USERS)


async def test_every_seed_token_authenticates_as_its_user(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            first = await seed(session)
            await session.commit()
            second = await seed(session)
            await session.commit()
        async with session_factory(engine)() as session:
            for data in (first, second):
                for name, user in data["users"].items():
                    principal = await authenticate(session, user["token"])
                    assert principal is not None and (principal.username, principal.gid) == (name, user["gid"])
                    assert principal.scopes == {"api", "ai_features"}
                    assert principal.admin is (name == "root")
    finally:
        await engine.dispose()


async def test_seed_ids_do_not_depend_on_sequences(session: AsyncSession) -> None:
    await create_user(session, "transient")
    await session.execute(delete(User))  # on PostgreSQL the users sequence has moved on
    data = await seed(session)
    assert [user["id"] for user in data["users"].values()] == [1, 2, 3, 4, 5]
    assert (await create_user(session, "dora")).id == 6
    issue = Issue(project_id=1, iid=14, title="after the seed", author_id=6)
    session.add(issue)
    await session.flush()
    assert issue.id == 14


async def test_seed_works_around_rows_that_hold_its_ids(session: AsyncSession) -> None:
    await create_user(session, "dora")
    data = await seed(session)
    ids = [user["id"] for user in data["users"].values()]
    assert 1 not in ids and len(set(ids)) == 5
    assert data["resources"]["issue"] == "gid://gitlab/Issue/1"
    assert (await _counts(session))["users"] == 6


async def _seats(session: AsyncSession) -> set[tuple[str, str, int | None]]:
    query = (
        select(User.username, AddOnPurchase.add_on, AddOnPurchase.namespace_id)
        .join(AddOnAssignment, AddOnAssignment.user_id == User.id)
        .join(AddOnPurchase, AddOnPurchase.id == AddOnAssignment.purchase_id)
    )
    return set((await session.execute(query)).all())


async def test_self_managed_seed_buys_for_the_instance_and_turns_experiments_on(session: AsyncSession) -> None:
    await seed(session)
    assert await _seats(session) == {("alice", "duo_enterprise", None), ("bob", "duo_pro", None)}
    settings = await session.get(InstanceSettings, 1)
    assert settings is not None and settings.duo_features_enabled and settings.instance_level_ai_beta_features_enabled
    group = await session.get(Group, 1)
    assert group is not None and group.duo_features_enabled and group.experiment_features_enabled


async def test_saas_seed_buys_for_the_top_level_group_and_adds_to_a_self_managed_seed(session: AsyncSession) -> None:
    await seed(session, mode="saas")
    assert await _seats(session) == {("alice", "duo_enterprise", 1), ("bob", "duo_pro", 1)}
    await seed(session)
    await seed(session, mode="saas")
    assert len(await _seats(session)) == 4
    purchases = (await session.execute(select(AddOnPurchase.id, AddOnPurchase.namespace_id))).all()
    assert sorted(purchases, key=lambda row: row[0]) == [(1, 1), (2, 1), (3, None), (4, None)]


async def test_seeded_resources_have_what_features_read(session: AsyncSession) -> None:
    await seed(session)
    merge_request = await session.get(MergeRequest, 1)
    assert merge_request is not None and merge_request.diff.startswith("diff --git a/pyproject.toml")
    epic = await session.get(Epic, 1)
    vulnerability = await session.get(Vulnerability, 1)
    assert epic is not None and epic.group_id == 1
    assert vulnerability is not None and vulnerability.severity == "high" and vulnerability.code


async def _rows(session: AsyncSession) -> dict[str, list[tuple[Any, ...]]]:
    """What the discussions consist of, IDs included, in ID order."""
    notes = select(Note.id, Note.noteable_type, Note.noteable_id, Note.author_id, Note.system, Note.body, Note.created_at)
    return {
        "issues": list((await session.execute(select(Issue.id, Issue.iid, Issue.title, Issue.created_at).order_by(Issue.id))).all()),
        "merge_requests": list((await session.execute(select(MergeRequest.id, MergeRequest.iid, MergeRequest.diff).order_by(MergeRequest.id))).all()),
        "notes": list((await session.execute(notes.order_by(Note.id))).all()),
    }


async def test_the_discussions_get_the_same_ids_and_times_on_every_database(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            first = await seed(session)
            await session.commit()
            rows = await _rows(session)
            await seed(session)
            await session.commit()
            assert await _rows(session) == rows  # idempotent
    finally:
        await engine.dispose()
    assert [row[0] for row in rows["issues"]] == list(range(1, 14)) == [row[1] for row in rows["issues"]]
    assert [row[0] for row in rows["merge_requests"]] == list(range(1, 6))
    assert [row[0] for row in rows["notes"]] == list(range(1, 59))
    by_key = {name: GlobalID.parse(gid, argument="x") for name, gid in first["resources"].items()}
    for entry in ISSUES + MERGE_REQUESTS:
        assert by_key[entry.key].id == entry.id
        notes = [row for row in rows["notes"] if (row[1], row[2]) == (by_key[entry.key].type, entry.id)]
        assert [row[5] for row in notes] == [body for _, body in entry.notes]
        assert [row[6] for row in notes] == note_times(entry)
    fixed = {row[0]: row[3] for row in rows["issues"]}
    assert fixed[3] == ISSUES[0].opened and all(row[2].startswith("diff --git") for row in rows["merge_requests"])


async def test_each_discussion_reads_as_a_discussion(session: AsyncSession) -> None:
    data = await seed(session)
    for entry in ISSUES + MERGE_REQUESTS:
        resource = await find_resource(session, GlobalID.parse(data["resources"][entry.key], argument="x"))
        human = await resource_notes(session, resource)
        assert len(human) in ({0} if entry.key == "issue_without_comments" else set(range(2, 7))), entry.key
        assert [note.created_at for note in human] == sorted(note.created_at for note in human)
        assert all(note.author.username != "mallory" for note in human)  # only members talk in a private project
    flaky = await find_resource(session, GlobalID.parse(data["resources"]["issue_flaky_test"], argument="x"))
    assert 'added ~"flaky-test" label' not in [note.body for note in await resource_notes(session, flaky)]


async def test_the_seed_document_has_exactly_the_resources_datasets_may_name(session: AsyncSession) -> None:
    data = await seed(session)
    assert {name: GlobalID.parse(gid, argument="x").type for name, gid in data["resources"].items()} == dict(SEED_RESOURCES)


async def test_seeded_resources_finds_the_documents_resources_without_creating_anything(session: AsyncSession) -> None:
    assert await seeded_resources(session) == {}
    data = await seed(session)
    await session.commit()
    before = await _counts(session)
    found = await seeded_resources(session)
    assert found == data["resources"] and list(found) == list(data["resources"])
    assert await _counts(session) == before
    await session.execute(delete(Note))
    await session.execute(delete(MergeRequest).where(MergeRequest.iid == 3))
    assert "mr_request_metrics" not in await seeded_resources(session)
