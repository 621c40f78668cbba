"""Banners and logs print database and Redis URLs with the password masked (issue 9)."""

from __future__ import annotations

import pytest

from cli.database import safe_url


@pytest.mark.parametrize(("url", "shown"), [
    pytest.param("redis://:s3cret@redis:6379/0", "redis://:***@redis:6379/0", id="redis-password"),
    pytest.param("rediss://default:s3cret@redis:6380/1", "rediss://default:***@redis:6380/1", id="rediss-user-password"),
    pytest.param("redis+sentinel://:s3cret@h1:26379,h2:26379/mymaster/0", "redis+sentinel://:***@h1:26379,h2:26379/mymaster/0",
                 id="sentinel"),
    pytest.param("unix:///run/redis.sock?db=2&password=s3cret", "unix:///run/redis.sock?db=2&password=***", id="unix-query"),
    pytest.param("postgresql+asyncpg://app:s3cret@db:5432/switchboard", "postgresql+asyncpg://app:***@db:5432/switchboard",
                 id="postgresql"),
    pytest.param("redis://redis:6379/0", "redis://redis:6379/0", id="no-password"),
    pytest.param("sqlite+aiosqlite:///.data/switchboard.db", "sqlite+aiosqlite:///.data/switchboard.db", id="sqlite"),
])
def test_safe_url_masks_the_password(url: str, shown: str) -> None:
    assert safe_url(url) == shown
    assert "s3cret" not in safe_url(url)
