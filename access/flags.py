"""Feature flags: Flipper's gates over the database, a per-process cache, and the pushed flags of a job.

A flag that was never set has its definition's default (the `default` callable, wired to the catalogue by
the entry points, since `core` does not import the catalogue). A set flag ("persisted", GitLab's word) is
decided by its gates, as Flipper decides:

- `boolean` on: enabled for everyone;
- `actors`: enabled for these actors (`User:2`, `Group:1`, `Project:1`, Flipper's ids);
- `percentage_of_actors`: enabled for an actor iff `crc32(name + actor_id) % 100_000 < percentage * 1_000`,
  so the same actors stay in as the percentage grows, and every process agrees.

Writes follow Flipper too: enabling the boolean gate clears the others, disabling it clears them all.

`FlagStore` reads every flag in one query and keeps the result for at most `ttl_s` (5 s) in a
`core.cache.TtlCache`, so a change made by any process is in force everywhere within that time; the hot path
costs a dict lookup. A caller that holds a session passes it: the flags then load through that session's
connection, never through a second one (which, under load, deadlocks the pool: every connection held by a
request waiting for another).

Pushed flags: the web process resolves them at enqueue into `ActionRecord.flags`, and the worker reads them
from the record (model selection) or hands them on (`core.logs.expanded_logging`).
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.cache import TtlCache
from core.tables import FeatureFlag, FeatureGate

__all__ = [
    "CACHE_TTL_S",
    "FlagState",
    "FlagStore",
    "actor_id",
    "add_actors",
    "delete_flag",
    "disable",
    "enable",
    "in_percentage",
    "load_state",
    "load_states",
    "remove_actors",
    "set_percentage",
]

logger = logging.getLogger(__name__)

CACHE_TTL_S = 5.0
BOOLEAN, PERCENTAGE, ACTORS = "boolean", "percentage_of_actors", "actors"
_SCALE = 1_000  # Flipper's scaling factor: percentages have three decimals
_ALL = "flags"  # the cache's one key: every flag's state


def actor_id(kind: str, id: int) -> str:
    """Flipper's id of an actor: `User:2`, `Group:1`, `Project:1`."""
    return f"{kind}:{id}"


def in_percentage(name: str, actor: str, percentage: float) -> bool:
    """Whether `actor` falls in `percentage` of actors for flag `name` (Flipper's deterministic hash)."""
    return zlib.crc32(f"{name}{actor}".encode()) % (100 * _SCALE) < percentage * _SCALE


@dataclass(frozen=True, slots=True)
class FlagState:
    """The gates of one set flag."""

    name: str
    boolean: bool = False
    percentage_of_actors: float = 0
    actors: frozenset[str] = frozenset()

    @property
    def state(self) -> Literal["on", "off", "conditional"]:
        if self.boolean:
            return "on"
        return "conditional" if self.actors or self.percentage_of_actors > 0 else "off"

    def enabled_for(self, actors: Iterable[str]) -> bool:
        if self.boolean:
            return True
        for actor in actors:
            if actor in self.actors:
                return True
            if self.percentage_of_actors > 0 and in_percentage(self.name, actor, self.percentage_of_actors):
                return True
        return False

    def gates(self) -> list[dict[str, object]]:
        """GitLab's Features API `gates`: the boolean gate always, the others when they hold something."""
        gates: list[dict[str, object]] = [{"key": BOOLEAN, "value": self.boolean}]
        if self.percentage_of_actors > 0:
            value = self.percentage_of_actors
            gates.append({"key": PERCENTAGE, "value": int(value) if float(value).is_integer() else value})
        if self.actors:
            gates.append({"key": ACTORS, "value": sorted(self.actors)})
        return gates


@dataclass
class FlagStore:
    """Every flag's state, read in one query and cached for at most `ttl_s` in this process.

    Every read takes the caller's `session` when it has one (see the module's docstring); without one, the
    store opens its own, so a caller without a session must hold no connection."""

    sessions: async_sessionmaker[AsyncSession]
    default: Callable[[str], bool] = lambda name: False
    ttl_s: float = CACHE_TTL_S
    clock: Callable[[], float] = time.monotonic
    _cache: TtlCache[str, Mapping[str, FlagState]] = field(init=False)

    def __post_init__(self) -> None:
        self._cache = TtlCache(self.ttl_s, max_entries=1, clock=self.clock)

    async def enabled(self, name: str, *actors: str, session: AsyncSession | None = None) -> bool:
        state = (await self.states(session)).get(name)
        return self.default(name) if state is None else state.enabled_for(actors)

    async def resolve(self, names: Iterable[str], *actors: str, session: AsyncSession | None = None) -> dict[str, bool]:
        states = await self.states(session)
        return {
            name: self.default(name) if (state := states.get(name)) is None else state.enabled_for(actors)
            for name in names
        }

    async def states(self, session: AsyncSession | None = None) -> Mapping[str, FlagState]:
        found = self._cache.get(_ALL)
        if found is not None:
            return found
        if session is not None:
            return await self._load(session)
        async with self.sessions() as own:  # takes a connection only if this caller loads
            return await self._load(own)

    async def _load(self, session: AsyncSession) -> Mapping[str, FlagState]:
        async def load() -> Mapping[str, FlagState]:
            return MappingProxyType(await load_states(session))

        return await self._cache.get_or_load(_ALL, load, hold=session.connection)

    def invalidate(self) -> None:
        """Forget the cache: the next read loads again (after a write made by this process)."""
        self._cache.invalidate()


async def load_states(session: AsyncSession) -> dict[str, FlagState]:
    """Every set flag with its gates, in one query."""
    query = select(FeatureFlag.key, FeatureGate.key, FeatureGate.value).outerjoin(
        FeatureGate, FeatureGate.feature_key == FeatureFlag.key
    )
    booleans: dict[str, bool] = {}
    percentages: dict[str, float] = {}
    actors: dict[str, set[str]] = {}
    for name, gate, value in (await session.execute(query)).all():
        named = actors.setdefault(name, set())
        if gate == BOOLEAN:
            booleans[name] = value == "true"
        elif gate == PERCENTAGE:
            percentages[name] = float(value)
        elif gate == ACTORS:
            named.add(value)
    return {
        name: FlagState(
            name,
            boolean=booleans.get(name, False),
            percentage_of_actors=percentages.get(name, 0.0),
            actors=frozenset(named),
        )
        for name, named in actors.items()
    }


async def load_state(session: AsyncSession, name: str) -> FlagState | None:
    """The gates of flag `name`; None when it was never set."""
    if await session.scalar(select(FeatureFlag.id).where(FeatureFlag.key == name)) is None:
        return None
    rows = (await session.execute(select(FeatureGate.key, FeatureGate.value).where(FeatureGate.feature_key == name))).all()
    values = {key: value for key, value in rows if key != ACTORS}
    return FlagState(
        name,
        boolean=values.get(BOOLEAN) == "true",
        percentage_of_actors=float(values.get(PERCENTAGE, 0)),
        actors=frozenset(value for key, value in rows if key == ACTORS),
    )


async def enable(session: AsyncSession, name: str) -> None:
    """On for everyone (the other gates are cleared, as Flipper does)."""
    await _persist(session, name, clear=True)
    session.add(FeatureGate(feature_key=name, key=BOOLEAN, value="true"))
    await session.flush()


async def disable(session: AsyncSession, name: str) -> None:
    """Off for everyone: every gate is cleared; the flag stays set (it no longer takes its default)."""
    await _persist(session, name, clear=True)


async def set_percentage(session: AsyncSession, name: str, percentage: float) -> None:
    """On for `percentage` (0-100) of actors; 0 removes the gate."""
    if not 0 <= percentage <= 100:
        raise ValueError(f"percentage must be between 0 and 100, got {percentage}")
    await _persist(session, name)
    await session.execute(delete(FeatureGate).where(FeatureGate.feature_key == name, FeatureGate.key == PERCENTAGE))
    if percentage > 0:
        session.add(FeatureGate(feature_key=name, key=PERCENTAGE, value=f"{percentage:g}"))
    await session.flush()


async def add_actors(session: AsyncSession, name: str, actors: Iterable[str]) -> None:
    await _persist(session, name)
    have = set(
        await session.scalars(select(FeatureGate.value).where(FeatureGate.feature_key == name, FeatureGate.key == ACTORS))
    )
    session.add_all(FeatureGate(feature_key=name, key=ACTORS, value=a) for a in dict.fromkeys(actors) if a not in have)
    await session.flush()


async def remove_actors(session: AsyncSession, name: str, actors: Iterable[str]) -> None:
    await _persist(session, name)
    where = (FeatureGate.feature_key == name, FeatureGate.key == ACTORS, FeatureGate.value.in_(list(actors)))
    await session.execute(delete(FeatureGate).where(*where))
    await session.flush()


async def delete_flag(session: AsyncSession, name: str) -> bool:
    """Forget the flag: it takes its default again. False when it was not set."""
    await session.execute(delete(FeatureGate).where(FeatureGate.feature_key == name))
    result = await session.execute(delete(FeatureFlag).where(FeatureFlag.key == name))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def _persist(session: AsyncSession, name: str, *, clear: bool = False) -> None:
    if await session.scalar(select(FeatureFlag.id).where(FeatureFlag.key == name)) is None:
        session.add(FeatureFlag(key=name))
        await session.flush()
    elif clear:
        await session.execute(delete(FeatureGate).where(FeatureGate.feature_key == name))
    logger.info("feature flag %s changed", name)
