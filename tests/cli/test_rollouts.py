"""`switchboard models migrate` and `switchboard prompts migrate` against a real database: in process for the
commands, and as a real process for `--wait`, which follows a rollout that something else (here the test, as
the controller in the workers would) moves on.

These tests start with `--force`; the pre-gate over real evaluation runs is tested with `switchboard eval` in
tests/cli/test_evaluation.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from access.admin import rollouts
from catalogue import get_catalogue
from cli.main import main
from core.db import create_engine, session_factory
from core.tables import ENDED_STATES, Rollout

HAIKU = "claude_haiku_4_5_20251001"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(database_url: str, seeded: dict, tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # noqa: ANN001, ANN201
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))

    def invoke(*args: str) -> tuple[int, str, str]:
        try:
            status = main(list(args))
        except SystemExit as exit:  # argparse: --help and usage errors
            status = int(exit.code or 0)
        out, err = capsys.readouterr()
        return status, out, err

    return invoke


def test_an_operator_runs_a_migration_from_start_to_promotion(run) -> None:  # noqa: ANN001
    status, out, err = run("models", "migrate", "duo_chat", "--to", HAIKU)
    assert status == 1 and f"switchboard eval run DATASET --model {HAIKU} --baseline claude_sonnet_4_6" in err
    assert len(err.strip().splitlines()) == 1
    status, out, err = run("models", "migrate", "duo_chat", "--to", HAIKU, "--force", "--steps", "user:alice,5,100",
                           "--step-time", "90s", "--min-requests", "10", "--failure-limit", "3")
    assert status == 0, err
    assert out.startswith(f"model rollout #1 of duo_chat: claude_sonnet_4_6 -> {HAIKU}, running (forced past the pre-gate)")
    assert "step 1/3 (user:alice,5,100): 0% of actors + user:alice" in out
    status, out, err = run("models", "migrate", "status", "--json")
    (shown,) = json.loads(out)
    assert shown["config"]["step_time_s"] == 90 and shown["config"]["min_requests"] == 10 and shown["config"]["failure_limit"] == 3
    assert (shown["state"], shown["step"], shown["forced"]) == ("running", "1/3", True)
    assert run("models", "migrate", "pause", "duo_chat", "--reason", "lunch")[0] == 0
    status, out, _ = run("models", "migrate", "status", "duo_chat")
    assert "paused" in out and "reason: lunch" in out
    status, _, err = run("models", "migrate", "pause", "duo_chat")
    assert status == 1 and "cannot pause the model rollout of duo_chat" in err and "it is paused: lunch" in err
    assert run("models", "migrate", "resume", "duo_chat")[0] == 0
    status, out, err = run("models", "migrate", "promote", "duo_chat")
    assert status == 0 and "promoted" in out, err
    assert run("models", "resolve", "duo_chat")[1].strip() == f"{HAIKU} from promoted"
    status, _, err = run("models", "migrate", "resume", "duo_chat")
    assert status == 1 and "it is promoted" in err
    audit = [json.loads(line)["action"] for line in run("models", "audit")[1].splitlines()]
    assert audit[:5] == ["rollout_promoted", "rollout_resumed", "rollout_paused", "rollout_started", "rollout_forced"]


def test_prompt_migrations_share_the_commands(run) -> None:  # noqa: ANN001
    status, _, err = run("prompts", "migrate", "chat", "--to", "1.1.0", "--force")
    assert status == 1 and "already uses prompt version 1.1.0" in err
    status, out, err = run("prompts", "migrate", "chat", "--to", "1.0.0", "--force")
    assert status == 0 and out.startswith("prompt rollout #1 of chat: ^1.0.0 -> 1.0.0, running"), err
    status, _, err = run("prompts", "migrate", "abort", "chat", "--reason", "wrong version")
    assert status == 0, err
    assert "aborted" in run("prompts", "migrate", "status", "chat")[1]
    assert run("models", "migrate", "status")[1].strip() == "no model migration running or ended in the last day"


@pytest.mark.parametrize(("args", "message"), [
    (["duo_chat"], "--to is required to start a migration of duo_chat"),
    (["pause"], "pause needs the setting: migrate pause SETTING"),
    (["pause", "duo_chat", "--to", HAIKU], "--to only apply when starting a migration, not to pause"),
    (["duo_chat", "extra", "--to", HAIKU], "unexpected 'extra'"),
    (["resume", "duo_chat", "--reason", "x"], "--reason applies to pause and abort"),
    (["duo_chat", "--to", HAIKU, "--step-time", "10x"], "duration '10x'"),
    (["duo_chat", "--to", HAIKU, "--steps", "5,user"], "step 'user': not a percentage"),
    (["duo_chat", "--to", HAIKU, "--failure-limit", "0"], "failure limit must be a whole number of at least 1"),
    (["promote", "duo_chat", "--wait"], "--wait follows a migration you start"),
])
def test_usage_errors_exit_2(run, args: list[str], message: str) -> None:  # noqa: ANN001
    status, _, err = run("models", "migrate", *args)
    assert status == 2 and message in err, err


def test_refusals_exit_1_with_suggestions(run) -> None:  # noqa: ANN001
    status, _, err = run("models", "migrate", "duo_chta", "--to", HAIKU, "--force")
    assert status == 1 and "unknown feature setting 'duo_chta'; did you mean duo_chat?" in err
    status, _, err = run("models", "migrate", "duo_chat", "--to", "claude_haiku", "--force", "--steps", "user:nobody,5")
    assert status == 1 and "unknown model 'claude_haiku'" in err
    status, _, err = run("models", "migrate", "duo_chat", "--to", HAIKU, "--force", "--steps", "user:nobody,5")
    assert status == 1 and "user 'nobody' does not exist" in err
    assert run("models", "set", "duo_chat", "--provider", "vendored", "--default", "claude_sonnet_4_6")[0] == 0
    status, _, err = run("models", "migrate", "duo_chat", "--to", HAIKU, "--force")
    assert status == 1 and "switchboard models reset duo_chat" in err
    assert run("models", "reset", "duo_chat")[0] == 0
    assert run("models", "migrate", "duo_chat", "--to", HAIKU, "--force")[0] == 0


def test_the_help_says_what_the_first_argument_is(run) -> None:  # noqa: ANN001
    status, out, _ = run("models", "migrate", "--help")
    assert status == 0 and "SETTING|VERB" in out and "status, pause, resume, abort, promote" in out
    status, out, _ = run("prompts", "migrate", "--help")
    assert status == 0 and "--to VERSION" in out and "FEATURE|VERB" in out


def test_eval_run_is_read_through_the_evaluation_store(run) -> None:  # noqa: ANN001
    status, _, err = run("models", "migrate", "duo_chat", "--to", HAIKU, "--eval", "424242")
    assert status == 1 and "no evaluation run 424242" in err


# --wait, as a real process -------------------------------------------------------------------------------


def _follow(database_url: str, tmp_path: Path, *args: str, sigint_ignored: bool = False) -> subprocess.Popen[str]:
    """The CLI as a real process; `sigint_ignored`: started as a script's background job is, SIGINT ignored."""
    env = {**os.environ, "DATABASE_URL": database_url, "SWITCHBOARD_DATA_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "cli.main", *args]
    if sigint_ignored:  # an ignored signal stays ignored across exec
        argv = ["bash", "-c", 'trap "" INT; exec "$0" "$@"', *argv]
    return subprocess.Popen(argv, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate()  # closes the pipes


async def _line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)


async def _until(process: subprocess.Popen[str], text: str) -> list[str]:
    seen = []
    while text not in (line := await _line(process)):
        assert line, f"the process ended before printing {text!r}: {seen}"
        seen.append(line)
    return [*seen, line]


async def _controller(database_url: str, work) -> None:  # noqa: ANN001
    """What the controller in the workers does, in its own committed transaction."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            (rollout,) = await session.scalars(select(Rollout).where(Rollout.state.not_in(ENDED_STATES)))
            await work(session, rollout)
    finally:
        await engine.dispose()


async def test_wait_follows_a_rollout_to_its_rollback_and_exits_1(database_url: str, seeded: dict, tmp_path: Path) -> None:
    process = _follow(database_url, tmp_path, "models", "migrate", "duo_chat", "--to", HAIKU, "--force",
                      "--steps", "5,100", "--wait")
    try:
        await _until(process, "following it")

        async def advance(session, rollout) -> None:  # noqa: ANN001
            rollout.step_index = 1
            await rollouts.apply_step(session, rollout)
            await rollouts.record_event(session, rollout, "step", {"step": 1, "decision": "pass"})

        await _controller(database_url, advance)
        assert "step: decision pass, step 2" in await _line(process)

        async def fail(session, rollout) -> None:  # noqa: ANN001
            await rollouts.roll_back(session, rollout, "error ratio 0.5 vs 0.01 beyond 0.02", {"metrics": [
                {"name": "error_ratio", "new": 0.5, "old": 0.01, "difference": 0.49, "low": 0.4, "high": 0.58,
                 "verdict": "worse"}]})

        await _controller(database_url, fail)
        lines = await _until(process, "rolled_back")
        assert "error ratio 0.5 vs 0.01 beyond 0.02" in lines[-1] and "error_ratio 0.5 vs 0.01 [0.4, 0.58] worse" in lines[-1]
        assert await asyncio.to_thread(process.wait, 60) == 1
        assert process.stderr is not None
        err = process.stderr.read()
        assert f"model rollout of duo_chat to {HAIKU} rolled back: error ratio 0.5 vs 0.01 beyond 0.02" in err
    finally:
        _stop(process)


async def test_wait_exits_0_once_completed_and_ctrl_c_leaves_it_running(database_url: str, seeded: dict, tmp_path: Path) -> None:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            await rollouts.start(session, None, get_catalogue(), kind="prompt", subject="chat", to="1.0.0", force=True)
    finally:
        await engine.dispose()
    interrupted = _follow(database_url, tmp_path, "prompts", "migrate", "status", "chat", "--wait", sigint_ignored=True)
    try:
        await _until(interrupted, "following it")
        interrupted.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(interrupted.wait, 60) == 130
        assert interrupted.stderr is not None and "keeps running" in interrupted.stderr.read()
    finally:
        _stop(interrupted)

    process = _follow(database_url, tmp_path, "prompts", "migrate", "status", "chat", "--wait")
    try:
        await _until(process, "following it")

        async def complete(session, rollout) -> None:  # noqa: ANN001
            rollout.state = "completed"
            await rollouts.record_event(session, rollout, "completed", {"decision": "pass"})

        await _controller(database_url, complete)
        lines = await _until(process, "prompt rollout of chat to 1.0.0: completed")
        assert any("completed: decision pass" in line for line in lines)
        assert await asyncio.to_thread(process.wait, 60) == 0
    finally:
        _stop(process)

