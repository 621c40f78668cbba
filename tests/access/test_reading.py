from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, event, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from access.admin.accounts import create_token, create_user
from access.admin.seed import seed
from access.reading import can_read, find_resource, readable_resource, resource_notes
from access.tokens import Principal, authenticate, get_principal, hash_token, new_token
from core.db import create_engine, session_factory
from core.errors import RESOURCE_NOT_AVAILABLE, AccessDenied
from core.ids import GlobalID
from core.tables import (
    AccessLevel,
    Group,
    Issue,
    Member,
    Note,
    PersonalAccessToken,
    Project,
    User,
    utcnow,
)

Seeded = dict[str, Any]


@pytest.fixture
async def seeded(session: AsyncSession) -> Seeded:
    data = await seed(session)
    await session.commit()
    return data


async def _principal(session: AsyncSession, seeded: Seeded, name: str) -> Principal:
    principal = await authenticate(session, seeded["users"][name]["token"])
    assert principal is not None
    return principal


async def _note_gid(session: AsyncSession) -> GlobalID:
    note_id = await session.scalar(select(Note.id).where(Note.system.is_(False)).order_by(Note.id).limit(1))
    return GlobalID("Note", note_id)


def test_tokens_look_like_gitlab_tokens_and_are_stored_as_sha256() -> None:
    token = new_token()
    assert token.startswith("glpat-") and len(token) >= 26
    assert token != new_token()
    assert len(hash_token(token)) == 64 and hash_token(token) == hash_token(token)


async def test_a_valid_token_authenticates_with_its_scopes(session: AsyncSession, seeded: Seeded) -> None:
    principal = await _principal(session, seeded, "alice")
    assert principal == Principal(2, "alice", False, frozenset({"api", "ai_features"}))
    assert principal.gid == "gid://gitlab/User/2"
    assert principal.has_scope("read_api", "ai_features") and not principal.has_scope("read_api")
    assert (await _principal(session, seeded, "root")).admin


@pytest.mark.parametrize("token", ["", "glpat-unknown", "not a token"])
async def test_an_unknown_token_does_not_authenticate(session: AsyncSession, seeded: Seeded, token: str) -> None:
    assert await authenticate(session, token) is None


async def test_a_revoked_token_does_not_authenticate(session: AsyncSession, seeded: Seeded) -> None:
    token = seeded["users"]["bob"]["token"]
    await session.execute(
        update(PersonalAccessToken).where(PersonalAccessToken.token_digest == hash_token(token)).values(revoked=True)
    )
    assert await authenticate(session, token) is None


async def test_an_expired_token_does_not_authenticate(session: AsyncSession, seeded: Seeded) -> None:
    token = await create_token(session, "bob", expires_in_days=1)
    assert await authenticate(session, token) is not None
    digest = PersonalAccessToken.token_digest == hash_token(token)
    await session.execute(
        update(PersonalAccessToken).where(digest).values(expires_at=utcnow() - timedelta(seconds=1))
    )
    assert await authenticate(session, token) is None


async def test_the_token_of_a_deleted_user_does_not_authenticate(session: AsyncSession, seeded: Seeded) -> None:
    await session.execute(delete(User).where(User.username == "mallory"))
    assert await authenticate(session, seeded["users"]["mallory"]["token"]) is None


async def test_authenticating_is_one_query_and_writes_nothing(database_url: str) -> None:
    engine = create_engine(database_url)
    statements: list[str] = []
    try:
        async with session_factory(engine)() as session:
            token = (await seed(session))["users"]["carol"]["token"]
            await session.commit()
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        async with session_factory(engine)() as session:
            assert await authenticate(session, token) is not None
            assert not session.new and not session.dirty
    finally:
        await engine.dispose()
    assert len(statements) == 1 and statements[0].lstrip().upper().startswith("SELECT")


async def test_get_principal_is_for_the_worker(session: AsyncSession, seeded: Seeded) -> None:
    assert await get_principal(session, 1) == Principal(1, "root", True, frozenset())
    assert await get_principal(session, 999) is None


MATRIX = {
    #                  root   alice  bob    carol  mallory
    "issue": (True, True, True, True, False),
    "confidential_issue": (True, True, True, True, False),
    "project": (True, True, True, True, False),
    "group": (True, True, True, True, False),
    "subgroup": (True, True, True, True, False),
    "note": (True, True, True, True, False),
}
NAMES = ("root", "alice", "bob", "carol", "mallory")


@pytest.mark.parametrize("resource", list(MATRIX))
async def test_readability_of_the_seeded_resources(session: AsyncSession, seeded: Seeded, resource: str) -> None:
    gids = {
        "issue": seeded["resources"]["issue"],
        "confidential_issue": seeded["resources"]["confidential_issue"],
        "project": seeded["projects"]["gitlab-duo/test"],
        "group": seeded["groups"]["gitlab-duo"],
        "subgroup": seeded["groups"]["gitlab-duo/child"],
    }
    gid = await _note_gid(session) if resource == "note" else GlobalID.parse(gids[resource], argument="id")
    for name, expected in zip(NAMES, MATRIX[resource], strict=True):
        principal = await _principal(session, seeded, name)
        target = await find_resource(session, gid)
        assert await can_read(session, principal, target) is expected, (resource, name)
    assert await can_read(session, None, await find_resource(session, gid)) is False


async def _guest(session: AsyncSession, seeded: Seeded) -> Principal:
    guest = await create_user(session, "gus")
    session.add(Member(user_id=guest.id, source_type="Group", source_id=1, access_level=AccessLevel.GUEST))
    await session.flush()
    return Principal(guest.id, "gus", False, frozenset({"api"}))


async def test_a_confidential_issue_needs_reporter_or_authorship(session: AsyncSession, seeded: Seeded) -> None:
    guest = await _guest(session, seeded)
    issue = await find_resource(session, GlobalID("Issue", 1))
    confidential = await find_resource(session, GlobalID("Issue", 2))
    assert await can_read(session, guest, issue)
    assert not await can_read(session, guest, confidential)
    await session.execute(update(Issue).where(Issue.id == 2).values(author_id=guest.user_id))
    session.expire_all()
    assert await can_read(session, guest, await find_resource(session, GlobalID("Issue", 2)))
    await session.execute(
        update(Member).where(Member.user_id == guest.user_id).values(access_level=AccessLevel.REPORTER)
    )
    await session.execute(update(Issue).where(Issue.id == 2).values(author_id=2))
    session.expire_all()
    assert await can_read(session, guest, await find_resource(session, GlobalID("Issue", 2)))


async def test_a_note_follows_its_issue(session: AsyncSession, seeded: Seeded) -> None:
    guest = await _guest(session, seeded)
    note = Note(noteable_type="Issue", noteable_id=2, author_id=2, body="secret")
    session.add(note)
    await session.flush()
    session.expunge_all()
    gid = GlobalID("Note", note.id)
    assert not await can_read(session, guest, await find_resource(session, gid))
    assert await can_read(session, await _principal(session, seeded, "bob"), await find_resource(session, gid))


@pytest.mark.parametrize(
    ("visibility", "signed_in", "anonymous"),
    [("public", True, True), ("internal", True, False), ("private", False, False)],
)
async def test_project_visibility(
    session: AsyncSession, seeded: Seeded, visibility: str, signed_in: bool, anonymous: bool
) -> None:
    await session.execute(update(Project).values(visibility=visibility))
    await session.execute(update(Group).values(visibility=visibility))
    session.expire_all()
    mallory = await _principal(session, seeded, "mallory")
    for gid in (GlobalID("Project", 1), GlobalID("Group", 1), GlobalID("Issue", 1)):
        assert await can_read(session, mallory, await find_resource(session, gid)) is signed_in, gid
        assert await can_read(session, None, await find_resource(session, gid)) is anonymous, gid
    assert not await can_read(session, mallory, await find_resource(session, GlobalID("Issue", 2)))


async def test_membership_is_inherited_down_and_a_group_is_visible_from_inside(
    session: AsyncSession, seeded: Seeded
) -> None:
    mallory = await _principal(session, seeded, "mallory")
    session.add(Member(user_id=mallory.user_id, source_type="Group", source_id=2, access_level=AccessLevel.GUEST))
    await session.flush()
    assert await can_read(session, mallory, await find_resource(session, GlobalID("Group", 2)))
    assert await can_read(session, mallory, await find_resource(session, GlobalID("Group", 1)))
    assert not await can_read(session, mallory, await find_resource(session, GlobalID("Project", 1)))

    project_only = await create_user(session, "pat")
    session.add(Member(user_id=project_only.id, source_type="Project", source_id=1, access_level=AccessLevel.GUEST))
    await session.flush()
    pat = Principal(project_only.id, "pat", False, frozenset({"api"}))
    assert await can_read(session, pat, await find_resource(session, GlobalID("Project", 1)))
    assert await can_read(session, pat, await find_resource(session, GlobalID("Group", 1)))
    assert not await can_read(session, pat, await find_resource(session, GlobalID("Group", 2)))


async def test_readable_resource_denies_the_missing_and_the_unreadable(session: AsyncSession, seeded: Seeded) -> None:
    mallory = await _principal(session, seeded, "mallory")
    alice = await _principal(session, seeded, "alice")
    denied = [(mallory, GlobalID("Issue", 1)), (alice, GlobalID("Issue", 99)), (alice, GlobalID("Commit", 1))]
    for principal, gid in denied:
        with pytest.raises(AccessDenied) as caught:
            await readable_resource(session, principal, gid)
        assert str(caught.value) == RESOURCE_NOT_AVAILABLE
    issue = await readable_resource(session, alice, GlobalID("Issue", 1))
    assert isinstance(issue, Issue) and issue.title == "Broken pipeline on main"


async def test_the_hot_path_takes_three_queries(database_url: str) -> None:
    engine = create_engine(database_url)
    statements: list[str] = []
    try:
        async with session_factory(engine)() as session:
            data = await seed(session)
            await session.commit()
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        async with session_factory(engine)() as session:
            principal = await authenticate(session, data["users"]["bob"]["token"])
            gid = GlobalID.parse(data["resources"]["confidential_issue"], argument="resourceId")
            await readable_resource(session, principal, gid)
    finally:
        await engine.dispose()
    assert len(statements) <= 3, statements


async def test_resource_notes_are_the_human_notes_oldest_first(session: AsyncSession, seeded: Seeded) -> None:
    issue = await find_resource(session, GlobalID("Issue", 1))
    notes = await resource_notes(session, issue)
    assert [note.author.username for note in notes] == ["alice", "bob", "carol"]
    assert not any(note.system for note in notes)
    assert await resource_notes(session, await find_resource(session, GlobalID("Issue", 2))) == []
    assert await resource_notes(session, await find_resource(session, GlobalID("Project", 1))) == []
