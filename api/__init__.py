"""The web process: the Starlette app (`app`), its long-lived services (`services`), authentication of
requests (`auth`), GraphQL (`graphql/`), plain HTTP endpoints (`rest/`) and pages (`pages/`)."""

__all__: list[str] = []
