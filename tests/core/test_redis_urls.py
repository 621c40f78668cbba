"""`core.redis`: Sentinel URLs (`redis+sentinel://`) are parsed into sentinels, master name, database."""

from __future__ import annotations

import pytest

from core.redis import connect


async def test_a_sentinel_url_names_its_sentinels_master_and_database() -> None:
    client = connect("redis+sentinel://:s3cret@10.0.0.1:26380,10.0.0.2/primary/3", max_connections=7)
    pool = client.connection_pool
    assert pool.service_name == "primary" and pool.max_connections == 7
    assert pool.connection_kwargs["db"] == 3 and pool.connection_kwargs["password"] == "s3cret"
    assert [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
            for s in pool.sentinel_manager.sentinels] == [("10.0.0.1", 26380), ("10.0.0.2", 26379)]
    await client.aclose()


def test_a_sentinel_url_without_a_master_name_is_refused() -> None:
    with pytest.raises(ValueError, match="service_name"):
        connect("redis+sentinel://10.0.0.1:26379")
