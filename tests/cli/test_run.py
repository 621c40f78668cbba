"""`make run` / `switchboard run` before anything serves: what it installs, the demo tokens it keeps across
runs, a port already taken, and which log format its processes write."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from access.admin.seed import seed
from cli.accounts import DEMO_TOKENS_FILE, seed_for_run
from cli.commands import in_transaction
from cli.processes import banner, log_format
from core import logs
from core.settings import Settings
from tests.cli.test_main import cli

ROOT = Path(__file__).resolve().parents[2]


def _settings(database_url: str, tmp_path: Path, **values: object) -> Settings:
    return Settings(_env_file=None, database_url=database_url, data_dir=tmp_path, **values)  # type: ignore[call-arg]


def _make_dry_run(target: str, tmp_path: Path) -> str:
    """The commands `make TARGET` would run for a machine with no virtual environment yet."""
    result = subprocess.run(["make", "-n", "-C", str(ROOT), target, f"VENV={tmp_path / 'venv'}"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_run_installs_no_test_extras_and_make_test_does(tmp_path: Path) -> None:
    run, test = _make_dry_run("run", tmp_path), _make_dry_run("test", tmp_path)
    assert "pip install --quiet -e .\n" in run and "[test]" not in run
    assert "switchboard run --port 8080" in run
    assert "pip install --quiet -e '.[test]'" in test and "pytest" in test


def test_run_reuses_valid_demo_tokens_and_replaces_revoked_ones(database_url: str, tmp_path: Path) -> None:
    settings, args = _settings(database_url, tmp_path), argparse.Namespace()
    first = {name: user["token"] for name, user in seed_for_run(settings, args)["users"].items()}
    path = tmp_path / DEMO_TOKENS_FILE
    assert json.loads(path.read_text()) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = {name: user["token"] for name, user in seed_for_run(settings, args)["users"].items()}
    assert second == first

    assert cli("tokens", "revoke", "alice", "--all", database_url=database_url, tmp_path=tmp_path).returncode == 0
    third = {name: user["token"] for name, user in seed_for_run(settings, args)["users"].items()}
    assert third["alice"] != first["alice"] and third["alice"].startswith("glpat-")
    assert {k: v for k, v in third.items() if k != "alice"} == {k: v for k, v in first.items() if k != "alice"}
    assert json.loads(path.read_text()) == third


def test_run_replaces_a_token_of_someone_else_or_with_fewer_scopes(database_url: str, tmp_path: Path) -> None:
    settings = _settings(database_url, tmp_path)
    tokens = {name: user["token"] for name, user in seed_for_run(settings, argparse.Namespace())["users"].items()}
    weak = cli("tokens", "create", "bob", "--scopes", "read_api", database_url=database_url, tmp_path=tmp_path).stdout.strip()
    swapped = {**tokens, "alice": tokens["bob"], "bob": weak, "carol": 42, "nobody": tokens["root"]}
    (tmp_path / DEMO_TOKENS_FILE).write_text(json.dumps(swapped))
    again = {name: user["token"] for name, user in seed_for_run(settings, argparse.Namespace())["users"].items()}
    assert again["root"] == tokens["root"] and again["mallory"] == tokens["mallory"]
    assert len({again["alice"], again["bob"], again["carol"], tokens["alice"], tokens["bob"], tokens["carol"], weak}) == 7
    assert "nobody" not in again


def test_a_damaged_token_file_means_new_tokens(database_url: str, tmp_path: Path) -> None:
    (tmp_path / DEMO_TOKENS_FILE).write_text("{not json")
    document = seed_for_run(_settings(database_url, tmp_path), argparse.Namespace())
    assert json.loads((tmp_path / DEMO_TOKENS_FILE).read_text())["alice"] == document["users"]["alice"]["token"]


def test_seed_still_issues_fresh_tokens_when_told_nothing_to_reuse(database_url: str, tmp_path: Path) -> None:
    settings = _settings(database_url, tmp_path)
    first = in_transaction(settings, lambda session: seed(session))
    second = in_transaction(settings, lambda session: seed(session))
    assert first["users"]["alice"]["token"] != second["users"]["alice"]["token"]


def test_a_port_in_use_is_refused_before_anything_is_written(database_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        result = subprocess.run([sys.executable, "-m", "cli.main", "run", "--port", str(port)],
                                env={**env, "SWITCHBOARD_DATA_DIR": str(data)}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"port {port}" in line and "already in use" in line and f"make run PORT={port + 1}" in line
    assert not data.exists()  # no migration, no seed, no embedded Redis


@pytest.mark.parametrize(("command", "terminal", "configured", "expected"), [
    pytest.param("run", True, None, "text", id="run-on-a-terminal"),
    pytest.param("run", False, None, "json", id="run-piped"),
    pytest.param("web", True, None, "json", id="web-on-a-terminal"),
    pytest.param("worker", True, None, "json", id="worker-on-a-terminal"),
    pytest.param("run", True, "json", "json", id="configured-json-wins"),
    pytest.param("web", False, "text", "text", id="configured-text-wins"),
])
def test_log_format(command: str, terminal: bool, configured: str | None, expected: str, tmp_path: Path) -> None:
    values = {"log_format": configured} if configured else {}
    settings = Settings(_env_file=None, data_dir=tmp_path, **values)  # type: ignore[call-arg]
    assert log_format(settings, command, terminal) == expected


def test_text_log_lines_keep_the_fields_of_the_json_lines() -> None:
    record = logging.LogRecord("worker.jobs", logging.INFO, __file__, 1, "completion_service_performed", None, None)
    record.__dict__.update(request_id="r-1", feature="chat", model="mock", reason="no seat", tokens={"input": 3})
    line = logs.TextFormatter().format(record)
    assert line.split(" ", 1)[1] == (
        'INFO completion_service_performed request_id=r-1 feature=chat model=mock reason="no seat" tokens={"input":3}'
    )
    assert json.loads(logs.JsonFormatter().format(record))["reason"] == "no seat"


def test_the_banner_names_the_pages_with_alices_token(tmp_path: Path) -> None:
    users = {name: {"gid": f"gid://gitlab/User/{i}", "token": f"glpat-{name}"} for i, name in enumerate(["root", "alice"], 1)}
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    text = "\n".join(banner("http://localhost:8081", {"users": users}, settings, "redis://:secret@host:6379/0"))
    assert "http://localhost:8081/chat#token=glpat-alice" in text
    assert "http://localhost:8081/api/graphql#token=glpat-alice" in text
    assert "http://localhost:8081/admin" in text and "root's token" in text
    assert "glpat-root" in text and "secret" not in text
