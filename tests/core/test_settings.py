"""Settings read only their documented names (SPEC §4): `SWITCHBOARD_*`, `REDIS_URL`, `DATABASE_URL`, `PORT`
and the providers' own variables, never an un-prefixed alias that another program sets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import AliasChoices

from core.settings import Settings

# What other software commonly sets, named like our fields without the prefix.
ALIASES = {
    "MODE": "production",
    "SECRET_KEY": "someone-elses-secret",
    "AI_ACTION_RATE_LIMIT": "3",
    "SYNC_EXECUTION": "true",
    "DATA_DIR": "/elsewhere",
    "LOG_FORMAT": "text",
    "AUTH_CACHE_S": "60",
    "MOCK_MODEL_RESPONSES": "false",
    "GOOGLE_BASE_URL": "http://elsewhere",
    "OPENAI_COMPATIBLE_API_KEY": "sk-elsewhere",
}
PROVIDERS = {"ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_VERTEX_BASE_URL", "GOOGLE_API_KEY", "GEMINI_API_KEY",
             "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION"}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No Switchboard variable in the environment, and a working directory of our own (for `.env`)."""
    for name in list(os.environ):
        if name.startswith("SWITCHBOARD_") or name in {"REDIS_URL", "DATABASE_URL", "PORT", *PROVIDERS, *ALIASES}:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_unprefixed_aliases_in_the_environment_change_nothing(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    for name, value in ALIASES.items():
        monkeypatch.setenv(name, value)
    assert Settings() == defaults


def test_unprefixed_aliases_in_a_dotenv_file_change_nothing(clean_env: Path) -> None:
    defaults = Settings()
    (clean_env / ".env").write_text("".join(f"{name}={value}\n" for name, value in ALIASES.items()))
    assert Settings() == defaults


def test_the_documented_names_are_read(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_MODE", "saas")
    monkeypatch.setenv("REDIS_URL", "redis://redis.example:6379/2")
    monkeypatch.setenv("PORT", "9000")
    (clean_env / ".env").write_text("SWITCHBOARD_AI_ACTION_RATE_LIMIT=7\nGEMINI_API_KEY=g-key\n")
    settings = Settings()
    assert (settings.mode, settings.redis_url, settings.port, settings.ai_action_rate_limit) == (
        "saas", "redis://redis.example:6379/2", 9000, 7)
    assert settings.google_api_key is not None and settings.google_api_key.get_secret_value() == "g-key"
    assert Settings(mode="saas", port=1).port == 1  # field names still work as keyword arguments


def test_every_environment_name_is_documented() -> None:
    """A new field's alias must be `SWITCHBOARD_*` or a provider's own variable (catches a lower-case alias,
    which the environment would match case-insensitively)."""
    names = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        names.update(alias.choices if isinstance(alias, AliasChoices) else [alias])  # type: ignore[arg-type]
    undocumented = {n for n in names if not (isinstance(n, str) and n.startswith("SWITCHBOARD_"))}
    assert undocumented <= {"REDIS_URL", "DATABASE_URL", "PORT", *PROVIDERS}
