"""`switchboard eval` as real processes against a real database, offline with the mock model, or against the
fake provider server; no Redis anywhere. The run → report → gate path and the regression run on SQLite and
PostgreSQL (when configured); checks that do not depend on the backend run on SQLite."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from catalogue.evals import load_dataset
from cli.main import main
from tests._providers import FakeLLM, Reply
from tests._redis import free_port
from tests._stack import PROVIDER_ENV

# Each test starts several `switchboard` processes (each imports the provider SDKs and seeds its private
# world): a few seconds apiece on a small, shared host. No bound on their speed is meant here.
pytestmark = pytest.mark.timeout(240)
_RUN_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

Switchboard = Callable[..., subprocess.CompletedProcess[str]]


def _switchboard(database_url: str, tmp_path: Path) -> Switchboard:
    """Runs `switchboard ARGS...` as a process on `database_url`; keyword arguments add environment."""
    base = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV}
    base |= {"DATABASE_URL": database_url, "SWITCHBOARD_DATA_DIR": str(tmp_path / "data"),
             "SWITCHBOARD_MOCK_MODEL_RESPONSES": "true", "SWITCHBOARD_RETRY_BASE_DELAY_S": "0.001"}

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli.main", *args], env={**base, **env}, capture_output=True,
                              text=True, timeout=120, cwd=tmp_path)

    run.env = base  # type: ignore[attr-defined]
    return run


@pytest.fixture
def switchboard(database_url: str, tmp_path: Path) -> Switchboard:
    return _switchboard(database_url, tmp_path)


@pytest.fixture
def on_sqlite(sqlite_database_url: str, tmp_path: Path) -> Switchboard:
    return _switchboard(sqlite_database_url, tmp_path)


def write(path: Path, *lines: dict[str, Any] | str) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def items(count: int) -> list[dict[str, Any]]:
    return [{"id": f"ec-{n}", "feature": "explain_code", "input": {"code": f"value_{n} = {n}"}, "resource": "issue",
             "checks": [{"contains": f"value_{n}"}]} for n in range(count)]


def test_run_then_report_and_gate_offline(switchboard: Switchboard, tmp_path: Path) -> None:
    path = write(tmp_path / "basic.jsonl", *items(3))
    run = switchboard("eval", "run", str(path), "--model", "claude_sonnet_4_6", "--baseline", "claude_haiku_4_5_20251001")
    assert run.returncode == 0, run.stderr
    run_id = run.stdout.splitlines()[-1]
    assert _RUN_ID.match(run_id)
    assert "cache hits 0" in run.stderr and "gate pass" in run.stderr and "\r" not in run.stderr  # no bar off a TTY
    assert any(line.startswith("checks_passed") for line in run.stdout.splitlines())

    markdown = switchboard("eval", "report", run_id)
    assert markdown.returncode == 0 and markdown.stdout.startswith("#") and "checks_passed" in markdown.stdout
    assert "claude_haiku_4_5_20251001" in markdown.stdout
    page = switchboard("eval", "report", run_id, "--html")
    assert page.returncode == 0 and page.stdout.lower().startswith("<!doctype html>")
    assert page.stdout.rstrip().endswith("</html>") and "checks_passed" in page.stdout
    data = json.loads(switchboard("eval", "report", run_id, "--json").stdout)
    assert data["info"]["model"] == "claude_sonnet_4_6" and data["info"]["baseline"] == "claude_haiku_4_5_20251001"
    assert len(data["items"]) == 3

    gate = switchboard("eval", "gate", run_id)
    assert gate.returncode == 0 and gate.stdout.startswith("pass: ") and len(gate.stdout.splitlines()) == 1


def test_a_second_identical_run_is_all_cache_hits_and_compares_with_the_first(
    on_sqlite: Switchboard, tmp_path: Path,
) -> None:
    path = write(tmp_path / "basic.jsonl", *items(3))
    runs = [on_sqlite("eval", "run", str(path), "--model", "claude_sonnet_4_6", "--baseline", "claude_haiku_4_5_20251001")
            for _ in range(2)]
    assert [run.returncode for run in runs] == [0, 0], runs[-1].stderr
    hits = 3 * 2 + 3 * 2 + 3  # answers, grades, pairwise judgements
    assert "cache hits 0" in runs[0].stderr
    assert f"cache hits {hits}" in runs[1].stderr and f"cache hits: {hits}" in runs[1].stdout
    first, second = (run.stdout.splitlines()[-1] for run in runs)
    compared = on_sqlite("eval", "compare", first, second)
    assert compared.returncode == 0, compared.stderr
    assert compared.stdout.startswith(f"run {first} (candidate) against run {second} (baseline)")
    assert "checks_passed" in compared.stdout


def test_a_dataset_with_a_broken_item_fails_with_its_file_and_line(on_sqlite: Switchboard, tmp_path: Path) -> None:
    path = write(tmp_path / "broken.jsonl", items(1)[0], '{"id": "ec-9", "feature": ', items(2)[1])
    result = on_sqlite("eval", "run", str(path), "--model", "mock")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"switchboard: {path}:2: ")


def test_the_gate_of_an_unknown_run_is_an_error(on_sqlite: Switchboard) -> None:
    result = on_sqlite("eval", "gate", "no-such-run")
    assert result.returncode == 1
    assert result.stderr.strip() == "switchboard: no evaluation run 'no-such-run'"


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["run", str(tmp_path / "x.jsonl")], ["report", "r", "--html", "--json"],
                 ["run", "x", "--model", "mock", "--concurrency", "0"], ["gate", "r", "--max-regression", "-1"]):
        with pytest.raises(SystemExit) as exit:  # argparse refuses before anything runs
            main(["eval", *args])
        assert exit.value.code == 2
    assert "usage: switchboard eval" in capsys.readouterr().err


def test_a_candidate_that_fails_where_the_baseline_answers_is_a_regression(switchboard: Switchboard, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    created = switchboard("models", "self-hosted", "create", "--name", "Dead", "--model", "llama3", "--endpoint", dead,
                          "--identifier", "llama3:8b")
    assert created.returncode == 0, created.stderr
    path = write(tmp_path / "basic.jsonl", *items(3))
    run = switchboard("eval", "run", str(path), "--model", "self_hosted_1", "--baseline", "mock",
                      SWITCHBOARD_MOCK_MODEL_RESPONSES="false")
    assert run.returncode == 0, run.stderr
    assert "gate regression" in run.stderr
    gate = switchboard("eval", "gate", run.stdout.splitlines()[-1])
    assert gate.returncode == 3 and gate.stdout == ""
    (line,) = gate.stderr.splitlines()
    assert line.startswith("switchboard: regression: ") and "checks_passed" in line and "error_rate" in line
    assert switchboard("eval", "gate", run.stdout.splitlines()[-1], "--max-regression", "1").returncode == 0


def test_the_concurrency_limit_holds_at_the_provider(on_sqlite: Switchboard, tmp_path: Path, fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply(first_byte_delay_s=0.3))
    path = write(tmp_path / "basic.jsonl", *items(6))
    run = on_sqlite("eval", "run", str(path), "--model", "claude_sonnet_4_6", "--concurrency", "2",
                      SWITCHBOARD_MOCK_MODEL_RESPONSES="false", ANTHROPIC_API_KEY="sk-ant-test",
                      ANTHROPIC_BASE_URL=fake_llm.url)
    assert run.returncode == 0, run.stderr
    assert len(fake_llm.requests) == 6
    assert fake_llm.peak_in_flight == 2


def test_import_turns_inputs_and_outputs_into_a_dataset(on_sqlite: Switchboard, tmp_path: Path) -> None:
    source = write(tmp_path / "langsmith.jsonl", {"inputs": {"code": "x = 1"}, "outputs": {"output": "Sets x."}},
                   {"inputs": {"code": "y = 2"}, "outputs": {"output": "Sets y."}})
    out = tmp_path / "imported.jsonl"
    result = on_sqlite("eval", "import", str(source), "--feature", "explain_code", "--resource", "issue", "--out", str(out))
    assert result.returncode == 0, result.stderr
    loaded = load_dataset(out)
    assert loaded.feature == "explain_code" and [item.reference for item in loaded.items] == ["Sets x.", "Sets y."]
    assert {item.resource for item in loaded.items} == {"issue"}
    unknown = on_sqlite("eval", "import", str(source), "--feature", "nope")
    assert unknown.returncode == 1 and "unknown feature 'nope'" in unknown.stderr


def test_a_progress_bar_is_drawn_on_a_terminal(on_sqlite: Switchboard, tmp_path: Path) -> None:
    path = write(tmp_path / "basic.jsonl", *items(2))
    controller, terminal = pty.openpty()
    try:
        with open(terminal, "w", closefd=False) as stderr:
            process = subprocess.Popen([sys.executable, "-m", "cli.main", "eval", "run", str(path), "--model", "mock"],
                                       env=on_sqlite.env, stdout=subprocess.PIPE, stderr=stderr, text=True,  # type: ignore[attr-defined]
                                       cwd=tmp_path)
            out, _ = process.communicate(timeout=120)
        drawn = os.read(controller, 65536).decode()
    finally:
        os.close(controller)
        os.close(terminal)
    assert process.returncode == 0
    assert "] 2/2" in drawn and "\r" in drawn and _RUN_ID.match(out.splitlines()[-1])


def test_an_evaluation_run_clears_or_refuses_a_guarded_migration(
    switchboard: Switchboard, tmp_path: Path, fake_llm: FakeLLM,
) -> None:
    """The operator's two commands: `eval run` of the new model against the current one, then `models migrate
    --eval RUN`, which starts only when the run's gate passed."""
    path = write(tmp_path / "basic.jsonl", *items(3))
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    assert switchboard("models", "self-hosted", "create", "--name", "Dead", "--model", "llama3", "--endpoint", dead,
                       "--identifier", "llama3:8b").returncode == 0
    failing = switchboard("eval", "run", str(path), "--model", "self_hosted_1", "--baseline", "claude_sonnet_4_6",
                          SWITCHBOARD_MOCK_MODEL_RESPONSES="false", ANTHROPIC_API_KEY="sk-ant-test",
                          ANTHROPIC_BASE_URL=fake_llm.url)
    assert failing.returncode == 0, failing.stderr
    refused = switchboard("models", "migrate", "duo_chat_explain_code", "--to", "self_hosted_1",
                          "--eval", failing.stdout.splitlines()[-1])
    assert refused.returncode == 1 and "the evaluation gate is regression" in refused.stderr
    assert "error_rate" in refused.stderr

    passing = switchboard("eval", "run", str(path), "--model", "claude_haiku_4_5_20251001", "--baseline", "claude_sonnet_4_6")
    assert passing.returncode == 0, passing.stderr
    run_id = passing.stdout.splitlines()[-1]
    wrong_target = switchboard("models", "migrate", "duo_chat_explain_code", "--to", "gemini_2_5_pro", "--eval", run_id)
    assert wrong_target.returncode == 1
    started = switchboard("models", "migrate", "duo_chat_explain_code", "--to", "claude_haiku_4_5_20251001",
                          "--eval", run_id)
    assert started.returncode == 0, started.stderr
    status = json.loads(switchboard("models", "migrate", "status", "duo_chat_explain_code", "--json").stdout)
    assert [(s["state"], s["eval_run_id"], s["forced"]) for s in status] == [("running", run_id, False)]
