"""The prompt registry: family-then-base lookup, version selection, and the Jinja sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

import catalogue
from catalogue import CONTEXT_VARIABLES, PromptRegistry


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def prompt(user: str, name: str = "p") -> str:
    return f"name: {name}\nprompt_template:\n  user: {user!r}\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    write(tmp_path, "ask/base/1.0.0.yml", prompt("base 1.0.0 {{ q }}"))
    write(tmp_path, "ask/base/1.1.0.yml", prompt("base 1.1.0 {{ q }}"))
    write(tmp_path, "ask/base/2.0.0.yml", prompt("base 2.0.0 {{ q }}"))
    write(tmp_path, "ask/claude/1.0.0.yml", prompt("claude 1.0.0 {{ q }}"))
    write(tmp_path, "ask/claude/1.2.0-dev.yml", prompt("claude dev {{ q }}"))
    write(tmp_path, "chat/explain/base/1.0.0.yml", prompt("nested {{ q }}"))
    return tmp_path


def registry(root: Path) -> PromptRegistry:
    problems: list[str] = []
    loaded = PromptRegistry(root, problems)
    assert problems == []
    return loaded


@pytest.mark.parametrize(
    ("families", "constraint", "expected"),
    [
        pytest.param(("claude",), "^1.0.0", "claude 1.0.0", id="family-folder-first"),
        pytest.param(("gpt", "claude"), "^1.0.0", "claude 1.0.0", id="families-in-order"),
        pytest.param(("gemini",), "^1.0.0", "base 1.1.0", id="then-base-highest-stable"),
        pytest.param(("claude",), "1.2.0-dev", "claude dev", id="pre-release-on-exact-request"),
        pytest.param(("claude",), "^2.0.0", "base 2.0.0", id="family-without-a-match-falls-through-to-base"),
        pytest.param((), "~1.0.0", "base 1.0.0", id="tilde"),
    ],
)
def test_lookup(tree: Path, families: tuple[str, ...], constraint: str, expected: str) -> None:
    found = registry(tree).get("ask", families, constraint)
    assert found.render({"q": "?"}) == [("user", f"{expected} ?")]


def test_nested_prompt_ids(tree: Path) -> None:
    assert registry(tree).get("chat/explain", ("claude",)).render({"q": "x"}) == [("user", "nested x")]


@pytest.mark.parametrize(
    ("prompt_id", "constraint", "message"),
    [
        pytest.param("nope", "^1.0.0", "unknown prompt 'nope'", id="unknown"),
        pytest.param("ask", "^3.0.0", "no version matching '^3.0.0' for families claude, base", id="no-version"),
    ],
)
def test_lookup_failures(tree: Path, prompt_id: str, constraint: str, message: str) -> None:
    with pytest.raises(LookupError, match=message.replace("^", r"\^")):
        registry(tree).get(prompt_id, ("claude",), constraint)


def test_roles_render_in_order_lists_make_several_messages_and_empty_ones_are_dropped(tmp_path: Path) -> None:
    write(tmp_path, "p/base/1.0.0.yml", """
name: p
prompt_template:
  system: "You help. {% if extra %}{{ extra }}{% endif %}"
  user: ["first {{ q }}", "{% if false %}never{% endif %}", "second"]
  assistant: "Sure:"
""")
    rendered = registry(tmp_path).get("p", ()).render({"q": "q?", "extra": None})
    assert rendered == [("system", "You help."), ("user", "first q?"), ("user", "second"), ("assistant", "Sure:")]


def test_partials_are_included_from_the_prompts_folder(tmp_path: Path) -> None:
    write(tmp_path, "partials/quote.jinja", "> {{ q }}")
    write(tmp_path, "p/base/1.0.0.yml", prompt("{% include 'partials/quote.jinja' %}"))
    assert registry(tmp_path).get("p", ()).render({"q": "hi"}) == [("user", "> hi")]


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        pytest.param("{{ q.__class__ }}", "private attribute '__class__'", id="dunder"),
        pytest.param("{{ q['_secret'] }}", "private attribute '_secret'", id="private-item"),
        pytest.param("{{ q.upper() }}", "calls are not allowed", id="method-call"),
        pytest.param("{{ range(10) }}", "calls are not allowed", id="global-call"),
        pytest.param("{{ 'a' * 1000000000 }}", "the '*' operator is not allowed", id="multiply"),
        pytest.param("{{ 10 ** 10 }}", "the '**' operator is not allowed", id="power"),
    ],
)
def test_unsafe_templates_are_refused_when_loaded(tmp_path: Path, template: str, reason: str) -> None:
    write(tmp_path, "p/base/1.0.0.yml", prompt(template))
    problems: list[str] = []
    loaded = PromptRegistry(tmp_path, problems)
    assert len(problems) == 1 and reason in problems[0] and problems[0].startswith("prompts/p/base/1.0.0.yml: user template")
    assert loaded.ids() == []


def test_macros_may_be_called(tmp_path: Path) -> None:
    write(tmp_path, "p/base/1.0.0.yml", prompt("{% macro tag(x) %}<{{ x }}>{% endmacro %}{{ tag(q) }}"))
    assert registry(tmp_path).get("p", ()).render({"q": "b"}) == [("user", "<b>")]


def test_a_callable_passed_in_cannot_be_called_at_render_time(tmp_path: Path) -> None:
    from catalogue.templates import PromptEnvironment

    with pytest.raises(SecurityError):
        PromptEnvironment(tmp_path).from_string("{{ f() }}").render(f="".join)


def test_an_undefined_variable_fails_the_render(tmp_path: Path) -> None:
    write(tmp_path, "p/base/1.0.0.yml", prompt("{{ x }}"))
    with pytest.raises(UndefinedError):
        registry(tmp_path).get("p", ()).render({})


def test_the_immutable_sandbox_cannot_change_what_it_is_given(tmp_path: Path) -> None:
    from catalogue.templates import PromptEnvironment

    notes = ["a"]
    with pytest.raises(SecurityError):
        PromptEnvironment(tmp_path).from_string("{{ notes.append('b') }}").render(notes=notes)
    assert notes == ["a"]


def test_every_shipped_feature_prompt_is_about_its_resource() -> None:
    shipped = catalogue.get_catalogue()
    for feature in catalogue.FEATURES.values():
        for identifier in shipped.models_of(feature):
            used = shipped.prompts.get(feature.prompt, shipped.model(identifier).family, feature.prompt_version).variables
            assert used <= {field.name for field in feature.fields} | CONTEXT_VARIABLES
            if feature.resource_required:
                assert "resource" in used, feature.key
            if feature.user_text_field:
                assert feature.user_text_field in used, feature.key
