"""The GraphQL API (SPEC §5): schema, context, queries, mutations and their types."""

__all__: list[str] = []
