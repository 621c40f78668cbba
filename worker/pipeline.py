"""Running one AI action: re-check access, call the model, stream chunks, publish exactly one final message.

No arq and no retry policy here: errors propagate to `worker.jobs`, which decides.
"""

from __future__ import annotations

import asyncio
import logging
import time

from catalogue import Feature, get_feature
from core.access import get_principal, readable_resource
from core.actions import ActionRecord
from core.errors import AI_NOT_PERMITTED, AccessDenied
from core.ids import GlobalID
from subscriptions import history
from subscriptions.messages import AiMessage, routes_for
from worker.deps import Deps
from worker.llm import Completion

__all__ = ["execute", "publish_failure", "user_text"]

log = logging.getLogger(__name__)


def user_text(feature: Feature, record: ActionRecord) -> str:
    if feature.user_text_field is None:
        return feature.humanized
    return str(record.inputs.get(feature.user_text_field, ""))


def _routes(record: ActionRecord, feature: Feature, *, with_subscription: bool) -> list[str]:
    return routes_for(
        f"gid://gitlab/User/{record.user_id}",
        resource_gid=record.resource,
        ai_action=feature.ai_action,
        client_subscription_id=record.client_subscription_id if with_subscription else None,
    )


def _final_routes(record: ActionRecord, feature: Feature) -> list[str]:
    """The answer goes to the request's own routes; a chat answer is also broadcast to every tab."""
    routes = _routes(record, feature, with_subscription=True)
    if record.client_subscription_id is not None and feature.ai_action is not None:
        routes += _routes(record, feature, with_subscription=False)
    return routes


async def execute(deps: Deps, record: ActionRecord, *, attempt: int = 0) -> None:
    feature = get_feature(record.feature)
    if not await _still_allowed(deps, record):
        await _publish_final(deps, record, feature, AiMessage(record.request_id, "assistant", errors=(AI_NOT_PERMITTED,)))
        return
    model = deps.model_for(feature)
    completion = Completion(system="", user=user_text(feature, record), turn=attempt)
    chunk_routes = _routes(record, feature, with_subscription=True) if record.client_subscription_id else None
    parts: list[str] = []
    started = time.perf_counter()
    async with asyncio.timeout(deps.timeout_for(feature)):
        async for delta in model.stream(completion):
            parts.append(delta)
            if chunk_routes:
                chunk = AiMessage(record.request_id, "assistant", content=delta, chunk_id=len(parts), thread_id=record.thread_id)
                await deps.publisher.publish(chunk, chunk_routes)
    content = "".join(parts)
    answer = AiMessage(
        record.request_id,
        "assistant",
        content=content,
        content_html=deps.markdown.render(content),
        thread_id=record.thread_id,
    )
    if await _publish_final(deps, record, feature, answer):
        log.info(
            "completion_service_performed",
            extra={"request_id": record.request_id, "feature": feature.key, "model": model.name,
                   "duration_s": round(time.perf_counter() - started, 4)},
        )


async def publish_failure(deps: Deps, record: ActionRecord, text: str) -> None:
    """End the request with a user-facing error (no-op when its final message is out already)."""
    feature = get_feature(record.feature)
    await _publish_final(deps, record, feature, AiMessage(record.request_id, "assistant", errors=(text,), thread_id=record.thread_id))


async def _publish_final(deps: Deps, record: ActionRecord, feature: Feature, message: AiMessage) -> bool:
    cursor = await deps.publisher.publish(message, _final_routes(record, feature), final=True)
    if cursor is None:
        return False
    if feature.cache_response:
        await history.append(deps.redis, record.user_id, message)
    return True


async def _still_allowed(deps: Deps, record: ActionRecord) -> bool:
    """The worker's re-check: the user still exists and can still read the resource."""
    async with deps.sessions() as session:
        principal = await get_principal(session, record.user_id)
        if principal is None:
            return False
        if record.resource is None:
            return True
        try:
            await readable_resource(session, principal, GlobalID.parse(record.resource, argument="resourceId"))
        except AccessDenied:
            return False
    return True
