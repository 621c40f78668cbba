"""Response messages and their routes (`messages`), publishing and replay on Redis streams (`streams`), the
per-process fan-out hub (`hub`) and the `aiCompletionResponse` subscription (`schema`)."""

__all__: list[str] = []
