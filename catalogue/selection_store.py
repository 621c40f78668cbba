"""The model selection settings as one `Selection` snapshot: read in one query, cached per process for at
most `ttl_s` (5 s, like flags) in a `core.cache.TtlCache`, so that the worker's hot path costs a dict lookup
and a change made by any process is in force everywhere within that time. A caller that holds a session
passes it (the snapshot then loads through it, never through a second connection)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sqlalchemy import ColumnElement, Integer, Text, cast, literal, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalogue.selection import InstanceChoice, RegisteredModel, Selection
from core.cache import TtlCache
from core.tables import (
    ACTIVE_STATES,
    FeatureSettingChoice,
    Group,
    NamespaceFeatureSetting,
    Rollout,
    SelfHostedModel,
)

__all__ = ["CACHE_TTL_S", "SelectionStore", "load_selection"]

CACHE_TTL_S = 5.0
_SNAPSHOT = "selection"  # the cache's one key


def _text(column: Any) -> ColumnElement[str]:
    return cast(column, Text)


def _none() -> ColumnElement[str]:
    return cast(null(), Text)


async def load_selection(session: AsyncSession) -> Selection:
    """Every instance choice, namespace choice, registered self-hosted model and guarded rollout (running, or
    promoted), in one query."""
    instance = select(
        literal("i").label("kind"), cast(null(), Integer).label("num"), _text(FeatureSettingChoice.feature).label("a"),
        _text(FeatureSettingChoice.provider).label("b"), _text(FeatureSettingChoice.default_model_ref).label("c"),
        _text(FeatureSettingChoice.available_model_refs).label("d"), _none().label("e"),
    )
    namespaces = select(
        literal("n"), NamespaceFeatureSetting.namespace_id, _text(NamespaceFeatureSetting.feature),
        _text(NamespaceFeatureSetting.offered_model_ref), _text(Group.full_path), _none(), _none(),
    ).join(Group, Group.id == NamespaceFeatureSetting.namespace_id)
    rollouts = select(
        literal("r"), Rollout.id, _text(Rollout.kind), _text(Rollout.subject), _text(Rollout.flag), _text(Rollout.to_ref),
        _text(Rollout.state),
    ).where(Rollout.state.in_([*ACTIVE_STATES, "promoted"]))
    models = select(
        literal("s"), SelfHostedModel.id, _text(SelfHostedModel.name), _text(SelfHostedModel.model),
        _text(SelfHostedModel.endpoint), _text(SelfHostedModel.identifier), _text(SelfHostedModel.encrypted_api_token),
    )
    instance_choices: dict[str, InstanceChoice] = {}
    namespace_choices: dict[tuple[str, str], str] = {}
    registered: dict[str, RegisteredModel] = {}
    running: dict[str, str] = {}
    promoted: dict[tuple[str, str], tuple[int, str]] = {}  # the latest promotion wins
    for kind, num, a, b, c, d, e in (await session.execute(union_all(instance, namespaces, models, rollouts))).all():
        if kind == "r":
            if e == "promoted":
                if (a, b) not in promoted or promoted[(a, b)][0] < num:
                    promoted[(a, b)] = (num, d)
            else:
                running[c] = d
        elif kind == "i":
            instance_choices[a] = InstanceChoice(b, c, tuple(json.loads(d or "[]")))
        elif kind == "n":
            namespace_choices[(c, a)] = b
        else:
            model = RegisteredModel(num, a, b, c, d, e)
            registered[model.ref] = model
    return Selection(
        MappingProxyType(instance_choices), MappingProxyType(namespace_choices), MappingProxyType(registered),
        MappingProxyType(running), MappingProxyType({key: ref for key, (_, ref) in promoted.items()}),
    )


@dataclass
class SelectionStore:
    """This process's snapshot of the settings, at most `ttl_s` old."""

    sessions: async_sessionmaker[AsyncSession]
    ttl_s: float = CACHE_TTL_S
    clock: Callable[[], float] = time.monotonic
    _cache: TtlCache[str, Selection] = field(init=False)

    def __post_init__(self) -> None:
        self._cache = TtlCache(self.ttl_s, max_entries=1, clock=self.clock)

    async def get(self, session: AsyncSession | None = None) -> Selection:
        found = self._cache.get(_SNAPSHOT)
        if found is not None:
            return found
        if session is not None:
            return await self._cache.get_or_load(_SNAPSHOT, lambda: load_selection(session), hold=session.connection)
        async with self.sessions() as own:  # takes a connection only if this caller loads
            return await self._cache.get_or_load(_SNAPSHOT, lambda: load_selection(own), hold=own.connection)

    def invalidate(self) -> None:
        """Forget the snapshot: the next read loads again (after a write made by this process)."""
        self._cache.invalidate()
