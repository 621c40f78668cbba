"""A faster GraphQL execution of subscription events.

graphql-core executes every subscription event as a new query: it collects the selected subfields again and
resolves every field through the resolver machinery. For `aiCompletionResponse` that costs more than all of
the rest of delivering a message. This execution context keeps, per operation, the collected subfields
(variables do not change between events), and completes objects whose selection is made only of plain
fields (no arguments, no sub-selections, no resolvers) by reading the attributes directly and serializing
them with the fields' own leaf types — the same values the slow path produces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, get_named_type
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

__all__ = ["EventExecutionContext"]

# (response key, attribute, serializer, is a list); None where a field needs the full path.
_Plan = list[tuple[str, str, Callable[[Any], Any] | None, bool]]
_FAST_TYPES = frozenset({"AiMessage"})


def _leaf_plan(parent_type: GraphQLObjectType, grouped_field_set: dict[str, Any]) -> _Plan | None:
    plan: _Plan = []
    for response_name, details in grouped_field_set.items():
        node = details[0].node
        name = node.name.value
        if len(details) != 1 or node.selection_set is not None or node.arguments:
            return None
        if name == "__typename":
            plan.append((response_name, "", lambda _: parent_type.name, False))
            continue
        field = parent_type.fields.get(name)
        definition = field.extensions.get("strawberry-definition") if field is not None else None
        if definition is None or definition.base_resolver is not None or definition.extensions or definition.permission_classes:
            return None
        field_type = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
        is_list = isinstance(field_type, GraphQLList)
        plan.append((response_name, definition.python_name, get_named_type(field.type).serialize, is_list))
    return plan


class EventExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Both caches are shared with the per-event copies of this executor (graphql-core copies it
        # shallowly) and keyed by the identity of nodes of this operation's document, which lives as long.
        self._subfields: dict[tuple[str, tuple[int, ...]], Any] = {}
        self._plans: dict[tuple[str, tuple[int, ...]], _Plan | None] = {}

    def collect_subfields(self, return_type: GraphQLObjectType, field_details_list: Any) -> Any:
        key = (return_type.name, tuple(id(details.node) for details in field_details_list))
        cached = self._subfields.get(key)
        if cached is None:
            cached = self._subfields[key] = super().collect_subfields(return_type, field_details_list)
        return cached

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Any,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        key = (parent_type.name, tuple(id(details[0].node) for details in grouped_field_set.values()))
        if key in self._plans:
            plan = self._plans[key]
        else:
            plan = _leaf_plan(parent_type, grouped_field_set) if parent_type.name in _FAST_TYPES else None
            self._plans[key] = plan
        if plan is None:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        result: dict[str, Any] = {}
        for response_name, attribute, serialize, is_list in plan:
            value = getattr(source_value, attribute) if attribute else source_value
            if value is None or serialize is None:
                result[response_name] = None
            elif is_list:
                result[response_name] = [serialize(item) for item in value]
            else:
                result[response_name] = serialize(value)
        return result

