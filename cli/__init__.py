"""The `switchboard` command (SPEC §3): `cli.main` builds the parser; one module per command group."""

__all__: list[str] = []
