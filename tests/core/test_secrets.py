"""Stored secrets: encrypted with SWITCHBOARD_SECRET_KEY, or a key generated once into the data directory."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from core.secrets import secret_box
from core.settings import Settings


def test_a_generated_key_is_kept_private_in_the_data_dir_and_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", secret_key=None)
    sealed = secret_box(settings).encrypt("tok-s3cret")
    assert "tok-s3cret" not in sealed
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o777 == 0o600
    assert secret_box(settings).decrypt(sealed) == "tok-s3cret"  # another process, the same key
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["secret_key"]


def test_the_configured_key_wins_and_another_key_cannot_decrypt(tmp_path: Path) -> None:
    configured = Settings(data_dir=tmp_path, secret_key=SecretStr("a passphrase"))
    sealed = secret_box(configured).encrypt("tok")
    assert not (tmp_path / "secret_key").exists()
    assert secret_box(configured).decrypt(sealed) == "tok"
    assert secret_box(Settings(data_dir=tmp_path, secret_key=SecretStr("another"))).decrypt(sealed) is None
