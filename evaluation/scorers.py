"""Deterministic scorers (SPEC §15): an evaluation item's checks against one answer, and the answer's metrics.

Every check scores 1.0 (passed) or 0.0 (failed); `checks_passed` is the share of an item's checks that
passed (absent for an item without checks, so that such items do not dilute the share). An answer that ended
in an error passes no check except an `error` check that expects the error: an error is never a good answer.

Check kinds (the value is what the dataset line gives, `{"contains": "def "}`):
- `equals`: the answer, stripped, is the value;
- `contains` / `not_contains`: the value (or every value of a list) occurs / none occurs, case-sensitively;
- `regex`: the pattern matches somewhere (`re.search`, multi-line);
- `json_schema`: the answer (or its first fenced block) is JSON valid against the schema in the value;
- `max_chars`: the answer has at most that many characters;
- `code_block`: `true` a fenced code block is present, `false` none is, a string: a block of that language;
- `refusal`: `true` the answer must be a refusal, `false` it must not (see `is_refusal`);
- `error`: `true` the action must fail, `false` it must not, a string: it must fail with that text in its error.

The metrics of an answer (`output_metrics`) are its latency, time to first chunk, tokens and whether it
failed; they are measured, not judged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import jsonschema

from catalogue.evals import Check, EvalItem

__all__ = ["CHECKS_PASSED", "Output", "check_keys", "describe_check", "is_refusal", "output_metrics", "score_checks", "score_output"]

CHECKS_PASSED = "checks_passed"

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)[^\n]*\n(.*?)^ {0,3}\1[ \t]*$", re.MULTILINE | re.DOTALL)
# How far into an answer a refusal is looked for: refusals open the answer; a later "I can't see the rest of
# the file" inside an explanation is not one.
_REFUSAL_WINDOW = 400
_REFUSALS = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"\bI(?:'m| am) sorry,? (?:but )?I (?:can't|cannot|can not|couldn't|could not|won't|am unable|'m unable)",
        r"\bI (?:can't|cannot|can not|won't|will not|am unable to|'m unable to|am not able to|'m not able to)"
        r" (?:help|assist|answer|provide|generate|do that|comply|share|access|discuss|respond)",
        r"\bI (?:don't|do not) have (?:access|permission) to\b",  # GitLab's chat prompt: "I don't have access to …"
        r"\byou (?:don't|do not) have access to\b",  # GitLab's M3003 / M3004 texts
        r"\byou don't have the GitLab Duo subscription required\b",  # M3006
        r"\bis not supported in your Duo \w+ subscription\b",  # M3005
        r"\brequires a different Duo subscription\b",  # G3001
        r"\bI(?:'m| am) (?:not able|unable) to (?:help|assist)\b",
    )
)


@dataclass(frozen=True)
class Output:
    """One answer of the pipeline to one item: its text (the final message), the error that ended it (or None),
    and what it cost. `ttfc_ms` is None when no chunk came before the end."""

    text: str
    error: str | None
    latency_ms: float
    ttfc_ms: float | None
    input_tokens: int
    output_tokens: int

    @property
    def failed(self) -> bool:
        return self.error is not None


def score_checks(item: EvalItem, output: Output) -> dict[str, float]:
    """Each of the item's checks → 1.0/0.0, keyed by kind (`contains`, then `contains#2` for a second one), plus
    `checks_passed`, the share that passed (absent when the item has no check). Raises ValueError for a check
    that cannot be applied (an unknown kind, a bad pattern or schema): a dataset must be valid."""
    scores = {key: 1.0 if _passes(check, output) else 0.0 for key, check in zip(check_keys(item), item.checks,
                                                                                    strict=True)}
    if scores:
        scores[CHECKS_PASSED] = sum(scores.values()) / len(scores)
    return scores


def check_keys(item: EvalItem) -> list[str]:
    """The score keys of the item's checks, in order: the kind, numbered from the second check of a kind on."""
    keys: list[str] = []
    for check in item.checks:
        key, number = check.kind, 2
        while key in keys:
            key, number = f"{check.kind}#{number}", number + 1
        keys.append(key)
    return keys


def output_metrics(output: Output) -> dict[str, float]:
    """What was measured: `latency_ms`, `ttfc_ms` (absent without a first chunk), `input_tokens`, `output_tokens`,
    `tokens` (both) and `failed` (1.0 when the action failed)."""
    metrics = {
        "latency_ms": float(output.latency_ms),
        "input_tokens": float(output.input_tokens),
        "output_tokens": float(output.output_tokens),
        "tokens": float(output.input_tokens + output.output_tokens),
        "failed": 1.0 if output.failed else 0.0,
    }
    if output.ttfc_ms is not None:
        metrics["ttfc_ms"] = float(output.ttfc_ms)
    return metrics


def score_output(item: EvalItem, output: Output) -> dict[str, float]:
    """The checks and the metrics together, as one result row stores them."""
    return {**score_checks(item, output), **output_metrics(output)}


def describe_check(check: Check) -> str:
    """A short human label for reports: `contains "def "`, `max_chars 4000`."""
    value = check.value
    if check.kind == "json_schema":
        shown = "schema"
    elif isinstance(value, str):
        shown = json.dumps(value, ensure_ascii=False)
    else:
        shown = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if len(shown) > 60:
        shown = shown[:57] + "…"
    return f"{check.kind} {shown}"


def is_refusal(text: str) -> bool:
    """Whether the answer opens with a refusal: "I can't help with that", "I'm sorry, I cannot …", GitLab's
    "I don't have access to …" and its subscription and access error texts."""
    opening = text[:_REFUSAL_WINDOW].replace("\u2019", "'")
    return any(pattern.search(opening) for pattern in _REFUSALS)


def _passes(check: Check, output: Output) -> bool:
    kind, value = check.kind, check.value
    if kind == "error":
        return _error_matches(value, output.error)
    if output.failed:
        return False
    text = output.text
    if kind == "equals":
        return text.strip() == str(value).strip()
    if kind == "contains":
        return all(needle in text for needle in _strings(value))
    if kind == "not_contains":
        return not any(needle in text for needle in _strings(value))
    if kind == "regex":
        try:
            return re.search(str(value), text, re.MULTILINE) is not None
        except re.error as exc:
            raise ValueError(f"regex check {value!r}: {exc}") from exc
    if kind == "json_schema":
        return _matches_schema(value, text)
    if kind == "max_chars":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"max_chars check needs an integer, not {value!r}")
        return len(text) <= value
    if kind == "code_block":
        return _has_code_block(value, text)
    if kind == "refusal":
        return is_refusal(text) == _expected(kind, value)
    raise ValueError(f"unknown check kind {kind!r}")


def _strings(value: Any) -> list[str]:
    return [str(part) for part in value] if isinstance(value, list) else [str(value)]


def _expected(kind: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{kind} check needs true or false, not {value!r}")
    return value


def _error_matches(value: Any, error: str | None) -> bool:
    if isinstance(value, str):
        return error is not None and value.casefold() in error.casefold()
    return (error is not None) == _expected("error", value)


def _has_code_block(value: Any, text: str) -> bool:
    languages = [match.group(2).casefold() for match in _FENCE.finditer(text)]
    if isinstance(value, str):
        return value.casefold() in languages
    return bool(languages) == _expected("code_block", value)


def _matches_schema(schema: Any, text: str) -> bool:
    if not isinstance(schema, dict):
        raise ValueError("json_schema check needs a JSON schema object")
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"json_schema check: invalid schema: {exc.message}") from exc
    document = _json_of(text)
    return document is not _NOT_JSON and validator_class(schema).is_valid(document)


_NOT_JSON = object()


def _json_of(text: str) -> Any:
    """The answer as JSON, or the content of its first fenced block as JSON; `_NOT_JSON` when neither parses."""
    candidates = [text.strip()]
    block = _FENCE.search(text)
    if block is not None:
        candidates.append(block.group(3).strip())
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return _NOT_JSON
