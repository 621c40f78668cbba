"""The cohort counters written by the worker's job (`worker.jobs`), in a real worker against real Redis and a
real database, in mock mode: counted once per finished action with the model the selection chose (not
the mock that answered), errors after the last retry included; refusals, chat commands and a rerun of a
job that had published count nothing."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncSession

from catalogue.flags import model_migration_flag
from core.actions import ActionRecord
from core.db import create_engine, session_factory
from core.ids import new_request_id
from core.metrics import CohortCounts, read_cohorts
from core.redis import connect
from core.settings import Settings
from core.tables import Rollout
from tests._services import run_worker
from worker.deps import build_deps
from worker.jobs import run_action

SONNET, HAIKU = "claude_sonnet_4_6", "claude_haiku_4_5_20251001"
FLAG = model_migration_flag("duo_chat")


def chat(text: str, *, user_id: int = 2, flags: dict[str, bool] | None = None) -> ActionRecord:
    return ActionRecord(request_id=new_request_id(), feature="chat", user_id=user_id, inputs={"content": text},
                        client_subscription_id="s", flags=flags or {})


async def counts(settings: Settings) -> dict[tuple[str, str], CohortCounts]:
    redis = connect(settings.redis_url or "")
    try:
        now = time.time()
        return await read_cohorts(redis, "duo_chat", now - 120, now)
    finally:
        await redis.aclose()


async def test_answers_and_final_errors_are_counted_once_with_the_selected_model(settings: Settings, seeded: dict) -> None:
    settings = settings.model_copy(update={"retry_base_delay_s": 0.01})
    answered, failed = chat("fine"), chat('<response error="500">x</response>')  # 1 + 3 retries, then an error
    await run_worker(settings, answered, failed, chat("/reset"))  # a command: no model call
    (cohort, tally), = (await counts(settings)).items()
    assert cohort == (SONNET, "^1.0.0")  # the mock answered; the selection chose Sonnet
    assert (tally.requests, tally.errors, tally.apdex_ok, tally.ttfc_count) == (2, 1, 1, 1)
    redis = connect(settings.redis_url or "")
    deps = build_deps(settings, redis)
    try:  # a rerun of a job whose final is out (another worker took it over) counts nothing
        assert await run_action({"deps": deps, "job_try": 2}, failed.model_dump_json()) == "done before"
    finally:
        await deps.close()
        await redis.aclose()
    assert (await counts(settings))[(SONNET, "^1.0.0")].requests == 2


async def test_an_actor_in_a_rollout_is_counted_with_the_rollouts_model_and_a_refusal_is_not(
    settings: Settings, seeded: dict
) -> None:
    engine = create_engine(settings.database)
    try:
        async with session_factory(engine)() as session, session.begin():
            await _running_rollout(session)
    finally:
        await engine.dispose()
    in_rollout = chat("hello", flags={FLAG: True})
    refused = chat("hello", user_id=999_999, flags={FLAG: True})  # no such user: the re-check refuses
    await run_worker(settings, in_rollout, chat("hello"), refused)
    found = await counts(settings)
    assert {cohort: tally.requests for cohort, tally in found.items()} == {(HAIKU, "^1.0.0"): 1, (SONNET, "^1.0.0"): 1}


async def _running_rollout(session: AsyncSession) -> None:
    session.add(Rollout(kind="model", subject="duo_chat", flag=FLAG, from_ref=SONNET, to_ref=HAIKU, steps=["user:alice"],
                        config={}, state="running", created_by="test"))
