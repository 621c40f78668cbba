"""The arq worker process (`process`), its job (`jobs`), the completion pipeline (`pipeline`), what prompts
are given (`prompt_variables`), provider clients (`llm/`) and the worker's monitor and `switchboard check`."""

__all__: list[str] = []
