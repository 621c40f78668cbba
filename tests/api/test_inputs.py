"""The catalogue-generated inputs beyond strings: chat's `currentFile` and `additionalContext` (GitLab's
input objects) and booleans, through the real schema; what the job carries."""

from __future__ import annotations

import pickle

import pytest

from access.tokens import authenticate
from api.graphql.context import Context
from api.graphql.schema import build_schema
from api.services import Services
from core import keys
from core.actions import ActionRecord


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:
    """SQLite only (overrides the backend-parametrized fixture): what these tests check does not depend on
    the database, and PostgreSQL is covered by the access and pipeline tests."""
    return sqlite_database_url


ACTION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors } }"
SCHEMA = build_schema()


async def run(services: Services, token: str, input: dict) -> tuple[dict | None, list[str]]:
    async with services.sessions() as session:
        principal = await authenticate(session, token)
    result = await SCHEMA.execute(
        ACTION, variable_values={"input": input}, context_value=Context(None, None, services, principal)  # type: ignore[arg-type]
    )
    return result.data, [error.message for error in result.errors or []]


async def enqueued(services: Services) -> list[ActionRecord]:
    records = []
    for job_id in await services.redis.zrange(keys.QUEUE, 0, -1):
        job = await services.redis.get(f"arq:job:{job_id.decode()}")  # arq pickles {"a": args, ...}
        records.append(ActionRecord.model_validate_json(pickle.loads(job)["a"][0]))
    return records


async def test_chat_carries_the_current_file_and_additional_context(services: Services, seeded: dict) -> None:
    data, errors = await run(services, seeded["users"]["alice"]["token"], {"chat": {
        "content": "What does this do?",
        "currentFile": {"fileName": "app/search.py", "selectedText": "cursor.execute(q)"},
        "additionalContext": [{"category": "SNIPPET", "id": "s1", "content": "def f(): pass", "metadata": {"lang": "py"}}],
    }})
    assert errors == [] and data["aiAction"]["errors"] == []
    (record,) = await enqueued(services)
    assert record.inputs == {
        "content": "What does this do?",
        "current_file": {"file_name": "app/search.py", "selected_text": "cursor.execute(q)",
                         "content_above_cursor": None, "content_below_cursor": None},
        "additional_context": [{"category": "snippet", "id": "s1", "content": "def f(): pass", "metadata": {"lang": "py"}}],
    }


async def test_a_boolean_input(services: Services, seeded: dict) -> None:
    _, errors = await run(services, seeded["users"]["alice"]["token"], {
        "explainVulnerability": {"resourceId": seeded["resources"]["vulnerability"], "includeSourceCode": True}
    })
    assert errors == []
    (record,) = await enqueued(services)
    assert record.inputs == {"include_source_code": True}


@pytest.mark.parametrize(
    ("chat", "expected"),
    [
        pytest.param({"currentFile": {"fileName": "a.py", "selectedText": "x" * 400_001}},
                     "chat.currentFile: is too long (maximum is 400000 characters)", id="current-file-too-long"),
        pytest.param({"additionalContext": [{"category": "FILE", "id": "f", "content": "x" * 400_001}]},
                     "chat.additionalContext: is too long (maximum is 400000 characters)", id="context-too-long"),
        pytest.param({"additionalContext": [{"category": "FILE", "id": str(i), "content": ""} for i in range(101)]},
                     "chat.additionalContext: has too many items (maximum is 100)", id="too-many-items"),
        pytest.param({"additionalContext": [{"category": "FILE", "id": "f", "content": "", "metadata": [1]}]},
                     "chat.additionalContext.metadata: must be an object", id="metadata-not-an-object"),
    ],
)
async def test_object_inputs_are_validated_and_nothing_is_enqueued(services: Services, seeded: dict, chat: dict, expected: str) -> None:
    _, errors = await run(services, seeded["users"]["alice"]["token"], {"chat": {"content": "hi", **chat}})
    assert errors == [expected]
    assert await services.redis.zcard(keys.QUEUE) == 0


def test_internal_features_are_not_in_ai_action() -> None:
    sdl = str(SCHEMA)
    assert "categorizeQuestion" not in sdl and "AiCategorizeQuestionInput" not in sdl
    assert "currentFile: AiCurrentFileInput" in sdl and "additionalContext: [AiAdditionalContextInput!]" in sdl
