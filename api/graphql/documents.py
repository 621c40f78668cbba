"""What a GraphQL document may cost before it runs, and the cache of parsed and validated documents.

Checked in this order, each before the next costs anything: the query text's length (before parsing), the
parser's token count (graphql-core's `max_tokens`), then the selections and aliases of the operation with
its fragments expanded (before validation, whose overlapping-fields rule is quadratic), then validation
(with the depth rule). Each failure is a GraphQL error; nothing is cached for a document that fails.

The cache keeps parsed documents and their validation errors per query text, bounded in entries and in
estimated bytes (a parsed document takes about 70 bytes per character of query text), so distinct large
queries cannot grow the process.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
)
from graphql.validation import ASTValidationRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

__all__ = ["DocumentLimits", "DocumentCache", "DocumentGuard"]

_BYTES_PER_CHAR = 80  # parsed AST (~70 bytes per character measured on dense documents) and the key itself


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    # GraphiQL's introspection query: 1,636 characters, 183 tokens, 240 selections; a chat subscription:
    # 375 characters, 59 tokens, 10 selections. At the limits a document costs tens of milliseconds.
    max_chars: int = 20_000
    max_tokens: int = 2_000
    max_selections: int = 300  # fields, fragment spreads and inline fragments, fragments expanded
    max_aliases: int = 50


@dataclass(slots=True)
class _Entry:
    document: DocumentNode
    errors: list[GraphQLError] | None = None  # None until validated


class DocumentCache:
    """LRU of parsed documents (and their validation errors) keyed by query text, bounded in entries and
    in estimated bytes. One per schema: the validation rules in force are the schema's."""

    def __init__(self, *, max_entries: int = 256, max_bytes: int = 16 << 20) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, query: str) -> _Entry | None:
        entry = self._entries.get(query)
        if entry is not None:
            self._entries.move_to_end(query)
        return entry

    def put(self, query: str, entry: _Entry) -> None:
        weight = len(query) * _BYTES_PER_CHAR
        if weight > self.max_bytes // 16 or query in self._entries:  # one large document never flushes the rest
            return
        self._entries[query] = entry
        self.bytes += weight
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            old, _ = self._entries.popitem(last=False)
            self.bytes -= len(old) * _BYTES_PER_CHAR


def _cost_error(document: DocumentNode, limits: DocumentLimits) -> GraphQLError | None:
    """Too many selections or aliases in some operation, fragments expanded; the walk stops at the limit
    (and is iterative: nesting is bounded by the selection limit, not by Python's stack)."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        selections = aliases = 0
        pending: list[tuple[SelectionSetNode | None, frozenset[str]]] = [(definition.selection_set, frozenset())]
        while pending:
            selection_set, seen = pending.pop()
            for node in selection_set.selections if selection_set else ():
                selections += 1
                if selections > limits.max_selections:
                    return GraphQLError(
                        f"Query is too complex: more than {limits.max_selections} fields with its fragments expanded"
                    )
                if isinstance(node, FieldNode):
                    aliases += node.alias is not None
                    if aliases > limits.max_aliases:
                        return GraphQLError(f"Query has too many aliases (maximum is {limits.max_aliases})")
                    pending.append((node.selection_set, seen))
                elif isinstance(node, InlineFragmentNode):
                    pending.append((node.selection_set, seen))
                elif isinstance(node, FragmentSpreadNode):
                    name = node.name.value
                    fragment = fragments.get(name)
                    if fragment is None:  # graphql-core's message; strawberry's depth rule fails on it (KeyError)
                        return GraphQLError(f"Unknown fragment '{name}'.", node)
                    if name not in seen:  # a cycle is validation's to report
                        pending.append((fragment.selection_set, seen | {name}))
    return None


class DocumentGuard(SchemaExtension):
    """Enforces `DocumentLimits`, adds `rules` to the validation rules (as strawberry's `AddValidationRules`
    does, but when validating: its operation hook would live as long as a subscription, ~1.5 KB each), and
    serves parsing and validation from a `DocumentCache` (pass it as a factory closing over one cache and
    one tuple of rules: `lambda: DocumentGuard(cache, rules=RULES)`; the cache is valid for one set of rules)."""

    def __init__(
        self, cache: DocumentCache, limits: DocumentLimits = DocumentLimits(), *, rules: tuple[type[ASTValidationRule], ...] = ()
    ) -> None:
        self.cache = cache
        self.limits = limits
        self.rules = rules
        self._entry: _Entry | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        query = context.query
        if query is not None and context.graphql_document is None:
            if len(query) > self.limits.max_chars:
                raise GraphQLError(f"Query is too large: {len(query)} characters (maximum is {self.limits.max_chars})")
            entry = self.cache.get(query)
            if entry is None:
                options: dict[str, Any] = {**context.parse_options, "max_tokens": self.limits.max_tokens}
                document = parse(query, **options)
                if error := _cost_error(document, self.limits):
                    raise error
                entry = _Entry(document)
            self._entry = entry
            context.graphql_document = entry.document
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        context.validation_rules = context.validation_rules + self.rules
        if self._entry is not None and context.pre_execution_errors is None and context.validation_rules:
            context.pre_execution_errors = self._validated(self._entry)
        yield

    def _validated(self, entry: _Entry) -> list[GraphQLError]:
        context = self.execution_context
        if entry.errors is None:
            try:
                errors = validate_document(context.schema._schema, entry.document, context.validation_rules)
            except Exception as exc:  # a rule's bug: an unexpected error (masked, logged), never cached
                return [GraphQLError(str(exc), original_error=exc)]
            entry.errors = errors
            self.cache.put(context.query or "", entry)
        return list(entry.errors)
