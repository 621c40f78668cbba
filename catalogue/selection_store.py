"""The model selection settings as one `Selection` snapshot: read in one query, cached per process for at
most `ttl_s` (5 s, like flags), so that the worker's hot path costs a dict lookup and a change made by any
process is in force everywhere within that time."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from types import MappingProxyType

from sqlalchemy import Integer, Text, cast, literal, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalogue.selection import InstanceChoice, RegisteredModel, Selection
from core.tables import (
    FeatureSettingChoice,
    Group,
    NamespaceFeatureSetting,
    SelfHostedModel,
)

__all__ = ["CACHE_TTL_S", "SelectionStore", "load_selection"]

CACHE_TTL_S = 5.0


def _text(column: object) -> object:
    return cast(column, Text)


def _none() -> object:
    return cast(null(), Text)


async def load_selection(session: AsyncSession) -> Selection:
    """Every instance choice, namespace choice and registered self-hosted model, in one query."""
    instance = select(
        literal("i").label("kind"), cast(null(), Integer).label("num"), _text(FeatureSettingChoice.feature).label("a"),
        _text(FeatureSettingChoice.provider).label("b"), _text(FeatureSettingChoice.default_model_ref).label("c"),
        _text(FeatureSettingChoice.available_model_refs).label("d"), _none().label("e"),
    )
    namespaces = select(
        literal("n"), NamespaceFeatureSetting.namespace_id, _text(NamespaceFeatureSetting.feature),
        _text(NamespaceFeatureSetting.offered_model_ref), _text(Group.full_path), _none(), _none(),
    ).join(Group, Group.id == NamespaceFeatureSetting.namespace_id)
    models = select(
        literal("s"), SelfHostedModel.id, _text(SelfHostedModel.name), _text(SelfHostedModel.model),
        _text(SelfHostedModel.endpoint), _text(SelfHostedModel.identifier), _text(SelfHostedModel.encrypted_api_token),
    )
    instance_choices: dict[str, InstanceChoice] = {}
    namespace_choices: dict[tuple[str, str], str] = {}
    registered: dict[str, RegisteredModel] = {}
    for kind, num, a, b, c, d, e in (await session.execute(union_all(instance, namespaces, models))).all():
        if kind == "i":
            instance_choices[a] = InstanceChoice(b, c, tuple(json.loads(d or "[]")))
        elif kind == "n":
            namespace_choices[(c, a)] = b
        else:
            model = RegisteredModel(num, a, b, c, d, e)
            registered[model.ref] = model
    return Selection(
        MappingProxyType(instance_choices), MappingProxyType(namespace_choices), MappingProxyType(registered)
    )


@dataclass
class SelectionStore:
    """This process's snapshot of the settings, at most `ttl_s` old."""

    sessions: async_sessionmaker[AsyncSession]
    ttl_s: float = CACHE_TTL_S
    _selection: Selection = field(default_factory=Selection, init=False)
    _loaded_at: float = field(default=float("-inf"), init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def get(self) -> Selection:
        if time.monotonic() - self._loaded_at < self.ttl_s:
            return self._selection
        async with self._lock:
            if time.monotonic() - self._loaded_at >= self.ttl_s:
                async with self.sessions() as session:
                    self._selection = await load_selection(session)
                self._loaded_at = time.monotonic()
        return self._selection

    def invalidate(self) -> None:
        """Forget the snapshot: the next read loads again (after a write made by this process)."""
        self._loaded_at = float("-inf")
