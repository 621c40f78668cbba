"""GitLab's GraphQL scalars. IDs travel as strings; resolvers parse them with the argument's name so that
a bad ID is an error naming the argument (`core.ids.GlobalID.parse`)."""

from __future__ import annotations

from datetime import datetime
from typing import NewType

import strawberry

__all__ = ["UserID", "AiModelID", "ProjectID", "AiConversationThreadID", "Time"]


def _id_scalar(name: str, description: str) -> object:
    return strawberry.scalar(
        NewType(name, str),
        name=name,
        description=description,
        serialize=str,
        parse_value=lambda value: value if isinstance(value, str) else str(value),
    )


UserID = _id_scalar("UserID", "A `UserID` is a global ID: `gid://gitlab/User/1`.")
AiModelID = _id_scalar("AiModelID", "A global ID of a resource an AI action can be about, e.g. `gid://gitlab/Issue/1`.")
ProjectID = _id_scalar("ProjectID", "A `ProjectID` is a global ID: `gid://gitlab/Project/1`.")
AiConversationThreadID = _id_scalar(
    "AiConversationThreadID", "A global ID of a chat thread: `gid://gitlab/Ai::Conversation::Thread/1`."
)
Time = strawberry.scalar(
    NewType("Time", str),
    name="Time",
    description="Time represented in ISO 8601.",
    serialize=lambda value: value.isoformat() if isinstance(value, datetime) else str(value),
    parse_value=str,
)
