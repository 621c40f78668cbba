"""The `switchboard` command line, run as a user runs it: a separate process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args: str, database_url: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env={**os.environ, "DATABASE_URL": database_url, "SWITCHBOARD_DATA_DIR": str(tmp_path), **env},
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize("args", [(), ("users", "create"), ("tokens",), ("fly",), ("web", "--port", "x")])
def test_usage_errors_exit_2(args: tuple[str, ...], database_url: str, tmp_path: Path) -> None:
    result = cli(*args, database_url=database_url, tmp_path=tmp_path)
    assert result.returncode == 2 and "usage:" in result.stderr


def test_users_and_tokens(database_url: str, tmp_path: Path) -> None:
    created = cli("users", "create", "dave", database_url=database_url, tmp_path=tmp_path)
    assert created.returncode == 0 and created.stdout.strip() == "gid://gitlab/User/1"
    token = cli("tokens", "create", "dave", "--scopes", "read_api", "--expires-in-days", "7", database_url=database_url, tmp_path=tmp_path)
    assert token.returncode == 0 and token.stdout.strip().startswith("glpat-") and len(token.stdout.strip().split()) == 1
    again = cli("users", "create", "dave", database_url=database_url, tmp_path=tmp_path)
    assert again.returncode == 1 and again.stderr.startswith("switchboard: username") and "Traceback" not in again.stderr


def test_failures_are_one_line_with_exit_1(database_url: str, tmp_path: Path) -> None:
    missing = cli("tokens", "create", "nobody", database_url=database_url, tmp_path=tmp_path)
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    bad_scope = cli("tokens", "create", "nobody", "--scopes", "root", database_url=database_url, tmp_path=tmp_path)
    assert bad_scope.returncode == 1 and "Traceback" not in bad_scope.stderr
    bad_config = cli("catalogue", "validate", database_url=database_url, tmp_path=tmp_path, SWITCHBOARD_MODE="cloudy")
    assert bad_config.returncode == 1 and bad_config.stderr.startswith("switchboard: invalid configuration: ")


def test_seed_json_is_deterministic(database_url: str, tmp_path: Path) -> None:
    first = json.loads(cli("seed", "--json", database_url=database_url, tmp_path=tmp_path).stdout)
    second = json.loads(cli("seed", "--json", database_url=database_url, tmp_path=tmp_path).stdout)
    strip = lambda doc: {**doc, "users": {k: {**v, "token": None} for k, v in doc["users"].items()}}  # noqa: E731
    assert strip(first) == strip(second)
    assert first["users"]["alice"]["gid"] == "gid://gitlab/User/2" and first["resources"]["issue"] == "gid://gitlab/Issue/1"
    assert first["users"]["alice"]["token"] != second["users"]["alice"]["token"]


def test_catalogue_validate_and_show(database_url: str, tmp_path: Path) -> None:
    assert cli("catalogue", "validate", database_url=database_url, tmp_path=tmp_path).returncode == 0
    shown = cli("catalogue", "show", database_url=database_url, tmp_path=tmp_path)
    assert {json.loads(line)["key"] for line in shown.stdout.splitlines()} >= {"chat", "explain_code", "summarize_comments"}


def test_the_command_line_loads_no_provider_sdk_until_a_command_needs_one() -> None:
    """Every `switchboard` call pays for what `cli.main` imports: the provider SDKs alone took 3 s."""
    code = ("import sys, cli.main, cli.processes as p, core.settings as s; p._inline_runner(s.Settings(_env_file=None)); "
            "import api.app; print(sorted(m for m in ('anthropic', 'google.genai', 'worker.llm') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
