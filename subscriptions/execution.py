"""Faster GraphQL execution of subscription events, at two depths.

graphql-core executes every subscription event as a new query: it collects the selected subfields again and
resolves every field through the resolver machinery. For `aiCompletionResponse` that costs more than all of
the rest of delivering a message. This execution context keeps, per operation, the collected subfields
(variables do not change between events), and completes objects whose selection is made only of plain
fields (no arguments, no sub-selections, no resolvers) by reading the attributes directly and serializing
them with the fields' own leaf types — the same values the slow path produces.

Even so, strawberry's path per event (its stream, graphql-core's `map_async_iterable`, every extension's
hooks, the result's wrapping into a protocol message) costs several times the event's own rendering. A
websocket transport that can send an event's payload itself sets an `EventSink` (`EVENT_SINK`) for its
operation; a subscription whose selection `EventPlan.for_info` can render (plain fields, nested plain
objects, aliases, `__typename`; no fragments, directives or arguments) then hands each event's rendered data
to the sink and yields nothing, so strawberry sees one long-running event instead of one execution per
message. Any other selection, and every other transport, takes the path above.

A live operation also keeps strawberry's and graphql-core's state for as long as it runs (~10 KB: the
execution context, every extension's operation hook, the subscription's iterators), though a subscription
whose events are sent needs none of it after it started. A transport that can go on sending after the
operation's execution has ended says so (`EventSink(send, detachable=True)`): the subscription then hands
its event source to the sink (`EventSink.detach`) and ends its execution, and the transport runs the source
(`EventSink.run_detached`) in the operation's task before it completes the operation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, Protocol

from graphql import FieldNode, GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLResolveInfo, get_named_type
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

__all__ = ["EventExecutionContext", "EventPlan", "EventSink", "EventSource", "EVENT_SINK"]

# How to render an object from its attributes: (response key, attribute ("" for the object itself), leaf
# serializer or a nested object's plan, is a list).
_Fields = list[tuple[str, str, "Callable[[Any], Any] | _Fields", bool]]


class EventSource(Protocol):
    """A subscription's events, sent through a sink until cancelled; holds its place (hub, quota) until closed."""

    async def run(self) -> None: ...

    def close(self) -> None: ...  # idempotent, and valid when `run` never started


class EventSink:
    """Where a websocket transport takes a subscription's events for one operation: `send` sends one event's
    data (`{responseKey: {...}}`) as that protocol's next message. A `detachable` sink also takes the
    subscription's event source, to run it after the operation's execution ended (an error it raises is
    the transport's to report, as strawberry reports an error raised by a subscription's events)."""

    __slots__ = ("send", "_detachable", "_source")

    def __init__(self, send: Callable[[dict[str, Any]], Awaitable[None]], *, detachable: bool = False) -> None:
        self.send = send
        self._detachable = detachable
        self._source: EventSource | None = None

    def detach(self, source: EventSource) -> bool:
        """Take `source` to run it later (True), or leave it to the caller (False: not detachable)."""
        if self._detachable:
            self._source = source
        return self._detachable

    async def run_detached(self) -> None:
        """Run the detached source, if any, until it ends or is cancelled; closed either way."""
        source = self._source
        if source is not None:
            try:
                await source.run()
            finally:
                self.close()

    def close(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            source.close()


# Set by a websocket transport for the operation it runs (in the operation's own task, for it alone).
EVENT_SINK: ContextVar[EventSink | None] = ContextVar("event_sink", default=None)

_FAST_TYPES = frozenset({"AiMessage"})


def _plain_field(parent_type: GraphQLObjectType, name: str) -> tuple[str, Any] | None:
    """(attribute, GraphQL type) of a field that is read from its attribute as it is: no resolver, no
    extensions, no permissions."""
    field = parent_type.fields.get(name)
    definition = field.extensions.get("strawberry-definition") if field is not None else None
    if definition is None or definition.base_resolver is not None or definition.extensions or definition.permission_classes:
        return None
    return definition.python_name, field.type


def _is_list(field_type: Any) -> bool:
    return isinstance(field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type, GraphQLList)


def _typename(parent_type: GraphQLObjectType) -> Callable[[Any], str]:
    return lambda _: parent_type.name


def _leaf(parent_type: GraphQLObjectType, key: str, name: str) -> tuple[str, str, Callable[[Any], Any], bool] | None:
    """The plan entry of `__typename` or of a plain leaf field under response key `key`; None for any other."""
    if name == "__typename":
        return key, "", _typename(parent_type), False
    plain = _plain_field(parent_type, name)
    if plain is None:
        return None
    attribute, field_type = plain
    named = get_named_type(field_type)
    if isinstance(named, GraphQLObjectType):
        return None
    return key, attribute, named.serialize, _is_list(field_type)


def _leaf_plan(parent_type: GraphQLObjectType, grouped_field_set: dict[str, Any]) -> _Fields | None:
    plan: _Fields = []
    for response_name, details in grouped_field_set.items():
        node = details[0].node
        entry = None
        if len(details) == 1 and node.selection_set is None and not node.arguments:
            entry = _leaf(parent_type, response_name, node.name.value)
        if entry is None:
            return None
        plan.append(entry)
    return plan


def _selection_plan(parent_type: GraphQLObjectType, node: FieldNode) -> _Fields | None:
    """How to render `node`'s selection on `parent_type` from attributes alone, when it is made only of
    fields without arguments or directives (nested selections on plain object fields included)."""
    plan: _Fields = []
    for selection in node.selection_set.selections if node.selection_set else ():
        if not isinstance(selection, FieldNode) or selection.arguments or selection.directives:
            return None
        key, name = (selection.alias or selection.name).value, selection.name.value
        if any(planned[0] == key for planned in plan):
            return None  # the same key twice: graphql-core merges the two selections
        entry = _leaf(parent_type, key, name) if selection.selection_set is None else _nested(parent_type, key, selection)
        if entry is None:
            return None
        plan.append(entry)
    return plan or None


def _nested(parent_type: GraphQLObjectType, key: str, selection: FieldNode) -> tuple[str, str, _Fields, bool] | None:
    """The plan entry of a plain field holding one object (not a list), with its own plain selection."""
    plain = _plain_field(parent_type, selection.name.value)
    if plain is None:
        return None
    attribute, field_type = plain
    named = get_named_type(field_type)
    nested = _selection_plan(named, selection) if isinstance(named, GraphQLObjectType) else None
    return None if nested is None or _is_list(field_type) else (key, attribute, nested, False)


def _render(plan: _Fields, source: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, attribute, how, is_list in plan:
        value = getattr(source, attribute) if attribute else source
        if value is None:
            result[key] = None
        elif isinstance(how, list):
            result[key] = _render(how, value)
        elif is_list:
            result[key] = [how(item) for item in value]
        else:
            result[key] = how(value)
    return result


class EventPlan:
    """Renders a subscription event as graphql-core would (`{responseKey: {...}}`) for a plain selection."""

    __slots__ = ("_key", "_fields")

    def __init__(self, key: str, fields: _Fields) -> None:
        self._key = key
        self._fields = fields

    @classmethod
    def for_info(cls, info: GraphQLResolveInfo) -> EventPlan | None:
        """The plan of the subscription field `info` resolves, or None when its selection is not plain (a
        fragment, a directive, an argument, a field with a resolver, the same key twice)."""
        return_type = get_named_type(info.return_type)
        if len(info.field_nodes) != 1 or not isinstance(return_type, GraphQLObjectType):
            return None
        fields = _selection_plan(return_type, info.field_nodes[0])
        return cls(str(info.path.key), fields) if fields is not None else None

    def render(self, event: Any) -> dict[str, Any]:
        return {self._key: None if event is None else _render(self._fields, event)}


class EventExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Both caches are shared with the per-event copies of this executor (graphql-core copies it
        # shallowly) and keyed by the identity of nodes of this operation's document, which lives as long.
        self._subfields: dict[tuple[str, tuple[int, ...]], Any] = {}
        self._plans: dict[tuple[str, tuple[int, ...]], _Fields | None] = {}

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
        return _render(plan, source_value)
