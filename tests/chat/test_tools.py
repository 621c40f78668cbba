"""The chat tools against the seeded demo world (chat/tools): every reader through every kind of reference,
the authorization inside each tool (M3005 for a tool outside the user's add-on, M3003 with nothing of the
item for a missing, unreadable or Duo-disabled one), the caps, and the tool list a user is offered. On
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from access.admin import add_ons, namespaces
from access.admin.accounts import create_user
from access.admin.seed import seed
from access.checks import Gate
from access.entitlement import Entitlements, Seat, seat_primitives
from access.flags import FlagStore
from access.tokens import get_principal
from catalogue import get_catalogue
from catalogue.add_ons import ADD_ONS
from chat.tools import (
    MAX_RESULT_CHARS,
    DocumentationIndex,
    ToolContext,
    ToolResult,
    available_tools,
    check_handlers,
    progress_text,
    run_tool,
)
from core.db import create_engine, session_factory
from core.errors import NO_DOCUMENTATION, TOOL_ITEM_UNAVAILABLE, TOOL_NOT_IN_SUBSCRIPTION
from core.ids import GlobalID
from core.tables import Issue, MergeRequest, utcnow

ISSUE = GlobalID("Issue", 1)
CONFIDENTIAL = GlobalID("Issue", 2)
MERGE_REQUEST = GlobalID("MergeRequest", 1)
EPIC = GlobalID("Epic", 1)
VULNERABILITY = GlobalID("Vulnerability", 1)
PROJECT = GlobalID("Project", 1)
GROUP = GlobalID("Group", 1)
TOOLS = get_catalogue().tools


@dataclass
class Chat:
    sessions: async_sessionmaker[AsyncSession]
    gate: Gate
    docs: DocumentationIndex
    users: dict[str, int]

    async def call(
        self, user: str, tool: str, arguments: Mapping[str, object], *,
        resource: GlobalID | None = None, project: GlobalID | None = None,
    ) -> ToolResult:
        async with self.sessions() as session:
            principal = await get_principal(session, self.users[user])
        assert principal is not None
        context = ToolContext(self.sessions, principal, self.gate, resource, project, self.docs)
        return await run_tool(context, TOOLS[tool], arguments)

    async def change(self, work: Any) -> None:
        async with self.sessions() as session:
            await work(session)
            await session.commit()


@pytest.fixture
async def chat(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Chat]:
    mode = getattr(request, "param", "self_managed")
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    async with sessions() as session:
        seeded = await seed(session, mode=mode)
        await session.commit()
    # No entitlement cache: every change a test makes is in force at once.
    gate = Gate(FlagStore(sessions), Entitlements(ttl_s=0), mode)
    docs = await DocumentationIndex.build([])
    try:
        yield Chat(sessions, gate, docs, {name: user["id"] for name, user in seeded["users"].items()})
    finally:
        docs.close()
        await engine.dispose()


def assert_read(result: ToolResult, title: str, url: str, kind: str, *texts: str) -> None:
    assert result.status == "FINISHED", result.content
    assert result.sources == ({"title": title, "url": url, "type": kind},)
    for text in (title, *texts):
        assert text in result.content


ISSUE_URL = "/gitlab-duo/test/-/issues/1"


@pytest.mark.parametrize(
    ("reference", "resource", "project"),
    [
        pytest.param("current", ISSUE, None, id="current"),
        pytest.param("#1", MERGE_REQUEST, None, id="relative-to-the-page"),
        pytest.param("#1", None, PROJECT, id="relative-to-projectId"),
        pytest.param("1", PROJECT, None, id="bare-iid-on-the-project-page"),
        pytest.param("gitlab-duo/test#1", None, None, id="full-reference"),
        pytest.param("https://gitlab.example.com/gitlab-duo/test/-/issues/1", EPIC, None, id="url"),
        pytest.param("current", GlobalID("Note", 2), None, id="current-from-a-note"),
    ],
)
async def test_issue_reader(chat: Chat, reference: str, resource: GlobalID | None, project: GlobalID | None) -> None:
    result = await chat.call("alice", "issue_reader", {"reference": reference}, resource=resource, project=project)
    assert_read(result, "Broken pipeline on main", ISSUE_URL, "issue",
                'reference="gitlab-duo/test#1"', "ModuleNotFoundError", 'confidential="false"', "<author>bob</author>",
                '<comment author="alice"', '<comment author="carol"', "opening a merge request")
    assert 'added ~"bug" label' not in result.content  # system notes are not read


@pytest.mark.parametrize(
    ("reference", "resource"),
    [
        pytest.param("current", MERGE_REQUEST, id="current"),
        pytest.param("!1", ISSUE, id="relative"),
        pytest.param("gitlab-duo/test!1", None, id="full-reference"),
        pytest.param("http://localhost:8080/gitlab-duo/test/-/merge_requests/1/diffs", None, id="url"),
    ],
)
async def test_merge_request_reader(chat: Chat, reference: str, resource: GlobalID | None) -> None:
    result = await chat.call("alice", "merge_request_reader", {"reference": reference}, resource=resource)
    assert_read(result, "Declare redis as a dependency", "/gitlab-duo/test/-/merge_requests/1", "merge_request",
                "<source_branch>declare-redis</source_branch>", "<target_branch>main</target_branch>",
                '+    "redis&gt;=5.2",', "pin the lower bound of hiredis")
    assert result.content.index("<comments>") < result.content.index("<diff>")  # the diff is cut first


@pytest.mark.parametrize(
    ("reference", "resource", "project"),
    [
        pytest.param("current", EPIC, None, id="current"),
        pytest.param("&1", ISSUE, None, id="relative-to-the-project's-group"),
        pytest.param("&1", GROUP, None, id="relative-to-the-group"),
        pytest.param("&1", None, PROJECT, id="relative-to-projectId"),
        pytest.param("gitlab-duo&1", None, None, id="full-reference"),
        pytest.param("https://gitlab.example.com/groups/gitlab-duo/-/epics/1", None, None, id="url"),
    ],
)
async def test_epic_reader(chat: Chat, reference: str, resource: GlobalID | None, project: GlobalID | None) -> None:
    result = await chat.call("alice", "epic_reader", {"reference": reference}, resource=resource, project=project)
    assert_read(result, "Reliable CI on main", "/groups/gitlab-duo/-/epics/1", "epic",
                'reference="gitlab-duo&amp;1"', "declare every runtime dependency", "Renovate rule")


@pytest.mark.parametrize(
    ("reference", "resource"),
    [
        pytest.param("current", VULNERABILITY, id="current"),
        pytest.param("1", None, id="id"),
        pytest.param("https://gitlab.example.com/gitlab-duo/test/-/security/vulnerabilities/1", ISSUE, id="url"),
    ],
)
async def test_vulnerability_reader(chat: Chat, reference: str, resource: GlobalID | None) -> None:
    result = await chat.call("alice", "vulnerability_reader", {"reference": reference}, resource=resource)
    assert_read(result, "SQL injection in the search endpoint", "/gitlab-duo/test/-/security/vulnerabilities/1",
                "vulnerability", 'severity="high"', 'report_type="sast"', "<location>app/search.py:14</location>",
                "<code>cursor.execute(f\"SELECT * FROM issues WHERE title LIKE '%{q}%'\")</code>")


@pytest.mark.parametrize("chat", ["saas"], indirect=True)
async def test_readers_work_with_saas_seats(chat: Chat) -> None:
    result = await chat.call("alice", "issue_reader", {"reference": "gitlab-duo/test#1"})
    assert_read(result, "Broken pipeline on main", ISSUE_URL, "issue")
    assert (await chat.call("bob", "issue_reader", {"reference": "#1"}, resource=ISSUE)).content == TOOL_NOT_IN_SUBSCRIPTION


@pytest.mark.parametrize(
    ("tool", "reference", "resource"),
    [
        pytest.param("issue_reader", "#99", ISSUE, id="no-such-issue"),
        pytest.param("issue_reader", "nowhere/test#1", None, id="no-such-project"),
        pytest.param("merge_request_reader", "gitlab-duo/test!99", None, id="no-such-mr"),
        pytest.param("epic_reader", "gitlab-duo/child&1", None, id="no-such-epic"),
        pytest.param("vulnerability_reader", "99", None, id="no-such-vulnerability"),
        pytest.param("vulnerability_reader", "https://h/gitlab-duo/other/-/security/vulnerabilities/1", None,
                     id="vulnerability-of-another-project"),
    ],
)
async def test_a_missing_item_is_m3003(chat: Chat, tool: str, reference: str, resource: GlobalID | None) -> None:
    result = await chat.call("alice", tool, {"reference": reference}, resource=resource)
    assert (result.status, result.content, result.sources) == ("FAILED", TOOL_ITEM_UNAVAILABLE, ())


async def test_a_guest_with_duo_enterprise_cannot_read_a_confidential_issue(chat: Chat) -> None:
    async def guest(session: AsyncSession) -> None:
        user = await create_user(session, "gus")
        await namespaces.add_member(session, user, await namespaces.get_group(session, "gitlab-duo"), "guest")
        await add_ons.assign_seat(session, user, "duo_enterprise", None)

    await chat.change(guest)
    async with chat.sessions() as session:
        chat.users["gus"] = (await namespaces.get_user(session, "gus")).id
    readable = await chat.call("gus", "issue_reader", {"reference": "#1"}, resource=ISSUE)
    assert readable.status == "FINISHED"  # the guest reads the project's ordinary issues
    for reference, resource in [("#2", ISSUE), ("current", CONFIDENTIAL), ("gitlab-duo/test#2", None),
                                ("https://gitlab.example.com/gitlab-duo/test/-/issues/2", None)]:
        result = await chat.call("gus", "issue_reader", {"reference": reference}, resource=resource)
        assert (result.status, result.content, result.sources) == ("FAILED", TOOL_ITEM_UNAVAILABLE, ())
        assert "Deploy token" not in result.content and "CI_DEPLOY_PASSWORD" not in result.content
    # nor the merge request and the vulnerability (reporter+ and developer+ in a private project)
    for tool, reference in [("merge_request_reader", "gitlab-duo/test!1"), ("vulnerability_reader", "1")]:
        result = await chat.call("gus", tool, {"reference": reference})
        assert (result.status, result.content, result.sources) == ("FAILED", TOOL_ITEM_UNAVAILABLE, ())
    # a developer reads the confidential issue
    assert (await chat.call("alice", "issue_reader", {"reference": "#2"}, resource=ISSUE)).status == "FINISHED"


async def test_a_duo_pro_user_gets_m3005_from_readers_and_keeps_documentation_search(chat: Chat) -> None:
    for tool in ("issue_reader", "merge_request_reader", "epic_reader", "vulnerability_reader"):
        result = await chat.call("bob", tool, {"reference": "current"}, resource=ISSUE)
        assert (result.status, result.content, result.sources) == ("FAILED", TOOL_NOT_IN_SUBSCRIPTION, ())
    search = await chat.call("bob", "documentation_search", {"query": "redis"})
    assert (search.status, search.content) == ("FINISHED", NO_DOCUMENTATION)  # this world's index is empty
    for user in ("carol", "mallory", "root"):  # no seat at all
        assert (await chat.call(user, "documentation_search", {"query": "redis"})).content == TOOL_NOT_IN_SUBSCRIPTION


async def test_a_search_holds_no_pooled_connection_while_it_searches(chat: Chat) -> None:
    """The seats' check reads the database (this gate caches nothing); the documentation search that follows
    runs once that session has given its connection back (it held it across the search)."""
    pool = chat.sessions.kw["bind"].sync_engine.pool
    held: list[int] = []
    during_search: list[int] = []

    def on_checkout(*args: object) -> None:
        held.append(1)

    def on_checkin(*args: object) -> None:
        held.append(-1)

    def on_statement(sql: str) -> None:  # the index's own SQLite connection, on the search's thread
        if "MATCH" in sql:
            during_search.append(sum(held))

    event.listen(pool, "checkout", on_checkout)
    event.listen(pool, "checkin", on_checkin)
    chat.docs._connection.set_trace_callback(on_statement)
    try:
        result = await chat.call("alice", "documentation_search", {"query": "redis"})
    finally:
        event.remove(pool, "checkout", on_checkout)
        event.remove(pool, "checkin", on_checkin)
        chat.docs._connection.set_trace_callback(None)
    assert (result.status, result.content) == ("FINISHED", NO_DOCUMENTATION)
    assert held.count(1) >= 1  # the seats' check did take a connection
    assert during_search == [0]


async def test_duo_disabled_on_the_group_is_m3003(chat: Chat) -> None:
    async def switch(value: str, path: str = "gitlab-duo") -> Any:
        async def work(session: AsyncSession) -> None:
            await namespaces.set_setting(session, await namespaces.get_group(session, path), "duo_features_enabled", value)
        return work

    await chat.change(await switch("false"))
    for tool, reference in [("issue_reader", "gitlab-duo/test#1"), ("merge_request_reader", "gitlab-duo/test!1"),
                            ("epic_reader", "gitlab-duo&1"), ("vulnerability_reader", "1")]:
        result = await chat.call("alice", tool, {"reference": reference})
        assert (result.status, result.content, result.sources) == ("FAILED", TOOL_ITEM_UNAVAILABLE, ())
    await chat.change(await switch("true"))
    assert (await chat.call("alice", "issue_reader", {"reference": "gitlab-duo/test#1"})).status == "FINISHED"


@pytest.mark.parametrize(
    ("tool", "arguments", "says"),
    [
        pytest.param("issue_reader", {}, "Invalid input for issue_reader: missing required field 'reference'", id="missing"),
        pytest.param("issue_reader", {"reference": 1}, "field 'reference' must be a string", id="not-a-string"),
        pytest.param("issue_reader", {"reference": "#1", "iid": 1}, "unknown field 'iid'", id="extra-field"),
        pytest.param("issue_reader", {"reference": "login bug"}, "not a reference this tool understands", id="a-search"),
        pytest.param("issue_reader", {"reference": "!1"}, "refers to a merge request, not an issue", id="wrong-type"),
        pytest.param("epic_reader", {"reference": "current"}, "not on an epic page", id="current-elsewhere"),
        pytest.param("documentation_search", {"query": ""}, "field 'query' must not be empty", id="empty-query"),
        pytest.param("documentation_search", {"query": " ?! "}, "no words to search for", id="no-words"),
    ],
)
async def test_bad_input_fails_with_a_reason_the_model_can_act_on(
    chat: Chat, tool: str, arguments: dict[str, object], says: str
) -> None:
    result = await chat.call("alice", tool, arguments, resource=ISSUE)
    assert result.status == "FAILED" and says in result.content and result.sources == ()


async def test_a_relative_reference_needs_a_place(chat: Chat) -> None:
    result = await chat.call("alice", "issue_reader", {"reference": "#1"})
    assert result.status == "FAILED" and "give the full reference" in result.content
    epic = await chat.call("alice", "epic_reader", {"reference": "&1"})
    assert epic.status == "FAILED" and "group&4" in epic.content


async def test_results_are_capped(chat: Chat) -> None:
    async def grow(session: AsyncSession) -> None:
        await session.execute(update(Issue).where(Issue.id == 1).values(description="long line\n" * 10_000))
        await session.execute(update(MergeRequest).where(MergeRequest.id == 1).values(diff="+x\n" * 30_000))

    await chat.change(grow)
    issue = await chat.call("alice", "issue_reader", {"reference": "current"}, resource=ISSUE)
    merge_request = await chat.call("alice", "merge_request_reader", {"reference": "current"}, resource=MERGE_REQUEST)
    for result in (issue, merge_request):
        assert result.status == "FINISHED" and len(result.content) == MAX_RESULT_CHARS
        assert result.content.endswith(f"[… cut: the result is longer than {MAX_RESULT_CHARS} characters]")
    assert "pin the lower bound of hiredis" in merge_request.content  # notes come before the diff


@pytest.mark.parametrize(
    ("tool", "reference", "statements"),
    [
        # the item with its project, group and author; the reader's membership; the human notes
        pytest.param("issue_reader", "gitlab-duo/test#1", 3, id="issue"),
        pytest.param("merge_request_reader", "gitlab-duo/test!1", 3, id="merge-request"),
        pytest.param("epic_reader", "gitlab-duo&1", 3, id="epic"),
        pytest.param("vulnerability_reader", "https://h/gitlab-duo/test/-/security/vulnerabilities/1", 2,
                     id="vulnerability"),  # no notes
    ],
)
async def test_a_full_reference_is_read_in_one_session_and_a_few_statements(
    chat: Chat, tool: str, reference: str, statements: int
) -> None:
    """With the entitlement cache warm (as it is in a worker), a reader runs nothing but the statements of
    the read (it ran six for an issue: the project, the issue's ID, the issue, the membership, the author,
    the notes) and opens one session for the seats' check and the read."""
    warm = Chat(chat.sessions, Gate(FlagStore(chat.sessions), Entitlements(), "self_managed"), chat.docs, chat.users)
    assert (await warm.call("alice", tool, {"reference": reference})).status == "FINISHED"  # fills the cache
    engine = chat.sessions.kw["bind"].sync_engine
    executed: list[str] = []
    opened: list[object] = []

    def on_execute(*args: object) -> None:
        executed.append(str(args[2]))

    def on_begin(session: object, transaction: object, connection: object) -> None:
        opened.append(session)

    async with chat.sessions() as session:
        principal = await get_principal(session, chat.users["alice"])
    assert principal is not None
    context = ToolContext(warm.sessions, principal, warm.gate, None, None, warm.docs)
    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(Session, "after_begin", on_begin)
    try:
        result = await run_tool(context, TOOLS[tool], {"reference": reference})
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(Session, "after_begin", on_begin)
    assert result.status == "FINISHED", result.content
    assert len(executed) == statements, executed
    assert len(set(map(id, opened))) == 1


async def test_the_tools_offered_follow_the_seats(chat: Chat) -> None:
    catalogue = get_catalogue()
    offered = {}
    async with chat.sessions() as session:
        for user in ("alice", "bob", "carol"):
            principal = await get_principal(session, chat.users[user])
            assert principal is not None
            offered[user] = [tool.name for tool in available_tools(catalogue, await chat.gate.unit_primitives(session, principal))]
    assert offered == {
        "alice": ["issue_reader", "merge_request_reader", "epic_reader", "vulnerability_reader", "documentation_search"],
        "bob": ["documentation_search"],
        "carol": [],
    }


def test_the_primitives_of_seats_count_active_seats_of_the_mode_only() -> None:
    now = utcnow()
    instance_pro = Seat("duo_pro", None, now - timedelta(days=1), None, False)
    group_enterprise = Seat("duo_enterprise", 1, now - timedelta(days=1), None, False)
    expired = Seat("duo_enterprise", None, now - timedelta(days=9), now - timedelta(days=1), False)
    assert seat_primitives([instance_pro, group_enterprise, expired], "self_managed") == ADD_ONS["duo_pro"]
    assert seat_primitives([instance_pro, group_enterprise, expired], "saas") == ADD_ONS["duo_enterprise"]
    assert seat_primitives([expired], "self_managed") == frozenset()


def test_every_tool_has_a_handler_and_every_handler_a_tool() -> None:
    assert check_handlers(get_catalogue()) == []
    broken = get_catalogue()
    odd = TOOLS["issue_reader"].model_copy(update={"name": "odd", "handler": "read_nothing"})
    problems = check_handlers(type(broken)(broken.features, broken.models, broken.feature_settings, broken.prompts,
                                           {"odd": odd}))
    assert "tool 'odd': handler 'read_nothing' is not in chat.tools.HANDLERS" in problems
    assert "handler 'search_documentation' of chat.tools.HANDLERS is used by no tool" in problems


@pytest.mark.parametrize(
    ("tool", "arguments", "text"),
    [
        pytest.param("issue_reader", {"reference": "gitlab-duo/test#1"}, "Reading issue gitlab-duo/test#1", id="issue"),
        pytest.param("merge_request_reader", {"reference": "current"}, "Reading the current merge request", id="current"),
        pytest.param("documentation_search", {"query": "embedded  redis"},
                     'Searching the documentation for "embedded redis"', id="search"),
        pytest.param("epic_reader", {"reference": "x" * 300}, "Reading epic " + "x" * 99 + "…", id="shortened"),
        pytest.param("epic_reader", {}, "Using epic_reader", id="no-arguments"),
    ],
)
def test_progress_texts(tool: str, arguments: dict[str, object], text: str) -> None:
    assert progress_text(TOOLS[tool], arguments) == text
