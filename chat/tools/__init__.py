"""The chat agent's tools (SPEC §13.3): declared in `catalogue.tools`, run here.

The agent loop (`worker.agent`) offers `available_tools(catalogue, primitives)` to the model, announces
each call with `progress_text`, and runs it with `run_tool`, which owns every check of a call:
1. the arguments fit the tool's input schema, else FAILED with a short reason the model can act on;
2. a seat of the user bundles the tool's unit primitive, else FAILED with GitLab's M3005 text;
3. the handler: a reader (`chat.tools.readers`), given the call's one database session (that of check 2),
   reads only an item the user may read, with Duo enabled where it lives (else M3003, with nothing of the
   item); a search, given no session and run once it is closed (no pooled connection is held while it
   waits), such as `documentation_search` (`chat.tools.documentation`) of the documentation index.
Results are capped at `MAX_RESULT_CHARS`. Adding a tool: one `Tool` in `catalogue/tools.py`, one handler
in `READERS` or `SEARCHES`, one test.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType

from catalogue import Catalogue, Tool
from chat.tools.context import MAX_RESULT_CHARS, Handler, Reader, Search, ToolContext, ToolResult, capped, failed
from chat.tools.documentation import DocumentationIndex, Passage, default_paths, search_documentation
from chat.tools.readers import read_epic, read_issue, read_merge_request, read_vulnerability
from chat.tools.references import BadReference, Reference, parse_reference
from core.errors import TOOL_NOT_IN_SUBSCRIPTION

__all__ = [
    "HANDLERS",
    "MAX_RESULT_CHARS",
    "BadReference",
    "DocumentationIndex",
    "Handler",
    "Passage",
    "READERS",
    "Reader",
    "Reference",
    "SEARCHES",
    "Search",
    "ToolContext",
    "ToolResult",
    "available_tools",
    "check_handlers",
    "default_paths",
    "parse_reference",
    "progress_text",
    "run_tool",
]

logger = logging.getLogger(__name__)

READERS: Mapping[str, Reader] = MappingProxyType({
    "read_issue": read_issue,
    "read_merge_request": read_merge_request,
    "read_epic": read_epic,
    "read_vulnerability": read_vulnerability,
})
SEARCHES: Mapping[str, Search] = MappingProxyType({"search_documentation": search_documentation})
HANDLERS: Mapping[str, Handler] = MappingProxyType({**READERS, **SEARCHES})
_SHOWN_CHARS = 100  # of an argument, in a progress text


def check_handlers(catalogue: Catalogue) -> list[str]:
    """The catalogue's tools without a handler, and the handlers no tool uses (empty when they match)."""
    used = {tool.handler for tool in catalogue.tools.values()}
    problems = [
        f"tool {tool.name!r}: handler {tool.handler!r} is not in chat.tools.HANDLERS"
        for tool in catalogue.tools.values()
        if tool.handler not in HANDLERS
    ]
    problems += [f"handler {name!r} of chat.tools.HANDLERS is used by no tool" for name in HANDLERS if name not in used]
    return problems


def available_tools(catalogue: Catalogue, primitives: frozenset[str]) -> tuple[Tool, ...]:
    """The tools whose unit primitive the user's seats bundle (`access.checks.Gate.unit_primitives`), in
    catalogue order."""
    return tuple(tool for tool in catalogue.tools.values() if tool.unit_primitive in primitives)


def progress_text(tool: Tool, arguments: Mapping[str, object]) -> str:
    """The human line of a tool call's progress message: `Reading issue gitlab-duo/test#1`, `Reading the
    current issue`, `Searching the documentation for "redis"`."""
    reference, query = arguments.get("reference"), arguments.get("query")
    if isinstance(reference, str):
        shown = _shortened(reference)
        if shown.lower() == "current":
            return f"Reading the current {tool.resource_noun}"
        return f"Reading {tool.resource_noun} {shown}"
    if isinstance(query, str):
        return f'Searching the {tool.resource_noun} for "{_shortened(query)}"'
    return f"Using {tool.name}"


async def run_tool(context: ToolContext, tool: Tool, arguments: Mapping[str, object]) -> ToolResult:
    """Run one call of `tool` for the user of `context`, with every check of the call (see the module)."""
    problem = tool.argument_error(arguments)
    if problem is not None:
        return failed(f"Invalid input for {tool.name}: {problem}.")
    reader, search = READERS.get(tool.handler), SEARCHES.get(tool.handler)
    if reader is None and search is None:  # check_handlers keeps the catalogue from shipping this
        logger.error("tool %s has no handler %r", tool.name, tool.handler)
        return failed(f"The tool {tool.name} is not available.")
    async with context.sessions() as session:  # one for the call: the seats' check and a reader's reads
        if tool.unit_primitive not in await context.gate.unit_primitives(session, context.principal):
            logger.info("tool_not_entitled", extra={"tool": tool.name, "user_id": context.principal.user_id})
            return failed(TOOL_NOT_IN_SUBSCRIPTION)
        if reader is not None:
            return _capped(await reader(context, session, tool, arguments))
    assert search is not None  # one of the two, checked above
    return _capped(await search(context, tool, arguments))


def _capped(result: ToolResult) -> ToolResult:
    return ToolResult(capped(result.content), result.status, result.sources)


def _shortened(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _SHOWN_CHARS else flat[: _SHOWN_CHARS - 1] + "…"
