"""`evaluation.runner.evaluate` in process, against a real database (SQLite, and PostgreSQL when configured),
with the mock model or the fake provider server, and no Redis at all: items go through the worker's
pipeline code in the seeded world, runs are stored, the cache answers a second run."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalogue.evals import load_dataset
from core.db import create_engine, session_factory
from core.settings import Settings
from core.tables import EvalCacheEntry, EvalRun
from evaluation.runner import MOCK_JUDGE, Arm, PlanError, RunPlan, evaluate
from evaluation.store import gate_result, load_report
from tests._providers import FakeLLM, Reply


def dataset(tmp_path: Path, *items: dict[str, Any]) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def explain(number: int, code: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"ec-{number}", "feature": "explain_code", "input": {"code": code}, "resource": "issue", **extra}


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def mock_settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path / "data", mock_model_responses=True,
                    retry_base_delay_s=0.001)


@pytest.fixture
def provider_settings(database_url: str, tmp_path: Path, fake_llm: FakeLLM) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path / "data", mock_model_responses=False,
                    anthropic_api_key=SecretStr("sk-ant-test"), anthropic_base_url=fake_llm.url, retry_base_delay_s=0.001)


async def test_items_are_answered_by_the_pipeline_scored_judged_and_stored(
    mock_settings: Settings, sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = dataset(tmp_path, explain(1, "def add(a, b): return a + b", checks=[{"contains": "def add"}]),
                   explain(2, "x = 1", checks=[{"contains": "never there"}], cluster="c"))
    plan = RunPlan(load_dataset(path), Arm("candidate", "claude_sonnet_4_6", "^1.0.0"),
                   Arm("baseline", "claude_haiku_4_5_20251001", "^1.0.0"), judge=MOCK_JUDGE, repeat=2)
    with caplog.at_level(logging.WARNING):
        outcome = await evaluate(mock_settings, sessions, plan)
    assert not [r for r in caplog.records if "not_published" in r.getMessage()]  # nothing went to a stream
    assert len(outcome.results) == 2 * 2 * 2  # items x arms x epochs
    first = next(f for f in outcome.results if f.result.item.id == "ec-1" and f.arm == "candidate")
    assert first.result.output.text == "echo: def add(a, b): return a + b" and first.result.output.error is None
    assert first.answered_by == "mock" and first.prompt == "explain_code/base/1.0.0.yml"
    assert first.result.scores["checks_passed"] == 1.0
    assert first.result.grade is not None and first.result.preference is not None
    checks = outcome.report.metric("checks_passed")
    assert checks is not None and checks.candidate == 0.5 and checks.verdict == "no detectable difference"
    assert outcome.gate == "pass"

    async with sessions() as session:
        run = await session.get(EvalRun, outcome.run_id)
        report = await load_report(session, outcome.run_id)
        gate = await gate_result(session, outcome.run_id)
    assert run is not None and run.status == "finished" and run.mock and run.judge == "mock" and run.repeat == 2
    assert run.summary == outcome.report.summary() and run.gate == "pass" and run.cache_hits == 0
    assert [(pair.candidate.item.id, pair.candidate.epoch) for pair in report.items] == [
        ("ec-1", 0), ("ec-2", 0), ("ec-1", 1), ("ec-2", 1)]
    assert {pair.baseline.output.text for pair in report.items if pair.baseline and pair.baseline.item.id == "ec-2"} == {
        "echo: x = 1"}
    assert gate.status == "pass" and gate.model == "claude_sonnet_4_6" and gate.baseline == "claude_haiku_4_5_20251001"


async def test_a_second_identical_run_is_all_cache_hits_and_errors_are_never_cached(
    mock_settings: Settings, sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
) -> None:
    failing = '<response error="500">boom</response>'
    path = dataset(tmp_path, explain(1, "a = 1"), explain(2, "b = 2"), explain(3, failing))
    plan = RunPlan(load_dataset(path), Arm("candidate", "claude_sonnet_4_6", "^1.0.0"), judge=MOCK_JUDGE)
    first = await evaluate(mock_settings, sessions, plan)
    assert first.cache_hits == 0
    failed = next(f.result for f in first.results if f.result.item.id == "ec-3")
    assert failed.output.error is not None and "500" in failed.output.error  # retried, then the item's error
    second = await evaluate(mock_settings, sessions, plan)
    # answers and grades of the two good items; the failed answer is asked again (its grade is cached)
    assert second.cache_hits == 2 * 2 + 1
    assert [r.cached for r in second.results] == [True, True, False]
    assert [f.result.output.text for f in second.results][:2] == ["echo: a = 1", "echo: b = 2"]
    uncached = await evaluate(mock_settings, sessions, plan, use_cache=False)
    assert uncached.cache_hits == 0 and not any(r.cached for r in uncached.results)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(EvalCacheEntry)) == 2 * 2 + 1


async def test_a_chat_item_is_answered_by_the_agent_with_alices_tools_on_the_seed_data(
    mock_settings: Settings, sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
) -> None:
    question = '<response><tool_call name="issue_reader">{"reference": "current"}</tool_call></response>'
    path = dataset(tmp_path, {"id": "chat-1", "feature": "chat", "input": {"content": question}, "resource": "issue"},
                   {"id": "chat-2", "feature": "chat", "input": {"content": "/help"}})
    plan = RunPlan(load_dataset(path), Arm("candidate", "claude_sonnet_4_6"))  # the prompt version production serves
    outcome = await evaluate(mock_settings, sessions, plan)
    assert outcome.report.info.prompt_version == "^1.0.0"
    tool, command = outcome.results
    assert tool.prompt == "chat/base/1.1.0.yml"  # the mock's family has no chat folder: base, highest ^1.0.0
    assert tool.result.output.error is None and tool.result.output.text.startswith("echo: ")
    assert "gitlab-duo/test#1" in tool.result.output.text  # the seed's issue, read by issue_reader as alice
    assert command.result.output.error is None and "/explain" in command.result.output.text
    assert command.answered_by is None and command.prompt is None


async def test_prompt_version_picks_the_prompt_file_on_one_model(
    provider_settings: Settings, sessions: async_sessionmaker[AsyncSession], tmp_path: Path, fake_llm: FakeLLM,
) -> None:
    fake_llm.script(Reply(deltas=("An", " answer.")))
    path = dataset(tmp_path, {"id": "chat-1", "feature": "chat", "input": {"content": "What is this?"}, "resource": "issue"})
    plan = RunPlan(load_dataset(path), Arm("candidate", "claude_sonnet_4_6", "1.0.0"),
                   Arm("baseline", "claude_sonnet_4_6", "^1.0.0"))
    outcome = await evaluate(provider_settings, sessions, plan)
    prompts = {f.arm: f.prompt for f in outcome.results}
    assert prompts == {"candidate": "chat/claude/1.0.0.yml", "baseline": "chat/claude/1.1.0.yml"}
    systems = sorted(json.dumps(request.body.get("system")) for request in fake_llm.requests)
    assert len(systems) == 2 and sum("read it with the matching tool" in system for system in systems) == 1
    assert {f.result.output.text for f in outcome.results} == {"An answer."}


async def test_a_rate_limit_is_retried_and_a_refusal_becomes_the_items_error(
    provider_settings: Settings, sessions: async_sessionmaker[AsyncSession], tmp_path: Path, fake_llm: FakeLLM,
) -> None:
    fake_llm.script(Reply(status=429, headers={"retry-after": "0"}), Reply(deltas=("fine",)))
    plan = RunPlan(load_dataset(dataset(tmp_path, explain(1, "a = 1"))), Arm("candidate", "claude_sonnet_4_6", "^1.0.0"))
    (retried,) = (await evaluate(provider_settings, sessions, plan)).results
    assert (retried.result.output.text, retried.result.output.error) == ("fine", None)
    assert len(fake_llm.requests) == 2

    fake_llm.script(Reply(status=400))
    outcome = await evaluate(provider_settings, sessions, plan, use_cache=False)
    (refused,) = outcome.results
    assert refused.result.output.error is not None and "400" in refused.result.output.error  # not retried
    assert len(fake_llm.requests) == 3
    assert outcome.report.summary()["error_rate"]["candidate"] == 1.0
    assert outcome.gate == "pass"  # no baseline to regress from


async def test_a_plan_that_cannot_run_creates_no_run(
    mock_settings: Settings, sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
) -> None:
    loaded = load_dataset(dataset(tmp_path, explain(1, "a = 1")))
    with pytest.raises(PlanError, match="unknown model 'nope'"):
        await evaluate(mock_settings, sessions, RunPlan(loaded, Arm("candidate", "nope", "^1.0.0")))
    with pytest.raises(PlanError, match="no version matching '9.9.9'"):
        await evaluate(mock_settings, sessions, RunPlan(loaded, Arm("candidate", "mock", "9.9.9")))
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(EvalRun)) == 0
        with pytest.raises(LookupError, match="no evaluation run"):
            await gate_result(session, "not-a-run")


async def test_a_model_judge_is_called_through_its_own_client(
    provider_settings: Settings, sessions: async_sessionmaker[AsyncSession], tmp_path: Path, fake_llm: FakeLLM,
) -> None:
    grade = '{"reasoning": "fine", "correctness": 3, "readability": 4, "comprehensiveness": 2}'
    fake_llm.script(Reply(deltas=(grade,)))
    plan = RunPlan(load_dataset(dataset(tmp_path, explain(1, "a = 1"))), Arm("candidate", "claude_sonnet_4_6", "^1.0.0"),
                   judge="claude_haiku_4_5_20251001")
    (result,) = (await evaluate(provider_settings, sessions, plan)).results
    assert result.result.output.text == grade and (result.result.grade is not None or result.result.judge_error)
    assert [request.body["model"] for request in fake_llm.requests] == ["claude-sonnet-4-6", "claude-haiku-4-5-20251001"]
    again = await evaluate(provider_settings, sessions, plan)
    assert len(fake_llm.requests) == 2 + (result.result.grade is None)  # a failed judgement is not cached
    assert again.results[0].result.grade == result.result.grade
