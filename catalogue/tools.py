"""The chat agent's tools (SPEC §13.3), declared as data: what the model reads about each tool (name,
description, the JSON schema of its input), the unit primitive a seat must bundle to use it, the noun its
progress messages name, and the name of its handler in `chat.tools` (the catalogue cannot import `chat`;
`chat.tools.check_handlers` ties the two together and a test runs it).

Input schemas use a small subset of JSON Schema, which `Tool.argument_error` checks completely: an object
with `properties` (each of type `string`, `integer` or `boolean`; strings may set `minLength` and
`maxLength`), `required`, and `additionalProperties: false`. `catalogue.validation` refuses anything else.

The readers' descriptions follow GitLab's: a reader reads one item the user referred to and never searches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PROPERTY_KEYWORDS", "PROPERTY_TYPES", "SCHEMA_KEYWORDS", "TOOL_LIST", "Tool"]

# What a schema and each of its properties may say (everything `Tool.argument_error` enforces).
SCHEMA_KEYWORDS = frozenset({"type", "properties", "required", "additionalProperties", "description"})
PROPERTY_KEYWORDS = frozenset({"type", "description", "minLength", "maxLength"})
PROPERTY_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "boolean": (bool,)}


class Tool(BaseModel):
    """One tool the chat agent may call."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    description: str = Field(min_length=1)
    input_schema: dict[str, Any]
    unit_primitive: str
    resource_noun: str  # "issue": progress texts ("Reading issue gitlab-duo/test#1")
    handler: str  # a key of `chat.tools.HANDLERS`

    def __hash__(self) -> int:  # the schema is a dict; a tool is known by its name
        return hash(self.name)

    def argument_error(self, arguments: Mapping[str, object]) -> str | None:
        """Why `arguments` do not fit the input schema (a short reason the model can act on), or None."""
        if not isinstance(arguments, Mapping):
            return "the input must be a JSON object"
        properties: dict[str, dict[str, Any]] = self.input_schema.get("properties", {})
        missing = [name for name in self.input_schema.get("required", []) if name not in arguments]
        if missing:
            return f"missing required field {', '.join(repr(name) for name in missing)}"
        if self.input_schema.get("additionalProperties") is False:
            unknown = sorted(str(name) for name in arguments if name not in properties)
            if unknown:
                expected = ", ".join(repr(name) for name in properties)
                return f"unknown field {', '.join(repr(name) for name in unknown)} (expected {expected})"
        for name, value in arguments.items():
            spec = properties.get(str(name))
            if spec is not None and (problem := _value_error(spec, value)):
                return f"field {name!r} {problem}"
        return None


def _value_error(spec: Mapping[str, Any], value: object) -> str | None:
    kind = spec.get("type", "string")
    if not isinstance(value, PROPERTY_TYPES.get(kind, ())) or (kind == "integer" and isinstance(value, bool)):
        return f"must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}"
    if isinstance(value, str):
        if len(value) < spec.get("minLength", 0):
            return "must not be empty" if spec.get("minLength") == 1 else f"needs at least {spec['minLength']} characters"
        if "maxLength" in spec and len(value) > spec["maxLength"]:
            return f"must be at most {spec['maxLength']} characters"
    return None


def _reference_schema(examples: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "reference": {
                "type": "string",
                "minLength": 1,
                "maxLength": 2_000,
                "description": f"Which item the user means: {examples}",
            }
        },
        "required": ["reference"],
        "additionalProperties": False,
    }


def _reader_description(noun: str, kind: str, examples: str) -> str:
    return (
        f"This tool reads the content of one specific {noun} (its title, description and {kind}) ONLY when the "
        f"user's question refers to that {noun}: the {noun} on the page the user is on (\"this {noun}\", "
        f"\"current\"), or one they identify with a reference or a URL ({examples}). "
        f"Do NOT use it to search for {noun}s or to identify one from a description, keywords or the question "
        f"itself: it cannot search, and a guessed reference reads the wrong item or none. "
        f"It only returns {noun}s the user is allowed to read."
    )


_ISSUE_EXAMPLES = '"current", "#12", "group/project#12", "https://gitlab.example.com/group/project/-/issues/12"'
_MR_EXAMPLES = '"current", "!3", "group/project!3", "https://gitlab.example.com/group/project/-/merge_requests/3"'
_EPIC_EXAMPLES = '"current", "&4", "group&4", "https://gitlab.example.com/groups/group/-/epics/4"'
_VULNERABILITY_EXAMPLES = (
    '"current", "5" (its ID), "https://gitlab.example.com/group/project/-/security/vulnerabilities/5"'
)

TOOL_LIST: tuple[Tool, ...] = (
    Tool(
        name="issue_reader",
        description=_reader_description("issue", "comments", _ISSUE_EXAMPLES),
        input_schema=_reference_schema(_ISSUE_EXAMPLES),
        unit_primitive="ask_issue",
        resource_noun="issue",
        handler="read_issue",
    ),
    Tool(
        name="merge_request_reader",
        description=_reader_description("merge request", "comments, branches and diff", _MR_EXAMPLES),
        input_schema=_reference_schema(_MR_EXAMPLES),
        unit_primitive="ask_merge_request",
        resource_noun="merge request",
        handler="read_merge_request",
    ),
    Tool(
        name="epic_reader",
        description=_reader_description("epic", "comments", _EPIC_EXAMPLES),
        input_schema=_reference_schema(_EPIC_EXAMPLES),
        unit_primitive="ask_epic",
        resource_noun="epic",
        handler="read_epic",
    ),
    Tool(
        name="vulnerability_reader",
        description=_reader_description("vulnerability", "severity, file and vulnerable code", _VULNERABILITY_EXAMPLES),
        input_schema=_reference_schema(_VULNERABILITY_EXAMPLES),
        unit_primitive="explain_vulnerability",
        resource_noun="vulnerability",
        handler="read_vulnerability",
    ),
    Tool(
        name="documentation_search",
        description=(
            "This tool searches this product's documentation (Switchboard, the self-hosted GitLab Duo AI action "
            "server: set-up, configuration, commands, chat, models and features) and returns the most relevant "
            "passages with their source. Use it for questions about how this product works or is operated. "
            "Give a short query of the key words (for example \"embedded Redis data directory\"), not the "
            "whole conversation. It does not read issues, merge requests or code."
        ),
        input_schema={
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 1_000,
                    "description": "The key words to look for in the documentation.",
                }
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        unit_primitive="documentation_search",
        resource_noun="documentation",
        handler="search_documentation",
    ),
)
