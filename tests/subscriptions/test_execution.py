"""The fast execution of subscription events gives exactly what graphql-core's own execution gives."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest
import strawberry
from strawberry.schema.config import StrawberryConfig

from subscriptions.execution import EventExecutionContext
from subscriptions.messages import AiMessage
from subscriptions.scalars import SCALAR_MAP
from subscriptions.schema import AiMessageType

MESSAGES = [
    AiMessage("r1", "assistant", content=" word", chunk_id=3, cursor="1-0"),
    AiMessage("r1", "assistant", content="all", content_html="<p>all</p>", cursor="1-1", extras={"sources": [{"title": "x"}]}),
    AiMessage("r2", "user", content="hi", errors=("e1", "e2"), thread_id="gid://gitlab/Ai::Conversation::Thread/1"),
]


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ai_completion_response(self, client_subscription_id: str | None = None) -> AsyncGenerator[AiMessageType, None]:
        for message in MESSAGES:
            yield AiMessageType.from_model(message)


def schema(execution_context_class: type | None) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query, subscription=Subscription, config=StrawberryConfig(scalar_map=SCALAR_MAP),
        execution_context_class=execution_context_class,
    )


async def results(s: strawberry.Schema, query: str, variables: dict) -> list:
    return [(r.data, r.errors) async for r in await s.subscribe(query, variable_values=variables)]


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        pytest.param("subscription { aiCompletionResponse { id requestId content contentHtml role chunkId errors cursor timestamp threadId type } }", {}, id="every-leaf"),
        pytest.param("subscription { aiCompletionResponse { __typename c: content r: role } }", {}, id="aliases-typename"),
        pytest.param("subscription { aiCompletionResponse { content extras { sources hasFeedback } } }", {}, id="nested-object"),
        pytest.param("subscription { aiCompletionResponse { ...F } } fragment F on AiMessage { content chunkId }", {}, id="fragment"),
        pytest.param("subscription($x: Boolean!) { aiCompletionResponse { content chunkId @include(if: $x) errors @skip(if: $x) } }", {"x": True}, id="directives-on"),
        pytest.param("subscription($x: Boolean!) { aiCompletionResponse { content chunkId @include(if: $x) errors @skip(if: $x) } }", {"x": False}, id="directives-off"),
        pytest.param("subscription { aiCompletionResponse { content content } }", {}, id="repeated-field"),
    ],
)
async def test_the_fast_path_matches_graphql_core(query: str, variables: dict) -> None:
    expected = await results(schema(None), query, variables)
    assert all(errors is None for _, errors in expected)
    assert await results(schema(EventExecutionContext), query, variables) == expected
