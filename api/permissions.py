"""The `aiAction` checks beyond the token (SPEC §5.1): rate limit (3), feature flags (4), feature
authorization (6), and the pushed flags resolved for the job. Also what `aiFeatures` and `currentUser`
report as available, by the same rules.

Every check reads this process's caches (flags and entitlement, ≤ 5 s old) or makes one Redis round trip
(the rate limit), so the mutation's hot path stays at the queries of authentication and resource access.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from api.ratelimit import AI_ACTION_PERIOD_S, RATE_LIMITED, throttled
from api.services import Services
from catalogue import Feature
from catalogue.add_ons import requirement
from catalogue.flags import PUSHED_FLAGS, required_flags
from core.access import Principal
from core.entitlement import Decision
from core.errors import AccessDenied
from core.flags import actor_id
from core.tables import Group, Project

__all__ = [
    "FLAG_DISABLED",
    "actors_of",
    "check_flags",
    "check_rate_limit",
    "decide",
    "feature_available",
    "pushed_flags_for",
]

logger = logging.getLogger(__name__)

FLAG_DISABLED = "required feature flag is disabled."


def actors_of(principal: Principal, container: Project | Group | None = None) -> tuple[str, ...]:
    """Flipper actor ids for a flag check: the user, then the resource's project and group when known."""
    actors = [actor_id("User", principal.user_id)]
    if isinstance(container, Project):
        actors += [actor_id("Project", container.id), actor_id("Group", container.group_id)]
    elif isinstance(container, Group):
        actors.append(actor_id("Group", container.id))
    return tuple(actors)


async def check_rate_limit(services: Services, principal: Principal) -> None:
    """Check 3: GitLab's `ai_action` limit (per user, `SWITCHBOARD_AI_ACTION_RATE_LIMIT` per 8 h)."""
    limit = services.settings.ai_action_rate_limit
    if await throttled(services.redis, "ai_action", principal.user_id, limit=limit, period_s=AI_ACTION_PERIOD_S):
        raise AccessDenied(RATE_LIMITED)


async def _flags_on(services: Services, principal: Principal, feature: Feature) -> bool:
    states = await services.flags.resolve(required_flags(feature), *actors_of(principal))
    return all(states.values())


async def check_flags(services: Services, principal: Principal, feature: Feature) -> None:
    """Check 4: the feature's kill switch (and its own flag) for the user."""
    if not await _flags_on(services, principal, feature):
        raise AccessDenied(FLAG_DISABLED)


async def decide(
    services: Services, session: AsyncSession, principal: Principal, feature: Feature, container: Project | Group | None
) -> Decision:
    """Check 6: Duo enabled where the resource lives, a seat bundling the feature, maturity allowed."""
    decision = await services.entitlements.decide(
        session, principal.user_id, requirement(feature), container, services.settings.mode
    )
    if not decision.allowed:
        logger.info(
            "permission_denied",
            extra={"feature": feature.key, "user_id": principal.user_id, "reason": str(decision.reason)},
        )
    return decision


async def feature_available(
    services: Services, session: AsyncSession, principal: Principal, feature: Feature, container: Project | Group | None
) -> bool:
    """Whether `aiAction` would accept `feature` from this user about something in `container` (the rate
    limit aside)."""
    if not await _flags_on(services, principal, feature):
        return False
    decision = await services.entitlements.decide(
        session, principal.user_id, requirement(feature), container, services.settings.mode
    )
    return decision.allowed


async def pushed_flags_for(services: Services, principal: Principal, container: Project | Group | None) -> dict[str, bool]:
    """The pushed flags' states for this actor, to carry in the job."""
    if not PUSHED_FLAGS:
        return {}
    return await services.flags.resolve(PUSHED_FLAGS, *actors_of(principal, container))
