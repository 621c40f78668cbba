"""The GraphQL schema: queries, the `aiAction` mutation (inputs generated from the catalogue), chat conversations
(`api.graphql.chat`), model selection (`api.graphql.model_selection`, `api.graphql.instance_models`), guarded
migrations (`api.graphql.rollouts`) and the
`aiCompletionResponse` subscription."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.extensions.query_depth_limiter import create_validator
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from api.graphql.cancel import CancelMutation
from api.graphql.chat import ChatMutation, ChatQuery
from api.graphql.chat_resources import ChatResourcesQuery
from api.graphql.documents import DocumentCache, DocumentGuard
from api.graphql.instance_models import (
    InstanceSelectionMutation,
    InstanceSelectionQuery,
)
from api.graphql.model_selection import (
    NamespaceSelectionMutation,
    NamespaceSelectionQuery,
)
from api.graphql.mutations import Refusals, build_mutation
from api.graphql.queries import Query
from api.graphql.rollouts import RolloutMutation, RolloutQuery
from core.errors import SwitchboardError
from subscriptions.execution import EventExecutionContext
from subscriptions.scalars import SCALAR_MAP
from subscriptions.schema import Subscription

__all__ = ["build_schema"]

UNEXPECTED = "Internal server error"
# One rule class for the life of the process: the validation cache is keyed by the rules in force.
_DEPTH_LIMIT = create_validator(max_depth=15, should_ignore=None)


def _unexpected(error: GraphQLError) -> bool:
    """Mask everything but our own errors and GraphQL's (syntax, validation): never leak internals."""
    original = error.original_error
    return original is not None and not isinstance(original, SwitchboardError | GraphQLError)


class _MaskErrors(MaskErrors):
    """strawberry's error masking, with its test of each result made cheap: it asks `isinstance()` against a
    runtime-checkable Protocol (~8 µs, for every subscription event: 7 % of a web process delivering chunks);
    reading the attribute answers the same question. Overrides `MaskErrors._process_result` (strawberry is
    pinned in pyproject.toml)."""

    def _process_result(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]


class _Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Log unexpected errors only: expected ones are answers to the client, and their messages may
        quote user input, which is not logged."""
        super().process_errors([e for e in errors if _unexpected(e)], execution_context)

    def reported_error(self, exc: Exception) -> GraphQLError:
        """The error a client is sent for `exc`, raised by a subscription's events outside an execution:
        logged and masked as an execution's error would be."""
        error = GraphQLError(str(exc), original_error=exc)
        self.process_errors([error])
        return GraphQLError(UNEXPECTED) if _unexpected(error) else error


def build_schema() -> strawberry.Schema:
    documents = DocumentCache()
    return _Schema(
        query=merge_types("Query", (Query, NamespaceSelectionQuery, InstanceSelectionQuery, RolloutQuery, ChatQuery, ChatResourcesQuery)),
        mutation=merge_types("Mutation", (build_mutation(), CancelMutation, NamespaceSelectionMutation, InstanceSelectionMutation,
                                                   RolloutMutation, ChatMutation)),
        subscription=Subscription,
        extensions=[
            # Size and cost limits before parsing and validation cost anything; frontends send the same few
            # documents over and over, so each is parsed and validated once (a cache bounded in bytes).
            # (with the depth rule: one rule class for the life of the process, as the cache needs)
            lambda: DocumentGuard(documents, rules=(_DEPTH_LIMIT,)),
            lambda: _MaskErrors(should_mask_error=_unexpected, error_message=UNEXPECTED),
            Refusals,  # why aiAction said "AI features are not enabled ...": extensions.refusals
        ],
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        execution_context_class=EventExecutionContext,
    )
