"""The worker's re-check before any model call (SPEC §6): between enqueue and execution a flag may have been
turned off, the user removed, the resource made unreadable (e.g. set confidential), Duo switched off above
it, or the seat taken away. Any of these ends the request with `AI_NOT_PERMITTED` and no model call.

The checks are the web process's checks 4-6, read through this process's caches (≤ 5 s old).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalogue import get_feature
from catalogue.add_ons import requirement
from catalogue.flags import required_flags
from core.access import container_of, readable_resource
from core.actions import ActionRecord
from core.entitlement import Entitlements, Mode
from core.errors import AccessDenied, InvalidInput
from core.flags import FlagStore, actor_id
from core.ids import GlobalID
from core.tables import Project

__all__ = ["Verdict", "still_allowed"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether the action may still run (truthy when it may), and the full paths of the groups above its
    resource, top-level first (what model selection reads)."""

    allowed: bool
    namespace_paths: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.allowed


async def still_allowed(
    sessions: async_sessionmaker[AsyncSession],
    flags: FlagStore,
    entitlements: Entitlements,
    mode: Mode,
    record: ActionRecord,
) -> Verdict:
    """Whether the action of `record` may still run."""
    feature = get_feature(record.feature)
    states = await flags.resolve(required_flags(feature), actor_id("User", record.user_id))
    if not all(states.values()):
        return _refused(record, "flag disabled")
    async with sessions() as session:
        principal = await entitlements.principal(session, record.user_id)
        if principal is None:
            return _refused(record, "user gone")
        container = None
        if record.resource is not None:
            try:
                resource = await readable_resource(session, principal, GlobalID.parse(record.resource, argument="resourceId"))
            except (AccessDenied, InvalidInput):
                return _refused(record, "resource not readable")
            container = await container_of(resource)
        decision = await entitlements.decide(session, principal.user_id, requirement(feature), container, mode)
    if not decision.allowed:
        return _refused(record, str(decision.reason))
    group = container.group if isinstance(container, Project) else container
    return Verdict(True, tuple(group.ancestor_paths) if group is not None else ())


def _refused(record: ActionRecord, reason: str) -> Verdict:
    logger.info("permission_denied", extra={"request_id": record.request_id, "feature": record.feature, "reason": reason})
    return Verdict(False)
