"""Feature flags: Flipper's gates and writes on a real database, the per-process cache, pushed flags."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from access import flags
from access.flags import FlagState, FlagStore, actor_id, in_percentage
from core.db import create_engine, session_factory


def test_a_boolean_gate_wins_over_everything() -> None:
    assert FlagState("f", boolean=True).enabled_for([])
    assert FlagState("f", boolean=True).state == "on"
    assert not FlagState("f").enabled_for(["User:1"]) and FlagState("f").state == "off"


def test_actor_gates_enable_only_those_actors() -> None:
    state = FlagState("f", actors=frozenset({"User:2", "Group:1"}))
    assert state.state == "conditional"
    assert state.enabled_for(["User:2"]) and state.enabled_for(["User:9", "Group:1"])
    assert not state.enabled_for(["User:3"]) and not state.enabled_for([])


def test_percentage_of_actors_is_deterministic_and_keeps_actors_in_as_it_grows() -> None:
    actors = [actor_id("User", n) for n in range(1, 5001)]
    chosen = {p: {a for a in actors if in_percentage("rollout", a, p)} for p in (10, 25, 50, 100)}
    assert chosen[10] <= chosen[25] <= chosen[50] <= chosen[100] == set(actors)
    assert 0.08 < len(chosen[10]) / len(actors) < 0.12 and 0.45 < len(chosen[50]) / len(actors) < 0.55
    # Per flag: another flag picks other actors for the same percentage.
    assert {a for a in actors if in_percentage("other", a, 10)} != chosen[10]
    state = FlagState("rollout", percentage_of_actors=25)
    assert all(state.enabled_for([a]) == (a in chosen[25]) for a in actors[:200])


def test_gates_are_shown_as_gitlabs_api_does() -> None:
    assert FlagState("f").gates() == [{"key": "boolean", "value": False}]
    state = FlagState("f", percentage_of_actors=12.5, actors=frozenset({"User:2"}))
    assert state.gates() == [
        {"key": "boolean", "value": False},
        {"key": "percentage_of_actors", "value": 12.5},
        {"key": "actors", "value": ["User:2"]},
    ]


async def test_writes_follow_flipper(session: AsyncSession) -> None:
    assert await flags.load_state(session, "f") is None
    await flags.add_actors(session, "f", ["User:2", "User:3", "User:2"])
    await flags.set_percentage(session, "f", 30)
    assert await flags.load_state(session, "f") == FlagState("f", percentage_of_actors=30, actors=frozenset({"User:2", "User:3"}))
    await flags.remove_actors(session, "f", ["User:3"])
    await flags.enable(session, "f")  # enabling the boolean gate clears the others
    assert await flags.load_state(session, "f") == FlagState("f", boolean=True)
    await flags.add_actors(session, "f", ["User:4"])
    await flags.disable(session, "f")  # disabling clears every gate; the flag stays set
    assert await flags.load_state(session, "f") == FlagState("f")
    assert await flags.load_states(session) == {"f": FlagState("f")}
    assert await flags.delete_flag(session, "f") and not await flags.delete_flag(session, "f")
    assert await flags.load_state(session, "f") is None
    with pytest.raises(ValueError):
        await flags.set_percentage(session, "f", 101)


async def test_the_store_uses_defaults_until_a_flag_is_set_and_caches_for_its_ttl(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    now = [0.0]
    store = FlagStore(sessions, default=lambda name: name == "default_on", ttl_s=5, clock=lambda: now[0])
    try:
        assert await store.enabled("default_on") and not await store.enabled("default_off")
        async with sessions() as session, session.begin():
            await flags.disable(session, "default_on")
            await flags.add_actors(session, "default_off", ["User:2"])
        now[0] = 4.9
        assert await store.enabled("default_on")  # cached
        now[0] = 5.0
        assert not await store.enabled("default_on")
        assert await store.resolve(["default_off", "unknown"], "User:2") == {"default_off": True, "unknown": False}
        async with sessions() as session, session.begin():
            await flags.delete_flag(session, "default_on")
        store.invalidate()
        assert await store.enabled("default_on")
    finally:
        await engine.dispose()


async def test_the_cache_is_read_once_per_ttl_however_many_ask(database_url: str) -> None:
    engine = create_engine(database_url)
    store = FlagStore(session_factory(engine))
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        await asyncio.gather(*(store.enabled("x", "User:1") for _ in range(50)))
    finally:
        await engine.dispose()
    assert len(statements) == 1
