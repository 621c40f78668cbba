"""GitLab's GraphQL scalars. IDs travel as strings; resolvers parse them with the argument's name so that
a bad ID is an error naming the argument (`core.ids.GlobalID.parse`). `SCALAR_MAP` goes into the schema's
`StrawberryConfig`."""

from __future__ import annotations

from datetime import datetime
from typing import NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

__all__ = [
    "UserID", "AiModelID", "ProjectID", "AiConversationThreadID", "NamespaceID", "AiSelfHostedModelID", "Time", "SCALAR_MAP",
]

UserID = NewType("UserID", str)
AiModelID = NewType("AiModelID", str)
ProjectID = NewType("ProjectID", str)
AiConversationThreadID = NewType("AiConversationThreadID", str)
NamespaceID = NewType("NamespaceID", str)
AiSelfHostedModelID = NewType("AiSelfHostedModelID", str)
Time = NewType("Time", str)


def _as_text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def _id(name: str, description: str) -> ScalarDefinition:
    return strawberry.scalar(name=name, description=description, serialize=str, parse_value=_as_text)


SCALAR_MAP: dict[object, ScalarDefinition] = {
    UserID: _id("UserID", "A `UserID` is a global ID: `gid://gitlab/User/1`."),
    AiModelID: _id("AiModelID", "A global ID of a resource an AI action can be about, e.g. `gid://gitlab/Issue/1`."),
    ProjectID: _id("ProjectID", "A `ProjectID` is a global ID: `gid://gitlab/Project/1`."),
    AiConversationThreadID: _id(
        "AiConversationThreadID", "A global ID of a chat thread: `gid://gitlab/Ai::Conversation::Thread/1`."
    ),
    NamespaceID: _id("NamespaceID", "A namespace's global ID: `gid://gitlab/Group/1` (or `gid://gitlab/Namespace/1`)."),
    AiSelfHostedModelID: _id("AiSelfHostedModelID", "A self-hosted model's global ID: `gid://gitlab/Ai::SelfHostedModel/1`."),
    Time: strawberry.scalar(
        name="Time",
        description="Time represented in ISO 8601.",
        serialize=lambda value: value.isoformat() if isinstance(value, datetime) else str(value),
        parse_value=_as_text,
    ),
}
