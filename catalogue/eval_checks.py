"""The deterministic checks of evaluation items (SPEC §15): their kinds, and their parsing and validation
from a dataset's one-key JSON form (`{"contains": "def "}`, `{"max_chars": 4000}`, ...). The scorers that
apply them to answers are `evaluation.scorers`.

- `equals`, `contains`, `not_contains`: a string (the last two non-empty);
- `regex`: a Python regular expression that compiles (searched in the answer);
- `json_schema`: a JSON schema object the answer must satisfy as JSON;
- `max_chars`: a positive integer;
- `code_block`: true / false (the answer has a fenced code block, or not), or a language name;
- `refusal`, `error`: true / false (whether the answer is a refusal, or the action an error).
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["CHECK_KINDS", "Check", "parse_check"]

CHECK_KINDS = ("equals", "contains", "not_contains", "regex", "json_schema", "max_chars", "code_block", "refusal", "error")
_LANGUAGE = re.compile(r"^[A-Za-z0-9_+#.-]{1,32}\Z")
_JSON_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})


class Check(BaseModel):
    """One deterministic check of an answer, written `{kind: value}` in a dataset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    value: Any

    def as_json(self) -> dict[str, Any]:
        return {self.kind: self.value}



def parse_check(spec: object) -> Check:
    """A check from its one-key JSON form; ValueError says what is wrong with it."""
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ValueError(f'a check is a one-key object such as {{"contains": "def "}}, not {json.dumps(spec)[:80]}')
    ((kind, value),) = spec.items()
    if kind not in CHECK_KINDS:
        raise ValueError(f"unknown check {kind!r} (known: {', '.join(CHECK_KINDS)})")
    match kind:
        case "equals" | "contains" | "not_contains":
            if not isinstance(value, str) or (kind != "equals" and not value):
                raise ValueError(f"{kind} takes a{' non-empty' if kind != 'equals' else ''} string")
        case "regex":
            if not isinstance(value, str):
                raise ValueError("regex takes a regular expression as a string")
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"regex {value!r} does not compile: {exc}") from None
        case "json_schema":
            problem = _schema_problem(value, "json_schema")
            if problem:
                raise ValueError(problem)
        case "max_chars":
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError("max_chars takes a positive integer")
        case "code_block":
            if not isinstance(value, bool) and not (isinstance(value, str) and _LANGUAGE.match(value)):
                raise ValueError("code_block takes true, false or a language name such as 'python'")
        case _:  # refusal, error: whether the answer should be one
            if not isinstance(value, bool):
                raise ValueError(f"{kind} takes true or false")
    return Check(kind=kind, value=value)


def _schema_problem(schema: object, where: str) -> str | None:
    """A light check of a JSON schema (the scorer validates answers against it): objects all the way down,
    known types, `properties` of schemas and `required` names."""
    if not isinstance(schema, dict):
        return f"{where} must be a JSON schema object"
    kinds = schema.get("type")
    for kind in kinds if isinstance(kinds, list) else [kinds] if kinds is not None else []:
        if kind not in _JSON_TYPES:
            return f"{where}: unknown type {kind!r} (JSON schema has {', '.join(sorted(_JSON_TYPES))})"
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        return f"{where}.properties must be an object of schemas"
    for name, sub in properties.items():
        if problem := _schema_problem(sub, f"{where}.properties.{name}"):
            return problem
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        return f"{where}.required must be a list of property names"
    if "items" in schema:
        return _schema_problem(schema["items"], f"{where}.items")
    return None
