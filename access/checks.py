"""The `aiAction` checks beyond the token (SPEC §5.1), composed once for every caller: the mutation, the
`aiFeatures` / `available` fields, and the worker's re-check before any model call.

- 3 rate limit: `check_rate_limit` (one Redis round trip; the mutation only);
- 4 feature flags, 5 the resource readable, 6 entitlement: `Gate.authorize`, in that order;
- `Gate.available`: checks 4 and 6 about a known place (what `aiFeatures` reports);
- `Gate.recheck`: 4-6 again in the worker, where a refusal is an answer rather than an error.

Every check reads this process's caches (flags and entitlement, ≤ 5 s old), so the hot path stays at the
queries of resource access; a cache that has to load does so through the caller's session, never through a
second pool connection (a request waiting for a second connection while it holds one deadlocks the pool
under load).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from access.entitlement import Decision, Entitlements, Mode, Refusal
from access.flags import FlagStore, actor_id
from access.ratelimit import AI_ACTION_PERIOD_S, RATE_LIMITED, throttled
from access.reading import Resource, container_of, readable_resource
from access.tokens import Principal
from catalogue import Feature, get_feature
from catalogue.add_ons import requirement
from catalogue.flags import PUSHED_FLAGS, required_flags
from core.actions import ActionRecord
from core.errors import AccessDenied, InvalidInput
from core.ids import GlobalID
from core.tables import Group, Project

__all__ = ["FLAG_DISABLED", "Authorization", "Gate", "actors_of", "check_rate_limit"]

logger = logging.getLogger(__name__)

FLAG_DISABLED = "required feature flag is disabled."

Container = Project | Group | None


def actors_of(principal: Principal, container: Container = None) -> tuple[str, ...]:
    """Flipper actor ids for a flag check: the user, then the resource's project and group when known."""
    actors = [actor_id("User", principal.user_id)]
    if isinstance(container, Project):
        actors += [actor_id("Project", container.id), actor_id("Group", container.group_id)]
    elif isinstance(container, Group):
        actors.append(actor_id("Group", container.id))
    return tuple(actors)


async def check_rate_limit(redis: Redis, principal: Principal, limit: int) -> None:
    """Check 3: GitLab's `ai_action` limit (per user, `SWITCHBOARD_AI_ACTION_RATE_LIMIT` per 8 h)."""
    if await throttled(redis, "ai_action", principal.user_id, limit=limit, period_s=AI_ACTION_PERIOD_S):
        raise AccessDenied(RATE_LIMITED)


@dataclass(frozen=True, slots=True)
class Authorization:
    """The outcome of checks 4-6: allowed (truthy) or the reason; the place whose Duo settings govern the
    resource, and the full paths of the groups above it, top-level first (what model selection reads)."""

    allowed: bool
    reason: Refusal | str | None = None
    container: Container = None
    principal: Principal | None = None  # the user checked (the worker's re-check loads it for the chat tools)
    resource: Resource | None = None  # the resource read by check 5 (the worker's prompt describes it)

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def namespace_paths(self) -> tuple[str, ...]:
        group = self.container.group if isinstance(self.container, Project) else self.container
        return tuple(group.ancestor_paths) if group is not None else ()


@dataclass(frozen=True, slots=True)
class Gate:
    """Checks 4-6 over one process's caches of flags and entitlement."""

    flags: FlagStore
    entitlements: Entitlements
    mode: Mode

    async def flags_on(
        self, principal: Principal, feature: Feature, container: Container = None, *, session: AsyncSession | None = None
    ) -> bool:
        """Check 4: the feature's kill switch (and its own flag) for the user."""
        states = await self.flags.resolve(required_flags(feature), *actors_of(principal, container), session=session)
        return all(states.values())

    async def authorize(
        self, session: AsyncSession, principal: Principal, feature: Feature, resource: GlobalID | None
    ) -> Authorization:
        """Checks 4, 5 and 6 in order. A disabled flag raises AccessDenied(FLAG_DISABLED), an unreadable
        resource AccessDenied with GitLab's text; a refused entitlement is returned (an answer, not an error)."""
        if not await self.flags_on(principal, feature, session=session):
            raise AccessDenied(FLAG_DISABLED)
        found = await readable_resource(session, principal, resource) if resource is not None else None
        verdict = await self.entitled(session, principal, feature, await container_of(found))
        return replace(verdict, resource=found)

    async def entitled(self, session: AsyncSession, principal: Principal, feature: Feature, container: Container) -> Authorization:
        """Check 6: Duo enabled where the resource lives, a seat bundling the feature, maturity allowed."""
        decision: Decision = await self.entitlements.decide(
            session, principal.user_id, requirement(feature), container, self.mode
        )
        if not decision.allowed:
            logger.info("permission_denied", extra={"feature": feature.key, "user_id": principal.user_id,
                                                    "reason": str(decision.reason)})
        return Authorization(decision.allowed, decision.reason, container)

    async def available(self, session: AsyncSession, principal: Principal, feature: Feature, container: Container) -> bool:
        """Whether `aiAction` would accept `feature` from this user about something in `container` (the rate
        limit aside)."""
        if not await self.flags_on(principal, feature, session=session):
            return False
        return (await self.entitled(session, principal, feature, container)).allowed

    async def unit_primitives(self, session: AsyncSession, principal: Principal) -> frozenset[str]:
        """The unit primitives the user's add-on seats unlock in this mode (the chat tools they may use)."""
        return await self.entitlements.unit_primitives(session, principal.user_id, self.mode)

    async def pushed_flags(
        self, principal: Principal, container: Container, *, session: AsyncSession | None = None
    ) -> dict[str, bool]:
        """The pushed flags' states for this actor, to carry in the job (`session`: the caller's, if any)."""
        if not PUSHED_FLAGS:
            return {}
        return await self.flags.resolve(PUSHED_FLAGS, *actors_of(principal, container), session=session)

    async def recheck(self, session: AsyncSession, record: ActionRecord) -> Authorization:
        """The worker's re-check before any model call (SPEC §6): between enqueue and execution a flag may
        have been turned off, the user removed, the resource made unreadable, Duo switched off above it, or
        the seat taken away. Any of these is a refusal (logged as `permission_denied`), never an error."""
        feature = get_feature(record.feature)
        principal = await self.entitlements.principal(session, record.user_id)
        if principal is None:
            return _refused(record, "user gone")
        try:
            resource = GlobalID.parse(record.resource, argument="resourceId") if record.resource else None
            verdict = await self.authorize(session, principal, feature, resource)
            return replace(verdict, principal=principal)
        except (AccessDenied, InvalidInput) as exc:
            return _refused(record, "flag disabled" if str(exc) == FLAG_DISABLED else "resource not readable")


def _refused(record: ActionRecord, reason: str) -> Authorization:
    logger.info("permission_denied", extra={"request_id": record.request_id, "feature": record.feature, "reason": reason})
    return Authorization(False, reason)
