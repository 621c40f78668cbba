"""May this user use this feature on this resource: SPEC §5.1 check 6 and §6, for the web and the worker.

In order, a feature is refused when:
1. it is not offered on self-managed instances and this is one (`self_managed: false`);
2. Duo is off for the resource's project or group (`duo_features_enabled` cascades down from the instance
   through the group tree to the project; a level that sets `lock_duo_features_enabled` imposes its value
   below it), or for the instance when there is no resource;
3. the user holds no active seat of an add-on that bundles the feature's unit primitive: on SaaS a seat of a
   purchase made for a top-level group, on self-managed one of the instance's purchase;
4. the feature is beta or experimental and experiments are off: on SaaS the resource's top-level group's
   `experiment_features_enabled` (without a resource: that of a group whose seat entitles the user), on
   self-managed the instance's `instance_level_ai_beta_features_enabled`.

Callers describe the feature as a `catalogue.add_ons.Requirement` (the add-ons bundling
its unit primitive, its maturity, `self_managed`).

`Entitlements` caches what it reads (instance settings, a user's seats, a group's ancestry) for `ttl_s`
(5 s) in this process (a `core.cache.TtlCache`), so the mutation's hot path usually runs no query; a change
is in force everywhere within that time, as with feature flags. Every load runs on the caller's session.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from access.tokens import Principal, get_principal
from catalogue.add_ons import Requirement, unit_primitives
from core.cache import TtlCache
from core.tables import (
    AddOnAssignment,
    AddOnPurchase,
    Group,
    InstanceSettings,
    Project,
    utcnow,
)

__all__ = [
    "CACHE_TTL_S",
    "Cascade",
    "Decision",
    "Entitlements",
    "GroupSetting",
    "InstanceDuo",
    "Mode",
    "Refusal",
    "Seat",
    "cascade",
    "decide",
    "load_chain",
    "load_instance",
    "load_seats",
    "seat_primitives",
]

Mode = Literal["saas", "self_managed"]
CACHE_TTL_S = 5.0
_T = TypeVar("_T")


class Refusal(StrEnum):
    NOT_ON_SELF_MANAGED = "not_on_self_managed"
    DUO_DISABLED = "duo_disabled"
    NO_SEAT = "no_seat"
    EXPERIMENTS_DISABLED = "experiments_disabled"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: Refusal | None = None
    add_on: str | None = None  # the add-on whose seat entitles the user


@dataclass(frozen=True, slots=True)
class InstanceDuo:
    duo_features_enabled: bool = True
    lock_duo_features_enabled: bool = False
    beta_features_enabled: bool = False


@dataclass(frozen=True, slots=True)
class GroupSetting:
    path: str
    duo_features_enabled: bool | None
    lock_duo_features_enabled: bool
    experiment_features_enabled: bool


@dataclass(frozen=True, slots=True)
class Seat:
    add_on: str
    namespace_id: int | None  # None: an instance purchase
    started_at: datetime
    expires_at: datetime | None
    experiments: bool  # the purchase's top-level group has experiment features on

    def active(self, now: datetime) -> bool:
        return self.started_at <= now and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class Cascade:
    """The effective `duo_features_enabled` of a place, where it comes from, and who locks it."""

    enabled: bool
    source: str  # "instance", a group's full path or a project's
    locked_by: str | None  # "instance", a group's full path, or None


def cascade(instance: InstanceDuo, groups: Sequence[GroupSetting], project: tuple[str, bool | None] | None = None) -> Cascade:
    """Resolve `duo_features_enabled` down instance → groups (top-level first) → project."""
    if instance.lock_duo_features_enabled:
        return Cascade(instance.duo_features_enabled, "instance", "instance")
    value, source = instance.duo_features_enabled, "instance"
    for group in groups:
        if group.duo_features_enabled is not None:
            value, source = group.duo_features_enabled, group.path
        if group.lock_duo_features_enabled:
            return Cascade(value, source, group.path)
    if project is not None and project[1] is not None:
        value, source = project[1], project[0]
    return Cascade(value, source, None)


def decide(
    requirement: Requirement,
    mode: Mode,
    *,
    instance: InstanceDuo,
    seats: Sequence[Seat],
    place: Cascade | None,
    root_experiments: bool = False,
    now: datetime | None = None,
) -> Decision:
    """The decision for a user holding `seats`, about a resource whose Duo setting is `place` (None: no
    resource) under a top-level group with `root_experiments`."""
    if mode == "self_managed" and not requirement.self_managed:
        return Decision(False, Refusal.NOT_ON_SELF_MANAGED)
    enabled = place.enabled if place is not None else instance.duo_features_enabled
    if not enabled:
        return Decision(False, Refusal.DUO_DISABLED)
    instance_seats = mode == "self_managed"
    usable = [seat for seat in _usable(seats, mode, now) if seat.add_on in requirement.add_ons]
    if not usable:
        return Decision(False, Refusal.NO_SEAT)
    if requirement.maturity != "ga":
        if instance_seats:
            experiments = instance.beta_features_enabled
        elif place is not None:
            experiments = root_experiments
        else:
            experiments = any(seat.experiments for seat in usable)
        if not experiments:
            return Decision(False, Refusal.EXPERIMENTS_DISABLED)
    return Decision(True, add_on=usable[0].add_on)


def seat_primitives(seats: Sequence[Seat], mode: Mode, now: datetime | None = None) -> frozenset[str]:
    """The unit primitives that `seats` unlock in `mode` (what `decide` counts as a seat: active, and of a
    purchase of this mode's kind). The chat agent offers the tools among them."""
    return unit_primitives(seat.add_on for seat in _usable(seats, mode, now))


def _usable(seats: Sequence[Seat], mode: Mode, now: datetime | None) -> list[Seat]:
    """The active seats of purchases that count in `mode`: on SaaS a top-level group's, on self-managed the
    instance's."""
    now = now or utcnow()
    instance_seats = mode == "self_managed"
    return [seat for seat in seats if (seat.namespace_id is None) == instance_seats and seat.active(now)]


async def load_instance(session: AsyncSession) -> InstanceDuo:
    row = await session.get(InstanceSettings, 1)
    if row is None:
        return InstanceDuo()
    return InstanceDuo(row.duo_features_enabled, row.lock_duo_features_enabled, row.instance_level_ai_beta_features_enabled)


async def load_seats(session: AsyncSession, user_id: int) -> tuple[Seat, ...]:
    """Every seat assigned to the user, active or not, with its purchase's terms."""
    query = (
        select(
            AddOnPurchase.add_on,
            AddOnPurchase.namespace_id,
            AddOnPurchase.started_at,
            AddOnPurchase.expires_at,
            Group.experiment_features_enabled,
        )
        .join(AddOnAssignment, AddOnAssignment.purchase_id == AddOnPurchase.id)
        .outerjoin(Group, Group.id == AddOnPurchase.namespace_id)
        .where(AddOnAssignment.user_id == user_id)
        .order_by(AddOnPurchase.id)
    )
    return tuple(Seat(a, n, s, e, bool(x)) for a, n, s, e, x in (await session.execute(query)).all())


async def load_chain(session: AsyncSession, group: Group) -> tuple[GroupSetting, ...]:
    """The Duo settings of `group` and every group above it, top-level first."""
    paths = group.ancestor_paths
    query = select(
        Group.full_path, Group.duo_features_enabled, Group.lock_duo_features_enabled, Group.experiment_features_enabled
    ).where(Group.full_path.in_(paths))
    rows = {row[0]: GroupSetting(*row) for row in (await session.execute(query)).all()}
    return tuple(rows[path] for path in paths if path in rows)


@dataclass
class Entitlements:
    """Decisions with this process's short-lived cache of what they read."""

    ttl_s: float = CACHE_TTL_S
    max_entries: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _cache: TtlCache[Hashable, Any] = field(init=False)

    def __post_init__(self) -> None:
        self._cache = TtlCache(self.ttl_s, max_entries=self.max_entries, clock=self.clock)

    async def decide(
        self,
        session: AsyncSession,
        user_id: int,
        requirement: Requirement,
        container: Project | Group | None,
        mode: Mode,
    ) -> Decision:
        """`container` is the resource's project or group as `core.access.container_of` gives it (loaded)."""
        instance = await self._cached(session, ("instance",), lambda: load_instance(session))
        seats = await self._cached(session, ("seats", user_id), lambda: load_seats(session, user_id))
        place, root_experiments = None, False
        if container is not None:
            place, root_experiments = await self.place(session, container, instance)
        return decide(requirement, mode, instance=instance, seats=seats, place=place, root_experiments=root_experiments)

    async def place(
        self, session: AsyncSession, container: Project | Group, instance: InstanceDuo | None = None
    ) -> tuple[Cascade, bool]:
        """The Duo cascade of a project or group, and whether its top-level group has experiments on."""
        if instance is None:
            instance = await self._cached(session, ("instance",), lambda: load_instance(session))
        group = container.group if isinstance(container, Project) else container
        chain = await self._cached(session, ("chain", group.id), lambda: load_chain(session, group))
        project = (container.full_path, container.duo_features_enabled) if isinstance(container, Project) else None
        root_experiments = bool(chain) and chain[0].experiment_features_enabled
        return cascade(instance, chain, project), root_experiments

    async def principal(self, session: AsyncSession, user_id: int) -> Principal | None:
        """The user as the worker's re-check sees them (None once deleted), cached like the rest."""
        return await self._cached(session, ("principal", user_id), lambda: get_principal(session, user_id))

    async def seats(self, session: AsyncSession, user_id: int) -> tuple[Seat, ...]:
        return await self._cached(session, ("seats", user_id), lambda: load_seats(session, user_id))

    async def unit_primitives(self, session: AsyncSession, user_id: int, mode: Mode) -> frozenset[str]:
        """The unit primitives the user's seats unlock (`seat_primitives` over the cached seats)."""
        return seat_primitives(await self.seats(session, user_id), mode)

    def clear(self) -> None:
        self._cache.invalidate()

    async def _cached(self, session: AsyncSession, key: tuple[Any, ...], load: Callable[[], Awaitable[_T]]) -> _T:
        """One load per key at a time, through the caller's session (its connection taken first: see
        `core.cache`)."""
        return await self._cache.get_or_load(key, load, hold=session.connection)
