"""The GraphQL schema: queries, the `aiAction` mutation (inputs generated from the catalogue) and the
`aiCompletionResponse` subscription."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, MaxTokensLimiter, QueryDepthLimiter
from strawberry.schema.config import StrawberryConfig

from api.mutations import build_mutation
from core.errors import SwitchboardError
from api.queries import Query
from subscriptions.scalars import SCALAR_MAP
from subscriptions.schema import Subscription

__all__ = ["build_schema"]

UNEXPECTED = "Internal server error"


def _unexpected(error: GraphQLError) -> bool:
    """Mask everything but our own errors and GraphQL's (syntax, validation): never leak internals."""
    original = error.original_error
    return original is not None and not isinstance(original, SwitchboardError | GraphQLError)


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=build_mutation(),
        subscription=Subscription,
        extensions=[
            lambda: QueryDepthLimiter(max_depth=15),
            lambda: MaxTokensLimiter(max_token_count=10_000),
            lambda: MaskErrors(should_mask_error=_unexpected, error_message=UNEXPECTED),
        ],
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
    )
