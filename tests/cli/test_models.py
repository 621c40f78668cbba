"""`switchboard models`: the operator's model selection commands, in process, against a real database."""

from __future__ import annotations

import json

import pytest

from cli.main import main


@pytest.fixture
def run(database_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # noqa: ANN001, ANN201
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


def test_an_operator_configures_selection_from_the_command_line(run) -> None:  # noqa: ANN001
    assert run("groups", "create", "acme")[0] == 0
    assert run("groups", "create", "acme/web")[0] == 0
    status, out, err = run("models", "set", "duo_chat", "--provider", "vendored",
                           "--available", "claude_sonnet_4_6,claude_haiku_4_5_20251001", "--default", "claude_sonnet_4_6")
    assert status == 0, err
    assert "duo_chat" in out and "claude_sonnet_4_6,claude_haiku_4_5_20251001" in out
    assert run("models", "choose", "acme", "duo_chat", "claude_haiku_4_5_20251001")[0] == 0
    status, _, err = run("models", "choose", "acme/web", "duo_chat", "claude_sonnet_4_6")
    assert status == 1 and "Selected model 'claude_sonnet_4_6' is not compatible with the feature 'duo_chat'" in err
    assert run("models", "resolve", "duo_chat", "--group", "acme/web")[1].strip() == "claude_haiku_4_5_20251001 from namespace acme"
    assert run("models", "set", "duo_chat", "--provider", "vendored", "--default", "claude_sonnet_4_6")[0] == 0
    assert "STALE" in run("models", "group", "acme")[1].splitlines()[0]
    assert run("models", "resolve", "duo_chat")[1].strip() == "claude_sonnet_4_6 from instance"

    status, out, err = run("models", "self-hosted", "create", "--name", "Llama", "--model", "llama3",
                           "--endpoint", "http://llm.internal/v1", "--identifier", "llama3.1:8b", "--api-token", "tok")
    assert status == 0 and out.startswith("self_hosted_1") and "token set" in out and "tok)" not in out, err
    assert run("models", "self-hosted", "update", "self_hosted_1", "--api-token", "")[0] == 0
    assert "no token" in run("models", "self-hosted", "list")[1]
    assert run("models", "self-hosted", "delete", "self_hosted_1")[1].strip() == "deleted self_hosted_1"
    audit = [json.loads(line) for line in run("models", "audit")[1].splitlines()]
    assert [e["action"] for e in audit][:3] == ["self_hosted_model_deleted", "self_hosted_model_updated", "self_hosted_model_created"]
    assert {e["author"] for e in audit} == {"cli"}
    assert run("models", "set", "nope", "--provider", "disabled")[0] == 1


def test_unknown_names_are_refused_with_the_valid_ones(run) -> None:  # noqa: ANN001
    status, _, err = run("models", "set", "duo_chta", "--provider", "disabled")
    assert status == 1 and "unknown feature setting 'duo_chta'; valid: " in err and "duo_chat" in err
    status, _, err = run("models", "set", "duo_chat", "--provider", "vendored", "--default", "claude_sonet")
    assert status == 1 and "Model reference not found in definitions: 'claude_sonet'. Valid references: " in err
    assert "claude_sonnet_4_6" in err
    status, _, err = run("models", "self-hosted", "delete", "self_hosted_9")
    assert status == 1 and "no self-hosted model 'self_hosted_9'; registered: none" in err

