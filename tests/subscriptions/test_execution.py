"""The fast execution of subscription events, and the rendering of a plain selection for a transport that
sends events itself, give exactly what graphql-core's own execution gives."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest
import strawberry
from strawberry.schema.config import StrawberryConfig

from subscriptions.execution import EventExecutionContext, EventPlan
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


PLANS: list[EventPlan | None] = []  # the plan of each subscription started, as the resolver saw it


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ai_completion_response(
        self, info: strawberry.Info, client_subscription_id: str | None = None
    ) -> AsyncGenerator[AiMessageType, None]:
        PLANS.append(EventPlan.for_info(info._raw_info))
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


PLAIN = "id requestId content contentHtml role chunkId errors cursor timestamp threadId type"


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(f"subscription {{ aiCompletionResponse {{ {PLAIN} }} }}", id="every-leaf"),
        pytest.param("subscription { a: aiCompletionResponse { __typename c: content r: role } }", id="aliases-typename"),
        pytest.param(f"subscription {{ aiCompletionResponse {{ {PLAIN} extras {{ sources hasFeedback toolCalls cancelled }} }} }}",
                     id="chat-page"),
        pytest.param("subscription { aiCompletionResponse { content x: extras { __typename s: sources } } }", id="nested-aliases"),
    ],
)
async def test_a_plain_selection_renders_what_graphql_core_executes(query: str) -> None:
    expected = await results(schema(None), query, {})
    assert all(errors is None for _, errors in expected)
    plan = PLANS[-1]
    assert plan is not None
    assert [plan.render(AiMessageType.from_model(message)) for message in MESSAGES] == [data for data, _ in expected]


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        pytest.param("subscription { aiCompletionResponse { ...F } } fragment F on AiMessage { content chunkId }", {}, id="fragment"),
        pytest.param("subscription { aiCompletionResponse { ... on AiMessage { content } } }", {}, id="inline-fragment"),
        pytest.param("subscription($x: Boolean!) { aiCompletionResponse { content chunkId @include(if: $x) } }", {"x": True},
                     id="directive"),
        pytest.param("subscription { aiCompletionResponse { content content } }", {}, id="repeated-field"),
        pytest.param("subscription { aiCompletionResponse { content extras { sources } extras { hasFeedback } } }", {},
                     id="repeated-object"),
    ],
)
async def test_any_other_selection_has_no_plan_and_takes_the_full_execution(query: str, variables: dict) -> None:
    expected = await results(schema(EventExecutionContext), query, variables)
    assert expected and all(errors is None for _, errors in expected)
    assert PLANS[-1] is None
