"""The web app under more load than its database pool serves at once (issue 9), over HTTP into the real app
and services, on SQLite and PostgreSQL.

- A flood (1,200 concurrent `aiAction`s from three users and three 700-alias `aiFeatures` queries): every
  request gets an answer a client can act on, 200 with a `requestId` or a clean GraphQL error, or 503 with
  `Retry-After`; never a 500, never a pool time-out; the server answers a plain query right afterwards.
- Caches reloading on every read under that concurrency never deadlock a small pool: no request holds one
  connection while it waits for another (checked per task, and end to end).
- Backpressure: past the in-flight limit, or without a free connection in time, a 503 with `Retry-After`
  and a message (GraphQL-shaped on /api/graphql); health and /metrics stay exempt.

Counts and statuses only: no wall-clock bound.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.pool import Pool

from access.checks import Gate
from access.entitlement import Entitlements
from access.flags import FlagStore
from api.app import create_app
from api.backpressure import TOO_MANY_REQUESTS
from api.services import Services, open_services
from catalogue.flags import default_enabled
from core.actions import ActionRecord
from core.db import DATABASE_BUSY
from core.errors import AI_NOT_PERMITTED
from core.ids import new_request_id
from core.settings import Settings

EXPLAIN = 'mutation { aiAction(input: {explainCode: {resourceId: "gid://gitlab/Issue/1", code: "x"}}) { requestId errors } }'
CURRENT_USER = "{ currentUser { id } }"
USERS = ["alice", "bob", "root"]  # Duo Enterprise, Duo Pro (both may explain code), and the seatless admin


def group_features(aliases: int) -> str:
    return "{ " + " ".join(f'a{i}: group(fullPath: "gitlab-duo") {{ aiFeatures {{ available }} }}' for i in range(aliases)) + " }"


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    app = create_app(settings)
    async with open_services(settings) as services:
        app.state.services = services
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # a crash is a 500, counted
        async with httpx.AsyncClient(transport=transport, base_url="http://switchboard", timeout=None) as client:
            yield client, services


def _auth(seeded: dict, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {seeded['users'][user]['token']}"}


def _busy(response: httpx.Response) -> str | None:
    """The 503's message when it is a proper one (Retry-After, GraphQL-shaped body), else None."""
    if response.status_code != 503 or not response.headers.get("retry-after", "").isdigit():
        return None
    errors = response.json().get("errors") or [{}]
    return errors[0].get("message")


def _failure(response: httpx.Response) -> str | None:
    """busy (503 with Retry-After), or what else is wrong with an answer; None for a GraphQL result."""
    if _busy(response):
        return "busy"
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    errors = response.json().get("errors")
    return f"GraphQL error: {errors[0]['message']}" if errors else None


def action_outcome(response: httpx.Response) -> str:
    """accepted, refused (a clean answer), busy (503 with Retry-After), or what is wrong."""
    if (failure := _failure(response)) is not None:
        return failure
    payload = response.json()["data"]["aiAction"]
    if payload["requestId"]:
        return "accepted"
    return "refused" if payload["errors"] == [AI_NOT_PERMITTED] else f"unexpected {payload}"


def features_outcome(response: httpx.Response, aliases: int) -> str:
    if (failure := _failure(response)) is not None:
        return failure
    groups = response.json()["data"].values()
    return "answered" if len(groups) == aliases and all(g["aiFeatures"] for g in groups) else "partial"


async def flood(client: httpx.AsyncClient, seeded: dict, actions: int, queries: int, aliases: int) -> tuple[Counter, Counter]:
    async def act(i: int) -> str:
        return action_outcome(await client.post("/api/graphql", json={"query": EXPLAIN}, headers=_auth(seeded, USERS[i % 3])))

    async def features(i: int) -> str:
        response = await client.post("/api/graphql", json={"query": group_features(aliases)}, headers=_auth(seeded, USERS[i % 3]))
        return features_outcome(response, aliases)

    results = await asyncio.gather(*(features(i) for i in range(queries)), *(act(i) for i in range(actions)))
    return Counter(results[queries:]), Counter(results[:queries])


async def answers_right_away(client: httpx.AsyncClient, seeded: dict) -> bool:
    after = await client.post("/api/graphql", json={"query": CURRENT_USER}, headers=_auth(seeded, "alice"))
    return after.status_code == 200 and after.json() == {"data": {"currentUser": {"id": seeded["users"]["alice"]["gid"]}}}


def _reloading_on_every_read(services: Services) -> None:
    """Flags and entitlement with no time-to-live: every check loads them (what a long stall under load does
    to 5-second caches), so any load made through a second connection shows."""
    services.flags = FlagStore(services.sessions, default_enabled, ttl_s=0)
    services.entitlements = Entitlements(ttl_s=0)
    services.gate = Gate(services.flags, services.entitlements, services.settings.mode)


@pytest.mark.timeout(180)  # a big test on a small, shared host: no bound on its speed is meant here
@pytest.mark.parametrize(("caches", "queries"), [("warm", 42), ("reloading", 12)])
async def test_a_flood_of_actions_and_alias_queries_is_answered_and_the_server_stays_up(
    settings: Settings, seeded: dict, caches: str, queries: int
) -> None:
    """Alias-heavy queries at the documents' alias limit (50; a 700-alias query is refused before it runs),
    as many as the three 700-alias queries that once blocked the pool."""
    async with serving(settings) as (client, services):
        if caches == "reloading":
            _reloading_on_every_read(services)
        actions, answers = await flood(client, seeded, actions=1_200, queries=queries, aliases=50)
        assert set(actions) <= {"accepted", "refused", "busy"}, actions
        assert set(answers) <= {"answered", "busy"}, answers
        assert actions["accepted"] > 0, actions  # the load was served, not only refused
        assert await answers_right_away(client, seeded)


async def test_caches_reloading_under_concurrency_never_deadlock_a_small_pool(settings: Settings, seeded: dict) -> None:
    small = settings.model_copy(update={"db_pool_size": 3, "db_pool_timeout_s": 30.0, "max_inflight_requests": 0})
    async with serving(small) as (client, services):
        _reloading_on_every_read(services)
        actions, queries = await flood(client, seeded, actions=300, queries=6, aliases=50)
        assert set(actions) == {"accepted", "refused"}, actions
        assert queries == {"answered": 6}, queries
        assert await answers_right_away(client, seeded)


@contextmanager
def connections_per_task() -> Iterator[dict[str, int]]:
    """The most pool connections any one task held at once, by task name (every pool of the process)."""
    held: dict[int, int] = defaultdict(int)
    most: dict[str, int] = defaultdict(int)
    owner: dict[int, asyncio.Task[Any]] = {}

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        task = asyncio.current_task()
        if task is None:
            return
        owner[id(record)] = task
        held[id(task)] += 1
        most[task.get_name()] = max(most[task.get_name()], held[id(task)])

    def checkin(dbapi_connection: Any, record: Any) -> None:
        task = owner.pop(id(record), None)
        if task is not None:
            held[id(task)] -= 1

    event.listen(Pool, "checkout", checkout)
    event.listen(Pool, "checkin", checkin)
    try:
        yield most
    finally:
        event.remove(Pool, "checkout", checkout)
        event.remove(Pool, "checkin", checkin)


async def test_no_request_or_recheck_holds_a_connection_while_it_waits_for_another(settings: Settings, seeded: dict) -> None:
    async with serving(settings) as (client, services):
        _reloading_on_every_read(services)
        alice = _auth(seeded, "alice")
        queries = [
            EXPLAIN,
            group_features(3),
            '{ aiNamespaceFeatureSettings(namespaceId: "gid://gitlab/Group/1") { nodes { feature } } }',
            "{ currentUser { id duoChatAvailable } }",
        ]
        with connections_per_task() as most:
            for query in queries:
                response = await client.post("/api/graphql", json={"query": query}, headers=alice)
                assert response.status_code == 200 and "errors" not in response.json(), response.text
            record = ActionRecord(request_id=new_request_id(), feature="explain_code", user_id=2,
                                  resource="gid://gitlab/Issue/1", inputs={"code": "x"})
            async with services.sessions() as session:
                assert await services.gate.recheck(session, record)  # the worker's re-check
        assert most and max(most.values()) == 1, dict(most)


async def test_a_full_process_or_a_busy_database_answers_503_with_retry_after(settings: Settings, seeded: dict) -> None:
    one = settings.model_copy(update={"max_inflight_requests": 1, "db_pool_timeout_s": 0.2})  # a pool of one
    async with serving(one) as (client, services):
        alice, bob = _auth(seeded, "alice"), _auth(seeded, "bob")
        assert await answers_right_away(client, seeded)  # alice's token is now cached
        async with services.engine.connect() as held:
            await held.exec_driver_sql("SELECT 1")  # the only connection, taken
            # a resolver that finds no connection (the error is caught by GraphQL): still a 503
            assert _busy(await client.post("/api/graphql", json={"query": CURRENT_USER}, headers=alice)) == DATABASE_BUSY
            # authentication that finds none (outside GraphQL)
            assert _busy(await client.post("/api/graphql", json={"query": CURRENT_USER}, headers=bob)) == DATABASE_BUSY
            # one waits for the database; the next finds the process full
            both = await asyncio.gather(*(client.post("/api/graphql", json={"query": CURRENT_USER}, headers=alice)
                                          for _ in range(2)))
            assert sorted(_busy(r) or r.text for r in both) == sorted([DATABASE_BUSY, TOO_MANY_REQUESTS])
            # not GraphQL: the same 503 with a plain message
            rest = await client.get("/api/v4/features", headers=_auth(seeded, "root"))
            assert rest.status_code == 503 and rest.json() == {"message": DATABASE_BUSY} and rest.headers["retry-after"]
            # exempt: health and metrics
            assert (await client.get("/-/health")).status_code == 200
            assert (await client.get("/metrics")).status_code == 200
        assert await answers_right_away(client, seeded)


async def test_a_locked_sqlite_database_answers_503_with_retry_after(settings: Settings, seeded: dict) -> None:
    """Under a chat load (bench `resources`), a thread's INSERT waited past SQLite's busy timeout for another
    writer and the client got "Internal server error". A writer holding the lock stands in for that load."""
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite's single writer")
    import sqlite3

    from sqlalchemy.engine import make_url

    chat = 'mutation { aiAction(input: {chat: {content: "hi"}, conversationType: DUO_CHAT}) { requestId errors } }'
    async with serving(settings) as (client, _):
        alice = _auth(seeded, "alice")
        assert await answers_right_away(client, seeded)
        writer = sqlite3.connect(make_url(settings.database_url).database or "", timeout=0)
        try:
            writer.execute("BEGIN IMMEDIATE")  # the write lock, held
            refused = await client.post("/api/graphql", json={"query": chat}, headers=alice)
            assert _busy(refused) == DATABASE_BUSY, refused.text
        finally:
            writer.rollback()
            writer.close()
        accepted = (await client.post("/api/graphql", json={"query": chat}, headers=alice)).json()
        assert accepted["data"]["aiAction"]["errors"] == [] and accepted["data"]["aiAction"]["requestId"]
