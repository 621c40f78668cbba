"""`switchboard check` against the fake provider server: one line per model, exit 1 when one fails."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cli.main import main
from tests._providers import FakeLLM, Reply

_PROVIDER_ENV = (
    "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_CLOUD_PROJECT", "ANTHROPIC_VERTEX_BASE_URL", "SWITCHBOARD_OPENAI_COMPATIBLE_BASE_URL",
    "SWITCHBOARD_DEFAULT_MODEL", "SWITCHBOARD_MOCK_MODEL_RESPONSES", "SWITCHBOARD_GOOGLE_BASE_URL",
)


Check = Callable[..., tuple[int, str, str]]


@pytest.fixture
def check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Check:
    """Runs `switchboard check` in this process with the given environment; returns (status, out, err)."""
    monkeypatch.chdir(tmp_path)
    for name in _PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))

    def run(**env: str) -> tuple[int, str, str]:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        status = main(["check"])
        out, err = capsys.readouterr()
        return status, out, err

    return run


def test_mock_mode_checks_the_mock_model_as_a_user_runs_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in _PROVIDER_ENV}
    result = subprocess.run([sys.executable, "-m", "cli.main", "check"], env={**env, "SWITCHBOARD_DATA_DIR": str(tmp_path)},
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith("ok      mock (mock mock): answered in") and "duo_chat" in line


def test_each_configured_model_answers_once(check: Check, fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply(deltas=("ok",)))
    status, out, err = check(ANTHROPIC_API_KEY="sk-ant-test", ANTHROPIC_BASE_URL=fake_llm.url)
    assert status == 0, out + err
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["ok", "claude_sonnet_4_6"], ["skipped", "claude_sonnet_4_6_vertex"], ["ok", "claude_haiku_4_5_20251001"]
    ]
    assert "fallback of duo_chat" in lines[1] and "GOOGLE_CLOUD_PROJECT" in lines[1]
    assert sorted(request.body["model"] for request in fake_llm.requests) == ["claude-haiku-4-5-20251001", "claude-sonnet-4-6"]


def test_a_failing_model_is_reported_with_the_reason_and_exit_1(check: Check, fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply(status=401))
    status, out, err = check(ANTHROPIC_API_KEY="sk-ant-wrong", ANTHROPIC_BASE_URL=fake_llm.url)
    assert status == 1
    assert "failed  claude_sonnet_4_6 (anthropic claude-sonnet-4-6): anthropic failed (401): fake 401" in out
    assert err.strip().splitlines() == ["switchboard: 2 of 3 models failed: claude_sonnet_4_6, claude_haiku_4_5_20251001"]


def test_a_model_without_configuration_says_what_to_set(check: Check) -> None:
    status, out, _ = check(SWITCHBOARD_MOCK_MODEL_RESPONSES="false")
    assert status == 1
    assert "failed  claude_sonnet_4_6 (anthropic claude-sonnet-4-6): not configured: set ANTHROPIC_API_KEY" in out


def test_the_default_model_setting_and_gemini(check: Check, fake_llm: FakeLLM) -> None:
    status, out, err = check(GEMINI_API_KEY="AIza-test", SWITCHBOARD_GOOGLE_BASE_URL=fake_llm.url,
                             SWITCHBOARD_DEFAULT_MODEL="gemini_2_5_flash")
    assert status == 0, out + err
    assert out.splitlines()[0].startswith("ok      gemini_2_5_flash (google gemini-2.5-flash): answered in")
    assert fake_llm.requests[0].path.endswith("/models/gemini-2.5-flash:streamGenerateContent")
