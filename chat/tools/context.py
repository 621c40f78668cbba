"""What a tool handler is given (`ToolContext`) and gives back (`ToolResult`), and the one cap on what the
model reads from a tool."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from access.checks import Gate
from access.tokens import Principal
from catalogue.tools import Tool
from core.ids import GlobalID

if TYPE_CHECKING:
    from chat.tools.documentation import DocumentationIndex

__all__ = ["MAX_RESULT_CHARS", "Handler", "Reader", "Search", "ToolContext", "ToolResult", "capped", "failed"]

# About 10,000 tokens: what one tool call may add to the agent's prompt.
MAX_RESULT_CHARS = 40_000
_CUT = "\n[… cut: the result is longer than {limit} characters]"


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Who asks, from where, and the process's resources a tool reads through."""

    sessions: async_sessionmaker[AsyncSession]
    principal: Principal  # the asking user
    gate: Gate  # flags, entitlement cache, mode
    resource: GlobalID | None  # the page's resource (the reference "current")
    project: GlobalID | None  # aiAction's projectId: relative references when `resource` is absent
    docs: DocumentationIndex  # built once per worker process


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What the model reads (`content`, at most `MAX_RESULT_CHARS`), whether the tool did its job, and the
    items it read (`{title, url, type}`; only items the user can read)."""

    content: str
    status: Literal["FINISHED", "FAILED"]
    sources: tuple[dict[str, str], ...] = ()


# A reader is given the session of the tool call (`chat.tools.run_tool` checked the seats through it); a
# search reads no database and is given none: it runs after that session is closed, so that a call never
# holds a pooled connection while it waits on something else.
Reader = Callable[[ToolContext, AsyncSession, Tool, Mapping[str, object]], Awaitable[ToolResult]]
Search = Callable[[ToolContext, Tool, Mapping[str, object]], Awaitable[ToolResult]]
Handler = Reader | Search


def capped(text: str, limit: int = MAX_RESULT_CHARS) -> str:
    """`text` cut to `limit` characters (the marker included), marked as cut when it was longer."""
    if len(text) <= limit:
        return text
    marker = _CUT.format(limit=limit)
    return text[: max(0, limit - len(marker))] + marker


def failed(reason: str) -> ToolResult:
    return ToolResult(capped(reason), "FAILED")
