"""Bounded requests and no internal errors on bad input (issue 10): the body's size, the query's size and cost,
the document cache's bytes, malformed bodies, out-of-range IDs and cursors, unencodable inputs, and the
per-user subscription quota. Over HTTP through the real app (ASGI) or the real schema, with real services."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing

import httpx
import pytest

from access.tokens import authenticate
from api.app import create_app
from api.graphql.context import Context
from api.graphql.documents import DocumentCache, DocumentGuard, DocumentLimits
from api.graphql.schema import UNEXPECTED, build_schema
from api.services import Services
from core import keys
from core.settings import Settings
from subscriptions.messages import AiMessage, route_id
from subscriptions.quota import QUOTA
from subscriptions.streams import replay

SCHEMA = build_schema()
ACTION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors } }"
BODY_LIMIT = 256 << 10  # the 100,000-deep body (200 KB) fits


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_body_bytes": BODY_LIMIT, "max_subscriptions_per_user": 2})


@pytest.fixture
async def app(services: Services):  # noqa: ANN201
    app = create_app(services.settings)
    app.state.services = services
    return app


@pytest.fixture
async def http(app) -> AsyncIterator[httpx.AsyncClient]:  # noqa: ANN001
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://switchboard") as client:
        yield client


async def _call(app, headers: list[tuple[bytes, bytes]], chunks: list[bytes], *, endless: bool = False):  # noqa: ANN001, ANN202
    """One raw ASGI POST; returns (status, body, number of body chunks the app read)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/graphql", "raw_path": b"/api/graphql", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), *headers], "client": ("127.0.0.1", 1),
             "server": ("switchboard", 80)}
    read = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal read
        read += 1
        if endless or read <= len(chunks):
            return {"type": "http.request", "body": chunks[(read - 1) % len(chunks)], "more_body": endless or read < len(chunks)}
        await asyncio.Event().wait()  # the app asks past the end: wait for ever (a disconnect never comes)
        raise AssertionError

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    headers_out = dict(next(m["headers"] for m in sent if m["type"] == "http.response.start"))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, headers_out, json.loads(body), read


async def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(app) -> None:  # noqa: ANN001
    status, headers, body, read = await _call(app, [(b"content-length", str(100 << 20).encode())], [b"{}"])
    assert status == 413 and read == 0
    assert body == {"errors": [{"message": f"Request body is too large (maximum is {BODY_LIMIT} bytes)"}]}
    assert headers[b"connection"] == b"close"


async def test_a_chunked_body_is_read_only_up_to_the_limit(app) -> None:  # noqa: ANN001
    status, _, body, read = await _call(app, [], [b" " * 16384], endless=True)
    assert status == 413 and "too large" in body["errors"][0]["message"]
    assert read == BODY_LIMIT // 16384 + 1


async def test_a_body_within_the_limit_is_answered(app) -> None:  # noqa: ANN001
    payload = json.dumps({"query": "{ __typename }"}).encode()
    status, _, body, _ = await _call(app, [(b"content-length", str(len(payload)).encode())], [payload])
    assert (status, body) == (200, {"data": {"__typename": "Query"}})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"null", "The request body must be a JSON object", id="null"),
        pytest.param(b'"x"', "The request body must be a JSON object", id="string"),
        pytest.param(b"1", "The request body must be a JSON object", id="number"),
        pytest.param(b"[]", "Batching is not enabled", id="empty-list"),
        pytest.param(b'{"query": "{ __typename }", "x": "\xff"}', "Unable to parse request body as JSON", id="invalid-utf8"),
        pytest.param(b'{"query": "{ __typename }", "variables": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
                     "Unable to parse request body as JSON", id="nested-100000-deep"),
        pytest.param(b'{"query": "{ __typename }", "variables": {"a": NaN}}', "Unable to parse request body as JSON", id="nan"),
        pytest.param(json.dumps({"query": ACTION, "variables": {"input": {"chat": {"content": "\ud800"}}}}).encode(),
                     "Unable to parse request body as JSON", id="lone-surrogate"),
        pytest.param(b'{"query": "{ __typename }", "variables": []}',
                     "The GraphQL operation's `variables` must be an object or null, if provided.", id="variables-list"),
    ],
)
async def test_a_malformed_body_gets_400_with_a_json_error(http: httpx.AsyncClient, body: bytes, message: str) -> None:
    response = await http.post("/api/graphql", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": message}]}


# -- the document: size, tokens, cost, depth; none of it reaches the cache -------------------------------

def _messages(result) -> list[str]:  # noqa: ANN001
    return [error.message for error in result.errors or []]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("#" * 60_000 + "\n{ __typename }", "Query is too large: 60015 characters (maximum is 20000)", id="comment-padded"),
        pytest.param("{" + " __typename" * 9_000 + " }", "Query is too large: 99003 characters (maximum is 20000)", id="9000-fields"),
        pytest.param("{" + " __typename" * 301 + " }", "Query is too complex: more than 300 fields with its fragments expanded",
                     id="301-fields"),
        pytest.param("{" + "".join(f" a{i}: __typename" for i in range(51)) + " }", "Query has too many aliases (maximum is 50)",
                     id="aliases"),
        pytest.param("{" + " a" * 2_100 + " }", "Syntax Error: Document contains more than 2000 tokens. Parsing aborted.",
                     id="tokens"),
        # 2**30 fields once expanded, in a few hundred characters: the walk stops at the limit
        pytest.param("query { ...F0 } " + "".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }} " for i in range(30))
                     + "fragment F30 on Query { __typename }",
                     "Query is too complex: more than 300 fields with its fragments expanded", id="fragment-explosion"),
        pytest.param("{ ...Unknown }", "Unknown fragment 'Unknown'.", id="unknown-fragment"),
        pytest.param("query { ...F } fragment F on Query { ...G }", "Unknown fragment 'G'.", id="unknown-nested-fragment"),
    ],
)
async def test_a_costly_document_is_refused_before_it_is_parsed_or_validated(query: str, expected: str) -> None:
    schema = build_schema()
    result = await schema.execute(query)
    assert _messages(result) == [expected]


async def test_depth_is_limited() -> None:
    result = await build_schema().execute("{" + " a {" * 16 + " b" + " }" * 16 + " }")
    assert "'anonymous' exceeds maximum operation depth of 15" in _messages(result)


async def test_the_introspection_query_of_graphiql_fits_the_limits() -> None:
    from graphql import get_introspection_query

    result = await SCHEMA.execute(get_introspection_query(descriptions=True))
    assert result.errors is None


def test_the_document_cache_is_bounded_in_bytes_and_entries() -> None:
    cache = DocumentCache(max_entries=1_000, max_bytes=1 << 20)
    guard = DocumentGuard(cache, DocumentLimits())
    from graphql import parse

    from api.graphql.documents import _Entry

    for i in range(200):
        query = f"{{ __typename }} # {i:05d} " + "x" * 600
        cache.put(query, _Entry(parse(query)))
        assert cache.bytes <= cache.max_bytes
    assert 0 < len(cache) < 200
    assert cache.bytes == sum(len(q) * 80 for q in cache._entries)
    cache.put("{ a }" + " " * (1 << 20), _Entry(parse("{ a }")))  # larger than a sixteenth: never cached
    assert all(len(q) < 1 << 20 for q in cache._entries)
    assert guard.cache is cache


async def test_distinct_documents_do_not_grow_the_schemas_cache_past_its_bytes() -> None:
    schema = build_schema()
    for i in range(300):
        result = await schema.execute(f"{{ __typename }} # {i} " + "x" * 10_000)
        assert result.errors is None
    guard = next(e for e in (f() for f in schema.extensions) if isinstance(e, DocumentGuard))  # type: ignore[operator]
    assert guard.cache.bytes <= guard.cache.max_bytes and len(guard.cache) < 300


async def test_a_cached_invalid_document_keeps_its_errors() -> None:
    schema = build_schema()
    first = await schema.execute("{ nope }")
    second = await schema.execute("{ nope }")
    assert _messages(first) == _messages(second) == ["Cannot query field 'nope' on type 'Query'."]


# -- arguments out of range or unencodable: a GraphQL error naming the argument, nothing published ---------

async def _run(services: Services, token: str, query: str, variables: dict) -> list[str]:
    async with services.sessions() as session:
        principal = await authenticate(session, token)
    result = await SCHEMA.execute(query, variable_values=variables, context_value=Context(None, None, services, principal))  # type: ignore[arg-type]
    return _messages(result)


@pytest.mark.parametrize("digits", ["9999999999999999999", "9223372036854775808", "2147483648", "9999999999"])
async def test_a_global_id_past_the_id_columns_range_is_invalid_not_an_internal_error(
    services: Services, seeded: dict, digits: str
) -> None:
    gid = f"gid://gitlab/Issue/{digits}"
    errors = await _run(services, seeded["users"]["alice"]["token"], ACTION, {"input": {"summarizeComments": {"resourceId": gid}}})
    assert errors == [f"summarizeComments.resourceId: '{gid}' is not a valid Global ID: the ID is out of range"]
    assert await services.redis.zcard(keys.QUEUE) == 0


async def test_the_largest_id_is_looked_up_and_not_found(services: Services, seeded: dict) -> None:
    gid = "gid://gitlab/Issue/2147483647"
    errors = await _run(services, seeded["users"]["alice"]["token"], ACTION, {"input": {"summarizeComments": {"resourceId": gid}}})
    assert errors == ["The resource that you are attempting to access does not exist or you don't have permission to perform this action"]


SUBSCRIBE = "subscription($u: UserID, $after: String) { aiCompletionResponse(userId: $u, aiAction: CHAT, after: $after) { content } }"


@pytest.mark.parametrize("cursor", ["18446744073709551616-0", "0-18446744073709551616", "99999999999999999999-1", "1-1\n"])
async def test_a_cursor_past_redis_range_is_invalid(services: Services, seeded: dict, cursor: str) -> None:
    alice = seeded["users"]["alice"]
    async with services.sessions() as session:
        ctx = Context(None, None, services, await authenticate(session, alice["token"]))  # type: ignore[arg-type]
    stream = await SCHEMA.subscribe(SUBSCRIBE, variable_values={"u": alice["gid"], "after": cursor}, context_value=ctx)
    async with aclosing(stream) as results:  # type: ignore[type-var]
        first = await anext(results)
    assert _messages(first) == [f"after: {cursor!r} is not a valid cursor"]


async def test_the_last_possible_cursor_replays_nothing(services: Services) -> None:
    top = 2**64 - 1
    assert await replay(services.redis, "route", (top, top)) == []
    assert await replay(services.redis, "route", (5, top)) == []


@pytest.mark.parametrize(
    ("input", "argument"),
    [
        pytest.param({"chat": {"content": "hi \ud800"}}, "chat.content", id="surrogate-content"),
        pytest.param({"chat": {"content": "hi"}, "clientSubscriptionId": "\udfff"}, "clientSubscriptionId", id="surrogate-subscription-id"),
        pytest.param({"chat": {"content": "hi", "currentFile": {"fileName": "\ud800", "selectedText": ""}}}, "chat.currentFile",
                     id="surrogate-file"),
        pytest.param({"chat": {"content": "hi", "additionalContext": [{"category": "FILE", "id": "1", "content": "c",
                                                                      "metadata": {"n": 2**70}}]}},
                     "chat.additionalContext", id="huge-integer-metadata"),
    ],
)
async def test_an_unencodable_input_is_refused_before_the_chat_echo(
    services: Services, seeded: dict, input: dict, argument: str, caplog: pytest.LogCaptureFixture
) -> None:
    alice = seeded["users"]["alice"]
    with caplog.at_level(logging.INFO):
        errors = await _run(services, alice["token"], ACTION, {"input": input})
    assert len(errors) == 1 and errors[0].startswith(f"{argument}: cannot be encoded as JSON"), errors
    assert UNEXPECTED not in errors and "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert await replay(services.redis, route_id(alice["gid"], ai_action="chat"), (0, 0)) == []  # no echo went out
    assert await services.redis.zcard(keys.QUEUE) == 0


async def test_a_huge_integer_in_a_json_literal_is_refused_before_the_chat_echo(services: Services, seeded: dict) -> None:
    alice = seeded["users"]["alice"]
    query = ('mutation { aiAction(input: {chat: {content: "hi", additionalContext: [{category: FILE, id: "1", content: "c", '
             "metadata: {n: 99999999999999999999999}}]}}) { requestId } }")
    errors = await _run(services, alice["token"], query, {})
    assert len(errors) == 1 and errors[0].startswith("chat.additionalContext: cannot be encoded as JSON"), errors
    assert await replay(services.redis, route_id(alice["gid"], ai_action="chat"), (0, 0)) == []


# -- subscriptions per user -----------------------------------------------------------------------------

async def test_a_user_holds_at_most_the_per_user_number_of_subscriptions(services: Services, seeded: dict) -> None:
    alice, bob = seeded["users"]["alice"], seeded["users"]["bob"]
    for user in (alice, bob):  # one message each to replay: a subscription's first result means it is held
        await services.publisher.publish(AiMessage("r", "assistant", content="m"), [route_id(user["gid"], ai_action="chat")])

    async def opened(user: dict):  # noqa: ANN202
        async with services.sessions() as session:
            ctx = Context(None, None, services, await authenticate(session, user["token"]))  # type: ignore[arg-type]
        stream = await SCHEMA.subscribe(SUBSCRIBE, variable_values={"u": user["gid"], "after": "0-0"}, context_value=ctx)
        return stream, await anext(stream)  # type: ignore[arg-type]

    held = [await opened(alice) for _ in range(2)]
    assert [_messages(first) for _, first in held] == [[], []] and QUOTA.held(alice["id"]) == 2
    third, refused = await opened(alice)
    assert _messages(refused) == ["Too many subscriptions: at most 2 at once per user"]
    other, first = await opened(bob)  # another user is not affected
    assert _messages(first) == []
    for stream in [third, other, *(stream for stream, _ in held)]:
        await stream.aclose()  # type: ignore[union-attr]
    assert QUOTA.held(alice["id"]) == QUOTA.held(bob["id"]) == 0  # closing a subscription frees its place
    again, first = await opened(alice)
    assert _messages(first) == []
    await again.aclose()  # type: ignore[union-attr]


async def test_an_unexpected_error_reaches_the_client_masked_and_the_log_whole(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        result = await SCHEMA.execute("{ currentUser { id } }", context_value=object())  # its resolver breaks
    assert [error.message for error in result.errors or []] == [UNEXPECTED]
    assert "no attribute 'principal'" in caplog.text
