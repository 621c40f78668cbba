"""`aiChatResources` through the real schema and a seeded database: the chat page's resource picker lists
exactly what the caller can read (GitLab's read rules), never an unreadable item's title."""

from __future__ import annotations

from sqlalchemy import select

from access.reading import can_read, find_resource
from access.tokens import authenticate
from api.services import Services
from core.ids import GlobalID
from core.tables import AccessLevel, Issue, Member, Project
from tests.api.test_chat_conversations import gql

QUERY = "query($first: Int) { aiChatResources(first: $first) { id type title reference } }"

def every(seeded: dict) -> set[str]:
    """Every seeded item the picker may list: all resources but the project."""
    return {name for name, gid in seeded["resources"].items() if not gid.startswith("gid://gitlab/Project/")}


async def listed(services: Services, seeded: dict, user: str, **variables: int) -> list[dict]:
    data, errors = await gql(services, seeded, user, QUERY, **variables)
    assert errors == []
    return data["aiChatResources"]


def names(seeded: dict, items: list[dict]) -> set[str]:
    by_gid = {gid: name for name, gid in seeded["resources"].items()}
    return {by_gid[item["id"]] for item in items}


async def test_a_member_with_reporter_or_more_sees_every_seeded_item_with_its_reference(services: Services, seeded: dict) -> None:
    items = await listed(services, seeded, "bob")
    assert names(seeded, items) == every(seeded)
    by_type = {item["type"]: item for item in items if item["id"] != seeded["resources"]["confidential_issue"]}
    references = {item["id"]: item["reference"] for item in items}
    assert references[seeded["resources"]["issue"]] == "gitlab-duo/test#1"
    assert references[seeded["resources"]["issue_without_comments"]] == "gitlab-duo/test#13"
    assert by_type["MERGE_REQUEST"]["reference"].startswith("gitlab-duo/test!")
    assert by_type["EPIC"]["reference"].startswith("gitlab-duo&")
    assert by_type["VULNERABILITY"]["reference"].startswith("gitlab-duo/test/-/security/vulnerabilities/")
    assert all(item["title"] for item in items)


async def test_a_stranger_sees_nothing(services: Services, seeded: dict) -> None:
    assert await listed(services, seeded, "mallory") == []


async def test_a_guest_sees_only_what_guests_may_read_and_agrees_with_can_read(services: Services, seeded: dict) -> None:
    async with services.sessions() as session, session.begin():
        project = await session.scalar(select(Project).where(Project.path == "test"))
        assert project is not None
        session.add(Member(user_id=seeded["users"]["mallory"]["id"], source_type="Project", source_id=project.id,
                           access_level=AccessLevel.GUEST))
    items = await listed(services, seeded, "mallory")
    # a guest of a private project: its non-confidential issues, the group's epic; no confidential issue,
    # no merge request (reporter+ in a private project), no vulnerability (developer+)
    issues = {name for name, gid in seeded["resources"].items() if gid.startswith("gid://gitlab/Issue/")}
    assert names(seeded, items) == (issues - {"confidential_issue"}) | {"epic"}
    async with services.sessions() as session:
        confidential = await session.get(Issue, GlobalID.parse(seeded["resources"]["confidential_issue"], argument="x").id)
        assert confidential is not None and confidential.title not in {item["title"] for item in items}
        principal = await authenticate(session, seeded["users"]["mallory"]["token"])
        for name in every(seeded):  # the list is exactly can_read's answer
            gid = seeded["resources"][name]
            resource = await find_resource(session, GlobalID.parse(gid, argument="x"))
            assert (name in names(seeded, items)) == await can_read(session, principal, resource), name


async def test_first_bounds_each_type_and_is_validated(services: Services, seeded: dict) -> None:
    items = await listed(services, seeded, "alice", first=1)
    assert sorted(item["type"] for item in items) == ["EPIC", "ISSUE", "MERGE_REQUEST", "VULNERABILITY"]
    for bad in (0, 101):
        data, errors = await gql(services, seeded, "alice", QUERY, first=bad)
        assert data is None and len(errors) == 1 and "first" in errors[0]
