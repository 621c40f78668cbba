"""Judges: the deterministic mock judge, and the model judge through a fake call function (the model edge)."""

from __future__ import annotations

import json

import pytest

from catalogue import get_catalogue
from catalogue.evals import Check, EvalItem
from evaluation.judges import Grade, JudgeError, MockJudge, ModelJudge, Preference, family_warning
from evaluation.scorers import Output

ITEM = EvalItem(
    id="ec-007", feature="explain_code", input={"code": "def fact(n): return 1 if n < 2 else n * fact(n - 1)"},
    reference="The function computes the factorial recursively, stopping at one.",
    rubric="mentions recursion and the base case",
    checks=(Check(kind="contains", value="factorial"), Check(kind="max_chars", value=2000)),
)
GOOD = "It computes the factorial of n recursively; the base case stops the recursion at one."
POOR = "It is some Python code."


def answer(text: str, error: str | None = None) -> Output:
    return Output(text=text, error=error, latency_ms=100.0, ttfc_ms=20.0, input_tokens=40, output_tokens=20)


async def test_the_mock_judge_is_deterministic_and_follows_checks_and_reference() -> None:
    good = await MockJudge().grade(ITEM, answer(GOOD))
    assert good == await MockJudge().grade(ITEM, answer(GOOD)) == await MockJudge().grade(ITEM, answer(GOOD))
    poor = await MockJudge().grade(ITEM, answer(POOR))
    assert good.correctness == 4 and good.comprehensiveness >= 3
    assert poor.correctness <= 2 and poor.comprehensiveness == 1
    assert "checks pass" in good.reasoning


async def test_the_mock_judge_grades_a_failure_lowest_and_an_answer_without_anything_to_compare_fairly() -> None:
    failed = await MockJudge().grade(ITEM, answer("", "ProviderTimeout"))
    assert (failed.correctness, failed.readability, failed.comprehensiveness) == (1, 1, 1)
    bare = EvalItem(id="c-1", feature="chat", input={"content": "hi"})
    assert (await MockJudge().grade(bare, answer("Hello!"))).correctness == 4
    assert (await MockJudge().grade(bare, answer(""))).readability == 1


async def test_the_mock_judge_prefers_the_better_answer_in_both_orders() -> None:
    judge = MockJudge()
    assert (await judge.compare(ITEM, answer(GOOD), answer(POOR))).choice == "a"
    assert (await judge.compare(ITEM, answer(POOR), answer(GOOD))).choice == "b"
    same = await judge.compare(ITEM, answer(GOOD), answer(GOOD))
    assert same.choice == "tie" and len(same.reasons) == 2
    assert (await judge.compare(ITEM, answer(POOR), answer("", "boom"))).choice == "a"


def fake_model(*answers: str):
    """The judge model's edge: records the messages it is sent and plays the given answers in turn."""
    sent: list[list[tuple[str, str]]] = []

    async def call(messages: list[tuple[str, str]]) -> str:
        sent.append(messages)
        return answers[len(sent) - 1]

    return call, sent


async def test_the_model_judge_renders_the_rubric_prompt_and_parses_its_json() -> None:
    call, sent = fake_model(json.dumps({"reasoning": "Accurate and complete.", "correctness": 4, "readability": 3,
                                        "comprehensiveness": 4}))
    grade = await ModelJudge(call, name="claude_sonnet", families=["claude"]).grade(ITEM, answer(GOOD))
    assert grade == Grade(4, 3, 4, "Accurate and complete.")
    (messages,) = sent
    assert [role for role, _ in messages] == ["system", "user"]
    system, user = messages[0][1], messages[1][1]
    assert "1 = fully inaccurate" in system and "reasoning first" in system
    assert GOOD in user and ITEM.reference in user and "base case" in user and "def fact" in user


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param('Let me think.\n```json\n{"reasoning": "ok", "correctness": "3", "readability": 3.0, '
                     '"comprehensiveness": 3}\n```', id="fenced-after-prose"),
        pytest.param('{"note": {"x": 1}} then {"reasoning": "ok", "correctness": 3, "readability": 3, '
                     '"comprehensiveness": 3}', id="second-object"),
    ],
)
async def test_the_model_judge_finds_its_json_where_it_is(reply: str) -> None:
    call, _ = fake_model(reply)
    assert await ModelJudge(call, name="j").grade(ITEM, answer(GOOD)) == Grade(3, 3, 3, "ok")


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        pytest.param("Correctness: 4. Great answer!", "no JSON object", id="prose"),
        pytest.param('{"reasoning": "ok", "correctness": 4, "readability": 3', "no JSON object", id="truncated"),
        pytest.param('{"reasoning": "ok", "correctness": 5, "readability": 3, "comprehensiveness": 3}',
                     "correctness 5", id="out-of-range"),
        pytest.param('{"reasoning": "ok", "correctness": 4, "readability": 3}', "comprehensiveness None",
                     id="missing-score"),
    ],
)
async def test_an_unusable_judge_answer_is_a_judge_error(reply: str, message: str) -> None:
    call, _ = fake_model(reply)
    with pytest.raises(JudgeError, match=message):
        await ModelJudge(call, name="j").grade(ITEM, answer(GOOD))


async def test_the_model_judge_does_not_ask_about_a_failed_action() -> None:
    call, sent = fake_model()
    assert (await ModelJudge(call, name="j").grade(ITEM, answer("", "boom"))).correctness == 1
    assert (await ModelJudge(call, name="j").compare(ITEM, answer("", "boom"), answer(POOR))).choice == "b"
    assert sent == []


def verdict(preferred: str, reasoning: str) -> str:
    return json.dumps({"reasoning": reasoning, "preferred": preferred})


async def test_the_pairwise_judge_asks_both_orders_and_keeps_an_agreement() -> None:
    # The swapped order prefers "B", which is again the first answer: the two orders agree on it.
    call, sent = fake_model(verdict("A", "A explains the base case."), verdict("B", "B explains the base case."))
    preference = await ModelJudge(call, name="j").compare(ITEM, answer(GOOD), answer(POOR))
    assert preference == Preference("a", ("A explains the base case.", "B explains the base case."))
    first, second = (messages[1][1] for messages in sent)
    assert first.index(GOOD) < first.index(POOR) and second.index(POOR) < second.index(GOOD)


async def test_a_pairwise_judge_that_prefers_a_position_gives_a_tie() -> None:
    call, _ = fake_model(verdict("A", "first is better"), verdict("A", "first is better"))
    preference = await ModelJudge(call, name="j").compare(ITEM, answer(GOOD), answer(POOR))
    assert preference == Preference("tie", ("first is better", "first is better"))


async def test_an_unknown_pairwise_verdict_is_a_judge_error() -> None:
    call, _ = fake_model(verdict("both", "hmm"), verdict("A", "x"))
    with pytest.raises(JudgeError, match="not A, B or tie"):
        await ModelJudge(call, name="j").compare(ITEM, answer(GOOD), answer(POOR))


def test_the_judge_prompts_are_in_the_catalogue_and_render_without_reference_or_rubric() -> None:
    judge = ModelJudge(fake_model()[0], name="j", prompts=get_catalogue().prompts)
    assert judge.grade_prompt.location == "eval_judge/base/1.0.0.yml"
    assert judge.pairwise_prompt.location == "eval_pairwise_judge/base/1.0.0.yml"
    assert judge.grade_prompt.definition.model.params.temperature == 0.0
    messages = judge.grade_prompt.render({"input": "q", "answer": "a", "reference": None, "rubric": None})
    assert "<reference_answer>" not in messages[1][1] and "<answer>\na\n</answer>" in messages[1][1]
    assert judge.version == "eval_judge/base/1.0.0.yml+eval_pairwise_judge/base/1.0.0.yml"


def test_a_judge_of_a_candidates_family_is_flagged() -> None:
    warning = family_warning("claude_sonnet", ["claude"], {"claude_haiku": ["claude"], "gemini_flash": ["gemini"]})
    assert warning is not None and "claude_haiku (claude)" in warning and "gemini" not in warning
    assert family_warning("gemini_pro", ["gemini"], {"claude_haiku": ["claude"]}) is None
