"""The catalogue-generated inputs beyond strings: chat's `currentFile` and `additionalContext` (GitLab's
input objects) and booleans, through the real schema; what the job carries."""

from __future__ import annotations

import dataclasses
import pickle
from functools import partial

import pytest
from graphql import coerce_input_value
from strawberry.types.arguments import convert_argument
from strawberry.types.base import StrawberryContainer, get_object_definition

from access.tokens import authenticate
from api.graphql.context import Context
from api.graphql.inputs import InputConverter
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


# Inputs of every shape AiActionInput holds: each feature, object and list fields, enums, nulls, omissions.
CONVERTED = [
    {"chat": {"content": "x", "currentFile": {"fileName": "a", "selectedText": "b", "contentAboveCursor": None},
              "additionalContext": [{"category": "SNIPPET", "id": "s", "content": "c", "metadata": {"a": [1, {"b": None}]}},
                                    {"category": "FILE", "id": "f", "content": ""}]},
     "conversationType": "DUO_CHAT", "threadId": "gid://gitlab/Ai::Conversation::Thread/3", "clientMutationId": "m",
     "platformOrigin": None},
    {"chat": {"content": "x", "resourceId": "gid://gitlab/Issue/1", "additionalContext": []}},
    {"explainCode": {"resourceId": "gid://gitlab/Issue/1", "code": "x"}, "clientSubscriptionId": "c",
     "projectId": "gid://gitlab/Project/1"},
    {"explainVulnerability": {"resourceId": "gid://gitlab/Vulnerability/1", "includeSourceCode": False}},
    {"summarizeComments": {"resourceId": "gid://gitlab/Issue/1"}, "explainCode": None},
    {},
]


@pytest.mark.parametrize("value", CONVERTED)
def test_the_planned_conversion_builds_what_strawberrys_generic_one_does(value: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    (field,) = [f for f in SCHEMA.mutation.__strawberry_definition__.fields if f.python_name == "ai_action"]
    coerced = coerce_input_value(value, SCHEMA._schema.get_type("AiActionInput"))
    convert = partial(convert_argument, coerced, field.arguments[0].type, SCHEMA.schema_converter.scalar_registry, SCHEMA.config)
    planned = convert()
    for type_ in _input_types(field.arguments[0].type):  # strawberry's generic conversion
        definition = get_object_definition(type_, strict=True)
        assert isinstance(definition.from_input, InputConverter)
        monkeypatch.setattr(definition, "from_input", None)
    generic = convert()
    assert planned == generic
    assert _types_of(planned) == _types_of(generic)


def _input_types(type_: object) -> list[type]:
    while isinstance(type_, StrawberryContainer):
        type_ = type_.of_type
    definition = get_object_definition(type_)
    if definition is None or not definition.is_input:
        return []
    return [type_] + [nested for field in definition.fields for nested in _input_types(field.type)]  # type: ignore[list-item]


def _types_of(value: object) -> object:
    """`value`'s structure with the type of every part (dataclass equality alone does not compare types)."""
    if dataclasses.is_dataclass(value):
        return (type(value), {name: _types_of(item) for name, item in vars(value).items()})
    if isinstance(value, list | dict):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        return (type(value), {key: _types_of(item) for key, item in items})
    return (type(value), value)
