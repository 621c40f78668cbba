"""The database writes an operator makes, shared by the CLI and GraphQL: accounts and tokens, groups and
projects with memberships and Duo settings, add-ons and seats, model selection settings, and the demo seed."""

__all__: list[str] = []
