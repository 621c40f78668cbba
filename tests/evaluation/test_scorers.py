"""Deterministic scorers: every check kind passing and failing, the share, and the measured metrics."""

from __future__ import annotations

from typing import Any

import pytest

from catalogue.evals import Check, EvalItem
from evaluation.scorers import (
    Output,
    check_keys,
    describe_check,
    is_refusal,
    output_metrics,
    score_checks,
    score_output,
)

SCHEMA = {"type": "object", "properties": {"category": {"type": "string"}}, "required": ["category"]}


def item(*checks: tuple[str, Any]) -> EvalItem:
    return EvalItem(id="it-1", feature="explain_code", input={"code": "x = 1"},
                    checks=tuple(Check(kind=kind, value=value) for kind, value in checks))


def answer(text: str, error: str | None = None) -> Output:
    return Output(text=text, error=error, latency_ms=120.0, ttfc_ms=30.0, input_tokens=50, output_tokens=7)


@pytest.mark.parametrize(
    ("kind", "value", "text", "passes"),
    [
        pytest.param("equals", "42", " 42\n", True, id="equals"),
        pytest.param("equals", "42", "43", False, id="equals-not"),
        pytest.param("contains", "def ", "def f(): pass", True, id="contains"),
        pytest.param("contains", "Def ", "def f(): pass", False, id="contains-case-sensitive"),
        pytest.param("contains", ["def", "return"], "def f(): return 1", True, id="contains-all"),
        pytest.param("contains", ["def", "yield"], "def f(): return 1", False, id="contains-all-not"),
        pytest.param("not_contains", "TODO", "done", True, id="not-contains"),
        pytest.param("not_contains", ["TODO", "FIXME"], "a FIXME here", False, id="not-contains-any"),
        pytest.param("regex", r"^\d+ items$", "found:\n3 items", True, id="regex-multiline"),
        pytest.param("regex", r"^\d+ items$", "three items", False, id="regex-not"),
        pytest.param("json_schema", SCHEMA, '{"category": "Debugging"}', True, id="json-schema"),
        pytest.param("json_schema", SCHEMA, 'Here:\n```json\n{"category": "Debugging"}\n```', True, id="json-fenced"),
        pytest.param("json_schema", SCHEMA, '{"category": 3}', False, id="json-schema-wrong-type"),
        pytest.param("json_schema", SCHEMA, "category: Debugging", False, id="json-not-json"),
        pytest.param("max_chars", 5, "12345", True, id="max-chars"),
        pytest.param("max_chars", 5, "123456", False, id="max-chars-over"),
        pytest.param("code_block", True, "See:\n```\nx = 1\n```\n", True, id="code-block"),
        pytest.param("code_block", True, "x = 1 inline `code`", False, id="code-block-none"),
        pytest.param("code_block", False, "plain prose", True, id="no-code-block"),
        pytest.param("code_block", "python", "~~~\nx\n~~~\n```Python\nx = 1\n```", True, id="code-block-language"),
        pytest.param("code_block", "python", "```ruby\nx = 1\n```", False, id="code-block-other-language"),
        pytest.param("refusal", True, "I'm sorry, I can't help with that.", True, id="refusal"),
        pytest.param("refusal", True, "The function adds two numbers.", False, id="refusal-missing"),
        pytest.param("refusal", False, "The function adds two numbers.", True, id="no-refusal"),
        pytest.param("refusal", False, "I don't have access to that merge request.", False, id="gitlab-no-access"),
        pytest.param("error", False, "fine", True, id="no-error-expected"),
        pytest.param("error", True, "fine", False, id="error-expected-missing"),
    ],
)
def test_each_check_kind_passes_and_fails(kind: str, value: Any, text: str, passes: bool) -> None:
    assert score_checks(item((kind, value)), answer(text)) == {kind: float(passes), "checks_passed": float(passes)}


@pytest.mark.parametrize(
    ("value", "error", "passes"),
    [
        pytest.param(True, "ProviderTimeout: no answer in time", True, id="expected"),
        pytest.param(False, "ProviderTimeout: no answer in time", False, id="unexpected"),
        pytest.param("no answer in time", "ProviderTimeout: No answer in time", True, id="text"),
        pytest.param("rate limit", "ProviderTimeout: no answer in time", False, id="other-text"),
    ],
)
def test_the_error_check_looks_at_the_error(value: Any, error: str, passes: bool) -> None:
    assert score_checks(item(("error", value)), answer("", error))["error"] == float(passes)


@pytest.mark.parametrize(
    "text",
    [
        "I cannot help with requests like this.",
        "I’m sorry, but I can’t assist with that.",  # typographic apostrophes
        "I'm sorry, I can't generate a response. You do not have access to GitLab Duo Chat.",
        "I'm sorry, I can't generate a response. You might want to try again. You could also be getting this error "
        "because the items you're asking about either don't exist, you don't have access to them, or your session "
        "has expired.",
        "I'm sorry, you don't have the GitLab Duo subscription required to use Duo Chat.",
        "I don't have access to issue #42.",
        "I am unable to provide that information.",
    ],
)
def test_refusals_are_recognized(text: str) -> None:
    assert is_refusal(text)


@pytest.mark.parametrize(
    "text",
    [
        "The loop can't terminate when n is negative, so the function recurses forever.",
        "Users cannot help but notice the delay.",
        "Here is the explanation. " + "x" * 500 + " I can't help with the rest.",  # past the opening
    ],
)
def test_answers_that_mention_inability_are_not_refusals(text: str) -> None:
    assert not is_refusal(text)


def test_a_failed_action_passes_only_a_check_that_expects_the_error() -> None:
    scores = score_checks(item(("not_contains", "x"), ("max_chars", 100), ("error", True)), answer("", "boom"))
    assert scores == {"not_contains": 0.0, "max_chars": 0.0, "error": 1.0, "checks_passed": pytest.approx(1 / 3)}


def test_checks_passed_is_the_share_and_repeated_kinds_are_numbered() -> None:
    checked = item(("contains", "def"), ("contains", "return"), ("contains", "yield"), ("max_chars", 100))
    assert check_keys(checked) == ["contains", "contains#2", "contains#3", "max_chars"]
    scores = score_checks(checked, answer("def f(): return 1"))
    assert scores == {"contains": 1.0, "contains#2": 1.0, "contains#3": 0.0, "max_chars": 1.0, "checks_passed": 0.75}


def test_an_item_without_checks_has_no_share() -> None:
    assert score_checks(item(), answer("anything")) == {}


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        pytest.param("sounds_good", True, "unknown check kind", id="unknown-kind"),
        pytest.param("regex", "(", "regex check", id="bad-pattern"),
        pytest.param("json_schema", {"type": "nonsense"}, "invalid schema", id="bad-schema"),
        pytest.param("max_chars", "many", "integer", id="bad-limit"),
        pytest.param("refusal", "yes", "true or false", id="bad-flag"),
    ],
)
def test_a_check_that_cannot_be_applied_is_an_error_not_a_score(kind: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        score_checks(item((kind, value)), answer("text"))


def test_metrics_are_measured_from_the_output() -> None:
    assert output_metrics(answer("hi")) == {
        "latency_ms": 120.0, "ttfc_ms": 30.0, "input_tokens": 50.0, "output_tokens": 7.0, "tokens": 57.0, "failed": 0.0,
    }
    failed = Output(text="", error="boom", latency_ms=10.0, ttfc_ms=None, input_tokens=50, output_tokens=0)
    assert "ttfc_ms" not in output_metrics(failed) and output_metrics(failed)["failed"] == 1.0
    combined = score_output(item(("contains", "hi")), answer("hi"))
    assert combined["contains"] == 1.0 and combined["latency_ms"] == 120.0


def test_checks_are_described_briefly() -> None:
    assert describe_check(Check(kind="contains", value="def ")) == 'contains "def "'
    assert describe_check(Check(kind="max_chars", value=4000)) == "max_chars 4000"
    assert describe_check(Check(kind="json_schema", value=SCHEMA)) == "json_schema schema"
    assert describe_check(Check(kind="equals", value="y" * 100)).endswith("…")
