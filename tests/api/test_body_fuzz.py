"""A property-based fuzz of what reaches `/api/graphql` over HTTP (the document fuzz is `test_fuzz.py`): any
body, and any variables for the real operations, get an answer below 500 and never a traceback or a log
record at error level. Bounded: a few hundred examples, no deadline.

More examples on demand: SWITCHBOARD_FUZZ_EXAMPLES=2000 make test PYTEST_ARGS=tests/api/test_body_fuzz.py
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.graphql.schema import UNEXPECTED
from api.services import Services

_EXAMPLES = int(os.environ.get("SWITCHBOARD_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=_EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

OPERATIONS = [
    "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors threadId } }",
    "query($id: AiModelID) { aiFeatures(resourceId: $id) { name } currentUser { username } }",
    "query($p: ID!) { project(fullPath: $p) { id } group(fullPath: $p) { id } }",
    "{ __typename }",
]
_TEXT = st.text(st.characters(codec=None, categories=None), max_size=40)  # lone surrogates included
_GIDS = st.sampled_from([
    "gid://gitlab/Issue/1", "gid://gitlab/Issue/9999999999999999999", "gid://gitlab/Issue/2147483648",
    "gid://gitlab/Project/1", "gid://gitlab/User/2", "gid://gitlab/Ai::Conversation::Thread/1", "Issue/1", "",
])
_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63, max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False), _TEXT, _GIDS,
)
_JSON = st.recursive(_LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(_TEXT, inner, max_size=4)), max_leaves=20)
_FEATURES = st.sampled_from(["chat", "explainCode", "summarizeComments", "generateDescription", "resolveVulnerability"])
_FIELDS = st.sampled_from(["resourceId", "content", "code", "currentFile", "additionalContext", "agentVersionId", "x"])
_ACTION_INPUT = st.dictionaries(
    st.one_of(_FEATURES, st.sampled_from(["clientSubscriptionId", "threadId", "projectId", "platformOrigin",
                                          "conversationType", "clientMutationId"])),
    st.one_of(st.dictionaries(_FIELDS, st.one_of(_JSON, _GIDS), max_size=4), _JSON),
    max_size=3,
)
_VARIABLES = st.one_of(
    st.fixed_dictionaries({"input": _ACTION_INPUT}),
    st.dictionaries(st.sampled_from(["input", "id", "p", "x"]), _JSON, max_size=3),
    _JSON,
)
_REQUEST = st.fixed_dictionaries(
    {"query": st.one_of(st.sampled_from(OPERATIONS), _TEXT, _JSON)},
    optional={"variables": _VARIABLES, "operationName": st.one_of(_TEXT, _JSON), "extensions": _JSON},
)


def _encoded(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=True).encode()  # lone surrogates as \ud800 escapes


BODIES = st.one_of(
    _REQUEST.map(_encoded),  # mostly well-formed requests with hostile values
    _REQUEST.map(_encoded),
    _JSON.map(_encoded),  # any JSON
    st.binary(max_size=200),  # any bytes
    _REQUEST.map(_encoded).flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n])),  # cut short
)
_CONTENT_TYPES = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", "application/graphql+json"])


@pytest.fixture
async def http(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services.settings)
    app.state.services = services
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://switchboard") as client:
        yield client


@FUZZ
@given(body=BODIES, content_type=_CONTENT_TYPES, user=st.sampled_from(["alice", "mallory", None]))
async def test_no_body_gets_a_server_error_or_a_traceback(
    http: httpx.AsyncClient, seeded: dict, caplog: pytest.LogCaptureFixture, body: bytes, content_type: str, user: str | None
) -> None:
    caplog.clear()
    headers = {"content-type": content_type}
    if user is not None:
        headers["authorization"] = f"Bearer {seeded['users'][user]['token']}"
    with caplog.at_level(logging.INFO):
        response = await http.post("/api/graphql", content=body, headers=headers)
    assert response.status_code < 500, (body, response.status_code, response.text)
    answer = response.json()
    messages = [error.get("message") for error in answer.get("errors") or []]
    assert UNEXPECTED not in messages, (body, messages)
    assert "Traceback" not in caplog.text, body
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], (body, caplog.text)
