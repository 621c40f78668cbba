"""GraphQL for guarded migrations (SPEC §9.1), admins only: the query `aiModelMigrations` and the mutations
`aiModelMigrationStart`, `aiModelMigrationPause`, `aiModelMigrationResume`, `aiModelMigrationAbort` and
`aiModelMigrationPromote`, over `access.admin.rollouts` (the same rules as `switchboard models migrate`).

A migration is of a feature setting to a new model (`kind: "model"`) or of a feature to a new prompt version
(`kind: "prompt"`). The pre-gate reads the evaluation run `evalRunId` through `services.gate_lookup` (handed
to `create_app`; `api` does not import `evaluation`); without a run, `force: true` is required, and audited.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from access.admin import rollouts
from access.admin.rollouts import GateLike, RolloutConfig, RolloutError, RolloutView
from access.tokens import Principal
from api.auth import READ_SCOPES, WRITE_SCOPES, require_scopes
from catalogue import get_catalogue
from core.errors import AccessDenied, InvalidInput
from core.tables import ACTIVE_STATES, ENDED_STATES, ROLLOUT_KINDS
from subscriptions.scalars import Time

__all__ = ["RolloutMutation", "RolloutQuery"]


@strawberry.type(name="AiModelMigrationEvent", description="One entry of a migration's history.")
class AiModelMigrationEvent:
    kind: str = strawberry.field(description="started, step, check, extended, paused, resumed, completed, "
                                             "rolled_back, aborted or promoted.")
    created_at: Time
    detail: JSON | None


@strawberry.type(name="AiModelMigration", description="A guarded migration of a feature setting to a new model "
                                                       "or of a feature to a new prompt version.")
class AiModelMigration:
    id: int
    kind: str = strawberry.field(description="model or prompt.")
    subject: str = strawberry.field(description="The feature setting (model) or the feature (prompt).")
    from_ref: str = strawberry.field(description="What actors outside the migration get.")
    to_ref: str
    state: str = strawberry.field(description="running, paused, completed, rolled_back, aborted or promoted.")
    step: str = strawberry.field(description="The current step as i/n.")
    steps: list[str]
    percentage: float = strawberry.field(description="The percentage of actors the migration's flag holds now.")
    actors: list[str] = strawberry.field(description="The named actors in (user:NAME, group:PATH).")
    time_in_step: float = strawberry.field(description="Seconds since the current step began.")
    reason: str | None
    forced: bool = strawberry.field(description="Started over a failed or missing pre-gate.")
    eval_run_id: str | None
    config: JSON
    created_by: str
    created_at: Time
    updated_at: Time
    finished_at: Time | None
    last_check: JSON | None = strawberry.field(description="The controller's last check: decision, metrics, cohorts.")
    events: list[AiModelMigrationEvent] = strawberry.field(description="The latest events, newest first.")

    @classmethod
    def from_view(cls, view: RolloutView) -> AiModelMigration:
        return cls(
            id=view.id, kind=view.kind, subject=view.subject, from_ref=view.from_ref, to_ref=view.to_ref,
            state=view.state, step=view.step, steps=list(view.steps), percentage=view.percentage,
            actors=list(view.actors), time_in_step=round(view.time_in_step_s, 1), reason=view.reason,
            forced=view.forced, eval_run_id=view.eval_run_id, config=JSON(view.config.to_json()),
            created_by=view.created_by, created_at=Time(view.created_at.isoformat()),
            updated_at=Time(view.updated_at.isoformat()),
            finished_at=Time(view.finished_at.isoformat()) if view.finished_at else None,
            last_check=JSON(view.last_check) if view.last_check is not None else None,
            events=[AiModelMigrationEvent(kind=e.kind, created_at=Time(e.created_at.isoformat()), detail=JSON(e.detail) if e.detail is not None else None)
                    for e in view.events],
        )


@strawberry.input(name="AiModelMigrationStartInput")
class AiModelMigrationStartInput:
    kind: str = strawberry.field(description="model (subject: a feature setting) or prompt (subject: a feature).")
    subject: str
    to: str = strawberry.field(description="A model reference (models.yml or self_hosted_<id>), or a prompt version.")
    eval_run_id: str | None = strawberry.field(default=None, description="The evaluation run that cleared the target.")
    force: bool = strawberry.field(default=False, description="Start without a passing evaluation run (audited).")
    steps: list[str] | None = strawberry.field(default=None, description="user:NAME, group:PATH, then increasing "
                                                                         "percentages; default 1, 5, 25, 50, 100.")
    step_time: str | None = strawberry.field(default=None, description="The least time a step lasts: 90s, 10m, 1h.")
    min_requests: int | None = None
    failure_limit: int | None = None
    max_error_delta: float | None = None
    hard_error_ratio: float | None = None
    min_apdex_ratio: float | None = None
    max_ttfc_ratio: float | None = None
    min_ttfc_delta_ms: float | None = None
    max_negative_feedback_delta: float | None = None
    client_mutation_id: str | None = None


@strawberry.input(name="AiModelMigrationActionInput")
class AiModelMigrationActionInput:
    kind: str = strawberry.field(description="model or prompt.")
    subject: str
    reason: str | None = strawberry.field(default=None, description="Why (pause, abort).")
    client_mutation_id: str | None = None


@strawberry.type(name="AiModelMigrationPayload")
class AiModelMigrationPayload:
    migration: AiModelMigration | None
    errors: list[str]
    client_mutation_id: str | None = None


_THRESHOLDS = ("min_requests", "failure_limit", "max_error_delta", "hard_error_ratio", "min_apdex_ratio",
               "max_ttfc_ratio", "min_ttfc_delta_ms", "max_negative_feedback_delta")


async def _admin(info: Info, scopes: frozenset[str]) -> Principal:
    principal = require_scopes(info.context.principal, scopes)
    if not principal.admin:
        raise AccessDenied()
    return principal


def _kind(kind: str) -> str:
    if kind not in ROLLOUT_KINDS:
        raise RolloutError(f"kind must be one of: {', '.join(ROLLOUT_KINDS)}")
    return kind


async def _gate(info: Info, session: Any, run_id: str) -> GateLike:
    lookup = info.context.services.gate_lookup
    if lookup is None:
        raise RolloutError("this web process cannot read evaluation runs; start the migration with "
                           "`switchboard models migrate`, or with force: true (audited)")
    try:
        gate: GateLike = await lookup(session, run_id)
    except LookupError:
        raise RolloutError(f"no evaluation run {run_id}") from None
    return gate


async def _view(session: Any, kind: str, subject: str) -> AiModelMigration:
    (latest,) = await rollouts.status(session, kind, subject, limit=1)
    return AiModelMigration.from_view(latest)


@strawberry.type
class RolloutQuery:
    @strawberry.field(description="Guarded migrations, newest first: those not ended and those ended in the last "
                                  "day, or every one in `state` (admins).")
    async def ai_model_migrations(self, info: Info, state: str | None = None) -> list[AiModelMigration] | None:
        await _admin(info, READ_SCOPES)
        if state is not None and state not in (*ACTIVE_STATES, *ENDED_STATES):
            raise InvalidInput("state", f"must be one of: {', '.join((*ACTIVE_STATES, *ENDED_STATES))}")
        async with info.context.services.sessions() as session:
            views = await rollouts.status(session, state=state, limit=100)
        return [AiModelMigration.from_view(view) for view in views]


@strawberry.type
class RolloutMutation:
    @strawberry.mutation(description="Start a guarded migration after its pre-gate (admins).")
    async def ai_model_migration_start(self, info: Info, input: AiModelMigrationStartInput) -> AiModelMigrationPayload | None:  # noqa: A002
        principal = await _admin(info, WRITE_SCOPES)
        services = info.context.services
        try:
            kind = _kind(input.kind)
            if input.eval_run_id is None and not input.force:
                raise RolloutError("the pre-gate needs an evaluation run (evalRunId) of the target against what actors "
                                   "get now; or give force: true to start without one (audited)")
            values: dict[str, Any] = {name: getattr(input, name) for name in _THRESHOLDS if getattr(input, name) is not None}
            if input.step_time is not None:
                values["step_time_s"] = rollouts.parse_duration(input.step_time)
            config = RolloutConfig(**values)
            async with services.sessions() as session, session.begin():
                gate = await _gate(info, session, input.eval_run_id) if input.eval_run_id is not None else None
                await rollouts.start(
                    session, principal, get_catalogue(), kind=kind, subject=input.subject, to=input.to,
                    steps=input.steps or rollouts.DEFAULT_STEPS, config=config, gate=gate,
                    eval_run_id=input.eval_run_id, force=input.force, default_model=services.settings.default_model)
                migration = await _view(session, kind, input.subject)
        except RolloutError as exc:
            return AiModelMigrationPayload(migration=None, errors=[str(exc)], client_mutation_id=input.client_mutation_id)
        services.flags.invalidate()
        return AiModelMigrationPayload(migration=migration, errors=[], client_mutation_id=input.client_mutation_id)

    @strawberry.mutation(description="Hold a running migration at its step (admins).")
    async def ai_model_migration_pause(self, info: Info, input: AiModelMigrationActionInput) -> AiModelMigrationPayload | None:  # noqa: A002
        return await _act(info, input, "pause")

    @strawberry.mutation(description="Run a paused migration again; its step starts over (admins).")
    async def ai_model_migration_resume(self, info: Info, input: AiModelMigrationActionInput) -> AiModelMigrationPayload | None:  # noqa: A002
        return await _act(info, input, "resume")

    @strawberry.mutation(description="End a migration: its flag off for everyone (admins).")
    async def ai_model_migration_abort(self, info: Info, input: AiModelMigrationActionInput) -> AiModelMigrationPayload | None:  # noqa: A002
        return await _act(info, input, "abort")

    @strawberry.mutation(description="Make the migration's target the default for everyone and retire its flag (admins).")
    async def ai_model_migration_promote(self, info: Info, input: AiModelMigrationActionInput) -> AiModelMigrationPayload | None:  # noqa: A002
        return await _act(info, input, "promote")


async def _act(info: Info, input: AiModelMigrationActionInput, action: str) -> AiModelMigrationPayload:  # noqa: A002
    principal = await _admin(info, WRITE_SCOPES)
    services = info.context.services
    try:
        kind = _kind(input.kind)
        if input.reason is not None and action not in ("pause", "abort"):
            raise RolloutError(f"reason applies to pause and abort, not to {action}")
        async with services.sessions() as session, session.begin():
            if action == "pause":
                await rollouts.pause(session, principal, kind, input.subject, input.reason)
            elif action == "resume":
                await rollouts.resume(session, principal, kind, input.subject)
            elif action == "abort":
                await rollouts.abort(session, principal, kind, input.subject, input.reason)
            else:
                await rollouts.promote(session, principal, kind, input.subject)
            migration = await _view(session, kind, input.subject)
    except RolloutError as exc:
        return AiModelMigrationPayload(migration=None, errors=[str(exc)], client_mutation_id=input.client_mutation_id)
    services.flags.invalidate()
    return AiModelMigrationPayload(migration=migration, errors=[], client_mutation_id=input.client_mutation_id)
