"""The chat tools' declarations (catalogue/tools.py) and their validation."""

from __future__ import annotations

from typing import Any

import pytest

import catalogue
from catalogue import TOOL_LIST, Tool
from catalogue.add_ons import ADD_ONS
from catalogue.validation import check_tools
from core.errors import CatalogueError


def tool(**changes: Any) -> Tool:
    return TOOL_LIST[0].model_copy(update=changes)


def test_the_spec_tools_are_declared_and_validated_with_the_catalogue() -> None:
    shipped = catalogue.validate()
    assert set(shipped.tools) == {
        "issue_reader", "merge_request_reader", "epic_reader", "vulnerability_reader", "documentation_search",
    }
    assert check_tools(TOOL_LIST) == []
    assert len(set(TOOL_LIST)) == len(TOOL_LIST)  # hashable by name despite the schema dict
    assert {entry["key"] for entry in shipped.entries() if entry["type"] == "tool"} == set(shipped.tools)


def test_readers_are_duo_enterprise_and_documentation_search_is_also_duo_pro() -> None:
    tools = catalogue.get_catalogue().tools
    for name in ("issue_reader", "merge_request_reader", "epic_reader", "vulnerability_reader"):
        assert tools[name].unit_primitive in ADD_ONS["duo_enterprise"]
        assert tools[name].unit_primitive not in ADD_ONS["duo_pro"]
        assert tools[name].input_schema["required"] == ["reference"]
        assert "search" in tools[name].description and "ONLY" in tools[name].description
    assert tools["documentation_search"].unit_primitive in ADD_ONS["duo_pro"] & ADD_ONS["duo_enterprise"]
    assert tools["documentation_search"].input_schema["required"] == ["query"]


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        pytest.param({"unit_primitive": "ask_anything"}, "'ask_anything' is bundled by no add-on", id="unknown-primitive"),
        pytest.param({"input_schema": {"type": "string"}}, "must be a JSON schema of type 'object'", id="not-object"),
        pytest.param({"input_schema": {"type": "object", "properties": {}}}, "declares no properties", id="no-properties"),
        pytest.param({"input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["x"]}},
                     "requires 'x', which is not one of its properties", id="required-unknown"),
        pytest.param({"input_schema": {"type": "object", "properties": {"q": {"type": "array"}}}},
                     "property 'q' has type 'array'", id="unsupported-type"),
        pytest.param({"input_schema": {"type": "object", "properties": {"q": {"type": "string", "pattern": "x"}}}},
                     "property 'q' uses 'pattern'", id="unsupported-keyword"),
        pytest.param({"input_schema": {"type": "object", "properties": {"q": {"type": "string", "minLength": 5,
                                                                                "maxLength": 2}}}},
                     "minLength above maxLength", id="lengths"),
        pytest.param({"input_schema": {"type": "object", "properties": {"q": {"type": "integer", "maxLength": 2}}}},
                     "sets a length but is not a string", id="length-of-integer"),
        pytest.param({"input_schema": {"type": "object", "oneOf": [], "properties": {"q": {"type": "string"}}}},
                     "uses 'oneOf'", id="unsupported-schema-keyword"),
        pytest.param({"handler": "not a name"}, "is not a Python name", id="handler-name"),
        pytest.param({"resource_noun": " "}, "resource_noun is empty", id="empty-noun"),
    ],
)
def test_each_broken_declaration_is_reported(changes: dict[str, Any], problem: str) -> None:
    problems = check_tools((tool(**changes),))
    assert any(problem in line for line in problems), problems


def test_validate_reports_every_tool_problem_at_once() -> None:
    broken = (*TOOL_LIST, tool(), tool(name="odd_tool", unit_primitive="nothing"))
    with pytest.raises(CatalogueError) as raised:
        catalogue.validate(tools=broken)
    text = str(raised.value)
    assert "tool 'issue_reader' is declared twice" in text
    assert "tool 'odd_tool': unit primitive 'nothing' is bundled by no add-on" in text


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        pytest.param({"reference": "#1"}, None, id="fits"),
        pytest.param({}, "missing required field 'reference'", id="missing"),
        pytest.param({"reference": 12}, "field 'reference' must be a string", id="wrong-type"),
        pytest.param({"reference": ""}, "field 'reference' must not be empty", id="empty"),
        pytest.param({"reference": "x" * 2_001}, "field 'reference' must be at most 2000 characters", id="too-long"),
        pytest.param({"reference": "#1", "query": "x"}, "unknown field 'query' (expected 'reference')", id="extra"),
        pytest.param(["#1"], "the input must be a JSON object", id="not-an-object"),
    ],
)
def test_arguments_are_checked_against_the_schema(arguments: Any, error: str | None) -> None:
    assert catalogue.get_catalogue().tools["issue_reader"].argument_error(arguments) == error


def test_integer_and_boolean_properties() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}, "b": {"type": "boolean"}}, "required": ["n"]}
    counted = tool(input_schema=schema)
    assert check_tools((counted,)) == []
    assert counted.argument_error({"n": 3, "b": True}) is None
    assert counted.argument_error({"n": True}) == "field 'n' must be an integer"
    assert counted.argument_error({"n": 1, "b": "yes"}) == "field 'b' must be a boolean"
