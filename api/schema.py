"""The GraphQL schema: queries, the `aiAction` mutation (inputs generated from the catalogue) and the
`aiCompletionResponse` subscription."""

from __future__ import annotations

import strawberry
from strawberry.extensions import MaxTokensLimiter, QueryDepthLimiter
from strawberry.schema.config import StrawberryConfig

from api.mutations import build_mutation
from api.queries import Query
from subscriptions.scalars import SCALAR_MAP
from subscriptions.schema import Subscription

__all__ = ["build_schema"]


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=build_mutation(),
        subscription=Subscription,
        extensions=[lambda: QueryDepthLimiter(max_depth=15), lambda: MaxTokensLimiter(max_token_count=10_000)],
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
    )
