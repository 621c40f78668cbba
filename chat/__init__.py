"""Duo Chat (SPEC §13): conversations (threads and messages in the database, the history a prompt sees),
slash commands, and the tools of the chat agent. The agent loop itself runs in `worker.agent`."""

__all__: list[str] = []  # the modules are imported by name: chat.conversations, chat.history, ...
