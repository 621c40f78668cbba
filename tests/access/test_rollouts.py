"""Guarded rollouts, the operator's side (SPEC §9.1), on a real database: start and its pre-gate, the steps as
flag gates, pause/resume/abort/promote and their refusals, what the selection snapshot then serves, views."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from access import flags
from access.admin import model_settings, rollouts
from access.admin.rollouts import RolloutConfig, RolloutError
from access.admin.seed import seed
from access.flags import actor_id, in_percentage
from catalogue import get_catalogue
from catalogue.selection import resolve_model, resolve_prompt_version
from catalogue.selection_store import load_selection
from core.db import create_engine, session_factory
from core.secrets import SecretBox
from core.tables import Group, ModelSelectionAuditEvent, Rollout, RolloutEvent, User

CATALOGUE = get_catalogue()
SONNET, HAIKU = "claude_sonnet_4_6", "claude_haiku_4_5_20251001"
FLAG = "model_migration_duo_chat"


@dataclass(frozen=True)
class Gate:
    """An evaluation run's gate as `evaluation.store.gate_result` returns it."""

    status: str = "pass"
    reasons: tuple[str, ...] = ()
    feature: str = "chat"
    model: str = HAIKU
    baseline: str | None = SONNET
    prompt_version: str | None = None
    baseline_prompt_version: str | None = None


@pytest.fixture
async def db(session: AsyncSession) -> AsyncSession:
    await seed(session)
    await session.commit()
    return session


async def start(session: AsyncSession, **options: object) -> Rollout:
    values: dict = {"kind": "model", "subject": "duo_chat", "to": HAIKU, "force": True} | options
    return await rollouts.start(session, None, CATALOGUE, **values)


async def audits(session: AsyncSession) -> list[ModelSelectionAuditEvent]:
    return list(await session.scalars(select(ModelSelectionAuditEvent).order_by(ModelSelectionAuditEvent.id)))


async def ids(session: AsyncSession) -> tuple[str, str]:
    alice = await session.scalar(select(User.id).where(User.username == "alice"))
    group = await session.scalar(select(Group.id).where(Group.full_path == "gitlab-duo"))
    assert alice is not None and group is not None
    return actor_id("User", alice), actor_id("Group", group)


async def test_steps_become_flag_gates_named_actors_first_and_actors_in_stay_in(db: AsyncSession) -> None:
    steps = ["user:alice", "group:gitlab-duo", "5", "50", "100"]
    rollout = await start(db, steps=steps)
    alice, group = await ids(db)
    assert (rollout.state, rollout.step_index, rollout.from_ref, rollout.flag) == ("running", 0, SONNET, FLAG)
    state = await flags.load_state(db, FLAG)
    assert state is not None and state.actors == {alice} and state.percentage_of_actors == 0
    population = [actor_id("User", n) for n in range(1000, 4000)]
    before: set[str] = set()
    for index, expected in enumerate([0, 0, 5, 50, 100]):
        rollout.step_index = index
        await rollouts.apply_step(db, rollout)
        state = await flags.load_state(db, FLAG)
        assert state is not None and state.percentage_of_actors == expected
        assert state.actors == ({alice} if index == 0 else {alice, group})
        inside = {actor for actor in population if state.enabled_for([actor])}
        assert before <= inside  # actors already in stay in
        assert inside == {a for a in population if in_percentage(FLAG, a, expected)}
        before = inside
    assert before == set(population)


async def test_a_running_rollout_serves_its_target_to_the_actors_its_flag_holds(db: AsyncSession) -> None:
    await start(db, steps=["50", "100"])
    selection = await load_selection(db)
    assert selection.rollouts == {FLAG: HAIKU}
    inside = resolve_model(CATALOGUE, "duo_chat", selection=selection, flags={FLAG: True})
    outside = resolve_model(CATALOGUE, "duo_chat", selection=selection, flags={FLAG: False})
    assert (inside.model and inside.model.identifier, inside.source) == (HAIKU, f"rollout {FLAG}")
    assert outside.model is not None and outside.model.identifier == SONNET
    await rollouts.pause(db, None, "model", "duo_chat", "looking")
    assert (await load_selection(db)).rollouts == {FLAG: HAIKU}  # paused: the flag still holds its actors


async def test_promote_makes_the_target_the_default_and_retires_the_flag(db: AsyncSession) -> None:
    await start(db)
    promoted = await rollouts.promote(db, "ops", "model", "duo_chat")
    assert promoted.state == "promoted" and promoted.finished_at is not None
    assert await flags.load_state(db, FLAG) is None  # deleted: its default, off
    selection = await load_selection(db)
    assert selection.promoted == {("model", "duo_chat"): HAIKU} and selection.rollouts == {}
    choice = resolve_model(CATALOGUE, "duo_chat", selection=selection, flags={}, default_model=SONNET)
    assert choice.model is not None and (choice.model.identifier, choice.source) == (HAIKU, "promoted")
    assert [a.action for a in await audits(db)][-1] == "rollout_promoted"
    assert (await audits(db))[-1].author_name == "ops"
    # The next migration starts from the promoted default.
    again = await start(db, to=SONNET)
    assert again.from_ref == HAIKU


async def test_the_state_machine_refuses_wrong_moves_with_the_reason(db: AsyncSession) -> None:
    with pytest.raises(RolloutError, match="no model rollout of 'duo_chat' to pause"):
        await rollouts.pause(db, None, "model", "duo_chat")
    with pytest.raises(RolloutError, match="unknown feature 'chta'; did you mean chat"):
        await rollouts.promote(db, None, "prompt", "chta")
    rollout = await start(db)
    with pytest.raises(RolloutError, match="is running .abort or promote it first"):
        await start(db, to="gemini_2_5_pro")
    with pytest.raises(RolloutError, match="cannot resume .* it is running"):
        await rollouts.resume(db, None, "model", "duo_chat")
    await rollouts.pause(db, None, "model", "duo_chat", "lunch")
    with pytest.raises(RolloutError, match="cannot pause .* it is paused: lunch"):
        await rollouts.pause(db, None, "model", "duo_chat")
    rollout.step_started_at -= timedelta(hours=1)
    rollout.extended, rollout.failures = True, 1
    await rollouts.resume(db, None, "model", "duo_chat")
    assert (rollout.state, rollout.reason, rollout.extended, rollout.failures) == ("running", None, False, 0)
    view = (await rollouts.status(db, "model", "duo_chat"))[0]
    assert view.time_in_step_s < 600  # the step clock restarted
    await rollouts.abort(db, None, "model", "duo_chat", "changed my mind")
    state = await flags.load_state(db, FLAG)
    assert state is not None and state.state == "off"
    assert (rollout.state, rollout.reason) == ("aborted", "changed my mind")
    for action in (rollouts.resume, rollouts.promote):
        with pytest.raises(RolloutError, match="it is aborted .*changed my mind"):
            await action(db, None, "model", "duo_chat")
    second = await start(db)
    await rollouts.roll_back(db, second, "error ratio 0.4 past the hard limit 0.2")
    with pytest.raises(RolloutError, match="it is rolled back .*error ratio 0.4"):
        await rollouts.resume(db, None, "model", "duo_chat")
    events = [e.kind for e in await db.scalars(select(RolloutEvent).where(RolloutEvent.rollout_id == rollout.id)
                                               .order_by(RolloutEvent.id))]
    assert events == ["started", "paused", "resumed", "aborted"]
    assert [a.action for a in await audits(db)][-5:] == ["rollout_resumed", "rollout_aborted", "rollout_forced",
                                                         "rollout_started", "rollout_rolled_back"]


async def test_the_pre_gate(db: AsyncSession) -> None:
    with pytest.raises(RolloutError, match=f"switchboard eval run DATASET --model {HAIKU} --baseline {SONNET}"):
        await start(db, force=False)
    with pytest.raises(RolloutError, match="the evaluation gate is regression: correctness worse"):
        await start(db, force=False, gate=Gate(status="regression", reasons=("correctness worse",)), eval_run_id="run-3")
    with pytest.raises(RolloutError, match=f"the evaluation ran 'gemini_2_5_pro', not '{HAIKU}'"):
        await start(db, force=False, gate=Gate(model="gemini_2_5_pro"), eval_run_id="run-3")
    with pytest.raises(RolloutError, match="compared against 'gemini_2_5_flash', but actors now get"):
        await start(db, force=False, gate=Gate(baseline="gemini_2_5_flash"), eval_run_id="run-3")
    with pytest.raises(RolloutError, match="of the feature 'explain_code', not of chat"):
        await start(db, force=False, gate=Gate(feature="explain_code"), eval_run_id="run-3")
    assert await db.scalar(select(Rollout.id)) is None and await audits(db) == []

    forced = await start(db, gate=Gate(status="regression", reasons=("correctness worse",)), eval_run_id="run-4")
    assert forced.forced and forced.eval_run_id == "run-4"
    entry = next(a for a in await audits(db) if a.action == "rollout_forced")
    assert entry.after == {"to": HAIKU, "reasons": ["the evaluation gate is regression: correctness worse"]}
    await rollouts.abort(db, None, "model", "duo_chat")

    cleared = await start(db, force=False, gate=Gate(), eval_run_id="run-5")
    assert not cleared.forced and cleared.eval_run_id == "run-5"
    assert [a.action for a in await audits(db)][-1] == "rollout_started"


async def test_targets_and_subjects_are_checked(db: AsyncSession) -> None:
    with pytest.raises(RolloutError, match="unknown feature setting 'duo_chta'; did you mean duo_chat"):
        await start(db, subject="duo_chta")
    with pytest.raises(RolloutError, match="unknown model 'claude_haiku'; did you mean claude_haiku_4_5_20251001"):
        await start(db, to="claude_haiku")
    with pytest.raises(RolloutError, match="already answers with claude_sonnet_4_6: nothing to migrate"):
        await start(db, to=SONNET)
    with pytest.raises(RolloutError, match="unknown rollout kind"):
        await start(db, kind="flag")
    with pytest.raises(RolloutError, match="user 'nobody' does not exist"):
        await start(db, steps=["user:nobody", "5"])
    with pytest.raises(RolloutError, match="percentages must increase"):
        await start(db, steps=["5", "5"])
    with pytest.raises(RolloutError, match="not a percentage"):
        await start(db, steps=["five"])
    assert await model_settings.update_instance_setting(db, None, CATALOGUE, "duo_chat", "vendored", [SONNET, HAIKU], SONNET) == []
    with pytest.raises(RolloutError, match="the instance admin chose 'claude_sonnet_4_6' .*switchboard models reset duo_chat"):
        await start(db)
    assert await model_settings.reset_instance_setting(db, None, "duo_chat")
    assert (await start(db)).state == "running"


async def test_a_registered_self_hosted_model_can_be_the_target(db: AsyncSession) -> None:
    row, errors = await model_settings.create_self_hosted_model(
        db, None, CATALOGUE, SecretBox("test key"), name="Llama", model="llama3", endpoint="http://llm.internal/v1",
        identifier="llama3.1:8b")
    assert errors == [] and row is not None
    rollout = await start(db, subject="duo_chat_explain_code", to=row.ref, steps=["100"])
    assert (rollout.to_ref, rollout.flag) == (row.ref, "model_migration_duo_chat_explain_code")


async def test_a_prompt_rollout(db: AsyncSession) -> None:
    feature = CATALOGUE.features["chat"]
    with pytest.raises(RolloutError, match="already uses prompt version 1.1.0"):
        await start(db, kind="prompt", subject="chat", to="1.1.0")
    with pytest.raises(RolloutError, match="has no version '2.0.0' .*versions: 1.0.0"):
        await start(db, kind="prompt", subject="explain_code", to="2.0.0")
    with pytest.raises(RolloutError, match="the evaluation ran prompt version '1.1.0', not '1.0.0'"):
        await start(db, kind="prompt", subject="chat", to="1.0.0", force=False, gate=Gate(prompt_version="1.1.0"))
    rollout = await start(db, kind="prompt", subject="chat", to="1.0.0", force=False,
                          gate=Gate(prompt_version="1.0.0", baseline_prompt_version="1.1.0"), eval_run_id="run-9")
    assert (rollout.from_ref, rollout.flag, rollout.forced) == ("^1.0.0", "prompt_migration_chat", False)
    selection = await load_selection(db)
    assert resolve_prompt_version(feature, selection, {"prompt_migration_chat": True}) == "1.0.0"
    assert resolve_prompt_version(feature, selection, {}) == "^1.0.0"
    await rollouts.promote(db, None, "prompt", "chat")
    assert resolve_prompt_version(feature, await load_selection(db), {}) == "1.0.0"


async def test_views_describe_the_rollout(db: AsyncSession) -> None:
    rollout = await start(db, steps=["user:alice", "group:gitlab-duo", "25", "100"],
                          config=RolloutConfig(step_time_s=90, min_requests=10))
    rollout.step_index = 2
    await rollouts.apply_step(db, rollout)
    rollout.last_check = {"decision": "inconclusive", "metrics": []}
    (view,) = await rollouts.status(db, now=rollout.step_started_at + timedelta(seconds=42))
    assert (view.step, view.percentage, view.actors) == ("3/4", 25.0, ("user:alice", "group:gitlab-duo"))
    assert view.time_in_step_s == 42 and view.config.step_time_s == 90 and view.config.min_requests == 10
    assert view.last_check == {"decision": "inconclusive", "metrics": []}
    assert [e.kind for e in view.events] == ["started"] and view.to_json()["step"] == "3/4"
    await rollouts.abort(db, None, "model", "duo_chat")
    (ended,) = await rollouts.status(db)
    assert (ended.state, ended.percentage, ended.actors) == ("aborted", 0.0, ())
    assert await rollouts.status(db, now=ended.finished_at + timedelta(days=2)) == []  # long ended: not listed
    assert len(await rollouts.status(db, "model", "duo_chat", now=ended.finished_at + timedelta(days=2))) == 1


def test_the_configuration_round_trips_and_refuses_nonsense() -> None:
    config = RolloutConfig(step_time_s=30, failure_limit=3)
    assert RolloutConfig.from_json(config.to_json()) == config
    assert RolloutConfig.from_json({"min_requests": 7, "unknown": 1}) == RolloutConfig(min_requests=7)
    assert RolloutConfig.from_json(None) == RolloutConfig()
    assert RolloutConfig().to_json() == {
        "step_time_s": 600.0, "min_requests": 50, "failure_limit": 2, "max_error_delta": 0.02, "hard_error_ratio": 0.2,
        "min_apdex_ratio": 0.97, "max_ttfc_ratio": 1.25, "min_ttfc_delta_ms": 250.0, "max_negative_feedback_delta": 0.1}
    with pytest.raises(RolloutError, match="failure limit must be a whole number of at least 1"):
        RolloutConfig(failure_limit=0)
    with pytest.raises(RolloutError, match="minimum apdex ratio"):
        RolloutConfig(min_apdex_ratio=1.5)
    with pytest.raises(RolloutError, match="step_time_s must be a number"):
        RolloutConfig(step_time_s=float("nan"))


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("10m", 600), ("1h", 3600), ("1.5h", 5400), ("45", 45)])
def test_durations(text: str, seconds: float) -> None:
    assert rollouts.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10x", "-5m", "0s", "m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(RolloutError, match="write a positive number"):
        rollouts.parse_duration(text)


async def test_an_operator_move_loses_to_a_controller_change_made_meanwhile(db: AsyncSession, database_url: str) -> None:
    rollout = await start(db, steps=["5", "100"])
    await db.commit()  # the operator's session still holds the row as it read it (running, step 1)
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as controller, controller.begin():
            row = await controller.get(Rollout, rollout.id)
            assert row is not None
            await rollouts.roll_back(controller, row, "error ratio past the hard limit")
    finally:
        await engine.dispose()
    with pytest.raises(RolloutError, match="changed meanwhile .the controller acted"):
        await rollouts.promote(db, None, "model", "duo_chat")
    await db.rollback()
    with pytest.raises(RolloutError, match="it is rolled back"):  # read again: the controller's change stands
        await rollouts.promote(db, None, "model", "duo_chat")


async def test_the_database_holds_one_unended_rollout_per_subject(db: AsyncSession) -> None:
    """Two operators starting at the same moment both pass `start`'s check; the partial unique index refuses the
    second row, and `start` says so instead of failing with a database error."""
    from sqlalchemy.exc import IntegrityError

    first = await start(db)
    flag, from_ref = first.flag, first.from_ref
    await db.commit()

    def twin(state: str) -> Rollout:
        return Rollout(kind="model", subject="duo_chat", flag=flag, from_ref=from_ref, to_ref=HAIKU,
                       steps=["100"], config={}, state=state, created_by="test")

    db.add(twin("paused"))
    with pytest.raises(IntegrityError):
        await db.flush()
    await db.rollback()
    db.add(twin("rolled_back"))  # ended rollouts do not count
    await db.flush()
    await db.rollback()
    await rollouts.abort(db, None, "model", "duo_chat")
    await db.commit()
    assert (await start(db)).state == "running"
