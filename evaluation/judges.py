"""Judges (SPEC §15): a grade of one answer on GitLab's 1–4 rubric, and a preference between two answers.

A grade scores correctness, readability and comprehensiveness from 1 to 4 (1 fully inaccurate … 4 fully
accurate), with the reasoning that came before the scores. A preference compares the candidate's answer (A)
with the baseline's (B) twice, once in each order; when the two orders disagree the result is a tie, which
cancels the judge's bias for a position.

- `MockJudge` is deterministic and offline: it grades from the item's checks and the overlap of the answer's
  words with the reference and rubric, and prefers the better-graded answer. Offline runs and tests use it.
- `ModelJudge` asks a catalogue model through a call function the runner hands in, with the prompt definitions
  `eval_judge` and `eval_pairwise_judge` (catalogue/prompts/), and parses the JSON it answers. An answer it
  cannot use raises `JudgeError`, which the runner records against the item.

An action that failed is graded 1/1/1 without asking anyone, and loses every comparison with an answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from catalogue import get_catalogue
from catalogue.evals import EvalItem
from catalogue.prompts import Prompt, PromptRegistry
from evaluation.scorers import CHECKS_PASSED, Output, score_checks

__all__ = [
    "GRADE_PROMPT",
    "PAIRWISE_PROMPT",
    "Choice",
    "Grade",
    "Judge",
    "JudgeCall",
    "JudgeError",
    "MockJudge",
    "ModelJudge",
    "Preference",
    "family_warning",
]

GRADE_PROMPT = "eval_judge"
PAIRWISE_PROMPT = "eval_pairwise_judge"
Choice = Literal["a", "b", "tie"]
# What the runner hands in: the rendered messages as (role, text) → the judge model's whole answer.
JudgeCall = Callable[[list[tuple[str, str]]], Awaitable[str]]
_CRITERIA = ("correctness", "readability", "comprehensiveness")
_WORD = re.compile(r"[^\W_]{3,}")


class JudgeError(ValueError):
    """The judge's answer could not be used (no JSON object, a score outside 1–4, an unknown preference)."""


@dataclass(frozen=True)
class Grade:
    correctness: int
    readability: int
    comprehensiveness: int
    reasoning: str

    def __post_init__(self) -> None:
        for criterion in _CRITERIA:
            score = getattr(self, criterion)
            if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 4:
                raise ValueError(f"{criterion} must be an integer from 1 to 4, not {score!r}")

    def scores(self) -> dict[str, float]:
        return {criterion: float(getattr(self, criterion)) for criterion in _CRITERIA}


@dataclass(frozen=True)
class Preference:
    """`choice` is "a" (the first answer, the candidate's), "b" or "tie"; `reasons` are the judge's reasoning
    in the order A/B and in the swapped order B/A."""

    choice: Choice
    reasons: tuple[str, str]


class Judge(Protocol):
    name: str  # shown in reports: "mock" or the judge model's identifier
    version: str  # changes whenever its verdicts may change; part of the runner's cache key

    async def grade(self, item: EvalItem, output: Output) -> Grade: ...

    async def compare(self, item: EvalItem, a: Output, b: Output) -> Preference: ...


def family_warning(judge: str, judge_families: Sequence[str], candidates: Mapping[str, Sequence[str]]) -> str | None:
    """A warning when the judge model shares a family with a model it judges (judges favour their own family),
    else None. `candidates` maps each judged model's identifier to its families."""
    shared = [(name, sorted(set(judge_families) & set(families))) for name, families in candidates.items()]
    clashes = [f"{name} ({', '.join(common)})" for name, common in shared if common]
    if not clashes:
        return None
    return f"judge {judge} is of the same family as {' and '.join(clashes)}: it may favour that family's answers"


def _failed_grade() -> Grade:
    return Grade(1, 1, 1, "The action failed, so there is no answer to grade.")


def _decide(first: Choice, second: Choice) -> Choice:
    """`first` judged (A, B), `second` judged (B, A) with its letters already mapped back; disagreement → tie."""
    return first if first == second else "tie"


def _swap(choice: Choice) -> Choice:
    return "b" if choice == "a" else "a" if choice == "b" else "tie"


def _only_one_failed(a: Output, b: Output) -> Preference | None:
    if not (a.failed or b.failed):
        return None
    if a.failed and b.failed:
        return Preference("tie", ("Both actions failed.", "Both actions failed."))
    reason = f"Answer {'A' if b.failed else 'B'} is an answer; the other action failed."
    return Preference("a" if b.failed else "b", (reason, reason))


class MockJudge:
    """Deterministic, offline judge: no model, no randomness. Correctness is 1 + 3 × the mean of the share of
    checks passed and the share of the reference's and rubric's words the answer contains (whichever exist);
    comprehensiveness follows the word share; readability drops for an empty answer, very long lines or a very
    long answer. The preferred answer is the one with the higher total grade."""

    name = "mock"
    version = "mock-1"

    async def grade(self, item: EvalItem, output: Output) -> Grade:
        return self._grade(item, output)

    async def compare(self, item: EvalItem, a: Output, b: Output) -> Preference:
        decided = _only_one_failed(a, b)
        if decided is not None:
            return decided
        first, first_reason = self._prefer(item, a, b)
        second, second_reason = self._prefer(item, b, a)
        return Preference(_decide(first, _swap(second)), (first_reason, second_reason))

    def _prefer(self, item: EvalItem, a: Output, b: Output) -> tuple[Choice, str]:
        total_a, total_b = (sum(self._grade(item, output).scores().values()) for output in (a, b))
        choice: Choice = "a" if total_a > total_b else "b" if total_b > total_a else "tie"
        return choice, f"Total grade of A {total_a:g}, of B {total_b:g}."

    def _grade(self, item: EvalItem, output: Output) -> Grade:
        if output.failed:
            return _failed_grade()
        text = output.text
        checks = score_checks(item, output).get(CHECKS_PASSED)
        target = _words(item.reference or "") | _words(item.rubric or "")
        overlap = len(_words(text) & target) / len(target) if target else None
        parts = [share for share in (checks, overlap) if share is not None]
        quality = sum(parts) / len(parts) if parts else (1.0 if text.strip() else 0.0)
        coverage = overlap if overlap is not None else quality
        readability = 1 if not text.strip() else 4 - (max(map(len, text.splitlines())) > 400) - (len(text) > 6000)
        reasons = []
        if checks is not None:
            reasons.append(f"{checks:.0%} of the checks pass")
        if overlap is not None:
            reasons.append(f"the answer has {overlap:.0%} of the reference's and rubric's words")
        reasoning = ("; ".join(reasons) or "no checks and no reference: any answer counts") + "."
        return Grade(_scale(quality), readability, _scale(coverage), reasoning[0].upper() + reasoning[1:])


def _words(text: str) -> set[str]:
    return {word.casefold() for word in _WORD.findall(text)}


def _scale(share: float) -> int:
    return 1 + int(3 * min(max(share, 0.0), 1.0) + 0.5)


class ModelJudge:
    """A catalogue model as judge. `call` sends the rendered messages to the judge model and returns its answer
    (the runner owns caching, concurrency and retries); `families` are the judge model's, so that a family
    folder of the judge prompts wins over `base`. The two prompts are public so that the runner can read
    their model parameters."""

    def __init__(
        self, call: JudgeCall, *, name: str, families: Sequence[str] = (), prompts: PromptRegistry | None = None
    ) -> None:
        registry = prompts if prompts is not None else get_catalogue().prompts
        self._call = call
        self.name = name
        self.grade_prompt: Prompt = registry.get(GRADE_PROMPT, families)
        self.pairwise_prompt: Prompt = registry.get(PAIRWISE_PROMPT, families)
        self.version = f"{self.grade_prompt.location}+{self.pairwise_prompt.location}"

    async def grade(self, item: EvalItem, output: Output) -> Grade:
        if output.failed:
            return _failed_grade()
        messages = self.grade_prompt.render({**_context(item), "answer": output.text})
        found = _json_object(await self._call(list(messages)), "correctness")
        scores = {criterion: _score(found, criterion) for criterion in _CRITERIA}
        return Grade(**scores, reasoning=_reasoning(found))

    async def compare(self, item: EvalItem, a: Output, b: Output) -> Preference:
        decided = _only_one_failed(a, b)
        if decided is not None:
            return decided
        first, first_reason = await self._prefer(item, a, b)
        second, second_reason = await self._prefer(item, b, a)
        return Preference(_decide(first, _swap(second)), (first_reason, second_reason))

    async def _prefer(self, item: EvalItem, a: Output, b: Output) -> tuple[Choice, str]:
        messages = self.pairwise_prompt.render({**_context(item), "answer_a": a.text, "answer_b": b.text})
        found = _json_object(await self._call(list(messages)), "preferred")
        return _choice(found.get("preferred")), _reasoning(found)


def _context(item: EvalItem) -> dict[str, object]:
    return {"input": _input_text(item.input), "reference": item.reference, "rubric": item.rubric}


def _input_text(inputs: Mapping[str, Any]) -> str:
    """The action's inputs as the judge reads them: a lone field as it is, several as `name: value` lines."""
    if len(inputs) == 1:
        (value,) = inputs.values()
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return "\n".join(
        f"{name}: {value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}"
        for name, value in inputs.items()
    )


def _json_object(answer: str, required: str) -> dict[str, Any]:
    """The first JSON object in the judge's answer that has `required`, wherever it sits (bare, fenced, after
    some prose). The answer's text stays out of the message: it may quote the user's data."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", answer):
        try:
            found, _ = decoder.raw_decode(answer, match.start())
        except ValueError:
            continue
        if isinstance(found, dict) and required in found:
            return found
    raise JudgeError(f"the judge's answer ({len(answer)} characters) holds no JSON object with {required!r}")


def _score(found: Mapping[str, Any], criterion: str) -> int:
    value = found.get(criterion)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4:
        raise JudgeError(f"the judge gave {criterion} {value!r}, not an integer from 1 to 4")
    return value


def _choice(value: Any) -> Choice:
    text = str(value).strip().casefold().removeprefix("answer").strip(" _")
    if text == "a":
        return "a"
    if text == "b":
        return "b"
    if text == "tie":
        return "tie"
    raise JudgeError(f"the judge preferred {value!r}, not A, B or tie")


def _reasoning(found: Mapping[str, Any]) -> str:
    reasoning = found.get("reasoning")
    return reasoning.strip() if isinstance(reasoning, str) and reasoning.strip() else "(no reasoning given)"
