"""Guarded rollouts (SPEC §9.1): the operator's actions on them, moving a rollout's flag through its steps,
rolling it back, and its history.

`start` opens a rollout of a feature setting to a new model (kind `model`) or of a feature to a new prompt
version (kind `prompt`) after its pre-gate: the evaluation run (§15) that compared the target with what
actors get now must be for this subject and target and must have passed; `force` starts it anyway, audited
with the gate's reasons. `pause`, `resume`, `abort` and `promote` move it between states (a `RolloutError`
says why a move is not possible), and `status` describes rollouts for the CLI, GraphQL and `/admin`. The
controller in the workers (`worker.rollout`) raises the steps, checks the cohorts and rolls back; it reads
the thresholds through `RolloutConfig`.

A rollout's flag follows its steps cumulatively: at step `i` every named actor of the steps up to `i`
(`user:alice`, `group:gitlab-duo`) is gated in, and the percentage of actors is the highest percentage
step up to `i`. Flipper's hash keeps every actor already in as the percentage grows (`access.flags`).
Rolling back turns the flag off for everyone (its gates cleared), in force in every process within the
flag cache time; promoting deletes the flag (it takes its default, off) and the selection snapshot then
serves the target to everyone (`catalogue.selection_store.load_selection`).

Every change leaves a `RolloutEvent` (the rollout's history) and an audit entry (who, what, before, after)
in the model selection audit log, with a log event naming the reason. Callers own the transaction: these
functions flush and never commit.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from access import flags
from access.admin.model_settings import audit
from access.flags import actor_id
from access.tokens import Principal
from catalogue import Catalogue, get_catalogue
from catalogue.flags import model_migration_flag, prompt_migration_flag
from catalogue.selection import SELF_HOSTED_PREFIX, Selection, resolve_model, resolve_prompt_version
from catalogue.selection_store import load_selection
from core.tables import ACTIVE_STATES, ENDED_STATES, Group, Rollout, RolloutEvent, User, utcnow

__all__ = [
    "DEFAULT_STEPS",
    "Author",
    "EventView",
    "EVENTS_SHOWN",
    "GateLike",
    "RolloutConfig",
    "RolloutError",
    "RolloutView",
    "abort",
    "apply_step",
    "events_after",
    "gates_at",
    "latest_event_id",
    "parse_duration",
    "parse_step",
    "pause",
    "promote",
    "record_event",
    "resume",
    "roll_back",
    "start",
    "status",
    "target_of",
    "validate_steps",
    "view",
]

log = logging.getLogger(__name__)

Author = Principal | str | None  # who acts: a user, the `controller`, or None for the command line


def parse_step(step: str) -> float | tuple[str, str]:
    """A step as written: a percentage of actors (`5`, `0.5`, `100`) or a named actor (`user:alice`,
    `group:gitlab-duo`). ValueError says what is wrong."""
    kind, sep, name = step.partition(":")
    if sep:
        if kind not in ("user", "group") or not name:
            raise ValueError(f"step {step!r}: a named step is user:USERNAME or group:FULL_PATH")
        return kind, name
    try:
        percentage = float(step)
    except ValueError:
        raise ValueError(f"step {step!r}: not a percentage (0-100) nor user:NAME / group:PATH") from None
    if not 0 < percentage <= 100:
        raise ValueError(f"step {step!r}: a percentage must be above 0 and at most 100")
    return percentage


def gates_at(steps: Sequence[str], index: int) -> tuple[list[tuple[str, str]], float]:
    """The named actors and the percentage of actors the flag holds at step `index`."""
    named: list[tuple[str, str]] = []
    percentage = 0.0
    for step in steps[: index + 1]:
        parsed = parse_step(step)
        if isinstance(parsed, tuple):
            named.append(parsed)
        else:
            percentage = max(percentage, parsed)
    return named, percentage


async def _actor_ids(session: AsyncSession, named: Sequence[tuple[str, str]]) -> list[str]:
    found = []
    for kind, name in named:
        if kind == "user":
            number = await session.scalar(select(User.id).where(User.username == name))
            table = "User"
        else:
            number = await session.scalar(select(Group.id).where(Group.full_path == name))
            table = "Group"
        if number is None:
            raise LookupError(f"{kind} {name!r} does not exist")
        found.append(actor_id(table, number))
    return found


async def apply_step(session: AsyncSession, rollout: Rollout) -> dict[str, Any]:
    """Put the rollout's flag at its current step; returns the gates it set. LookupError for a named
    actor that does not exist."""
    named, percentage = gates_at(rollout.steps, rollout.step_index)
    actors = await _actor_ids(session, named)
    if actors:
        await flags.add_actors(session, rollout.flag, actors)
    await flags.set_percentage(session, rollout.flag, percentage)
    return {"actors": actors, "percentage": percentage}


async def record_event(session: AsyncSession, rollout: Rollout, kind: str, detail: dict[str, Any] | None = None) -> None:
    session.add(RolloutEvent(rollout_id=rollout.id, kind=kind, detail=detail))
    await session.flush()


def target_of(rollout: Rollout) -> str:
    """The audit log's target of a rollout: `model_migration duo_chat` / `prompt_migration explain_code`."""
    return f"{rollout.kind}_migration {rollout.subject}"


async def roll_back(
    session: AsyncSession, rollout: Rollout, reason: str, detail: dict[str, Any] | None = None, *,
    author: Author = "controller", state: str = "rolled_back",
) -> None:
    """End the rollout: its flag off for everyone, its state `rolled_back` (or `aborted`), with the reason
    in its history, the audit log and the logs."""
    before = {"state": rollout.state, "step": rollout.step_index, "to": rollout.to_ref}
    await flags.disable(session, rollout.flag)
    rollout.state = state
    rollout.reason = reason
    rollout.finished_at = utcnow()
    await record_event(session, rollout, state, {"reason": reason, **(detail or {})})
    await audit(session, author, f"rollout_{state}", target_of(rollout), before,
                {"state": state, "reason": reason, "from": rollout.from_ref})
    log.warning(f"rollout_{state}", extra={"rollout": rollout.id, "kind": rollout.kind, "subject": rollout.subject,
                                          "to": rollout.to_ref, "reason": reason, "detail": detail or {}})


# ---------------------------------------------------------------------------------------------------------
# The operator's side: configuration, pre-gate, start and the moves between states, views.

DEFAULT_STEPS = ("1", "5", "25", "50", "100")
EVENTS_SHOWN = 10


class RolloutError(ValueError):
    """An operator action that cannot be done; the message says why and, where it can, what to do."""


@dataclass(frozen=True)
class RolloutConfig:
    """What the controller checks a rollout against, stored as `Rollout.config` (JSON, the field names as
    keys; the controller in the workers reads it back with `from_json`). `step_time_s` is in seconds; ratios compare the
    new cohort with the old one in the same window."""

    step_time_s: float = 600.0  # a step passes no earlier than this after it began
    min_requests: int = 50  # per cohort, before a step may pass
    failure_limit: int = 2  # failing checks in a row that roll back
    max_error_delta: float = 0.02  # error ratio: new - old beyond this is a regression
    hard_error_ratio: float = 0.2  # the new cohort's error ratio past this rolls back at once
    min_apdex_ratio: float = 0.97  # llm_completion apdex: new / old below this is a regression
    max_ttfc_ratio: float = 1.25  # time to first chunk: new / old above this is a regression
    # ... and only when the new cohort is also this much slower: a ratio of two sub-second means is noise
    # (0.8 ms against 0.55 ms is "1.45×").
    min_ttfc_delta_ms: float = 250.0
    max_negative_feedback_delta: float = 0.1  # negative feedback rate: new - old beyond this

    def __post_init__(self) -> None:
        problems = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                problems.append(f"{field.name} must be a number")
        if problems:
            raise RolloutError("; ".join(problems))
        if self.step_time_s <= 0:
            problems.append("step time must be above 0")
        if self.min_requests < 1 or int(self.min_requests) != self.min_requests:
            problems.append("minimum requests must be a whole number of at least 1")
        if self.failure_limit < 1 or int(self.failure_limit) != self.failure_limit:
            problems.append("failure limit must be a whole number of at least 1")
        for name in ("max_error_delta", "max_negative_feedback_delta"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name.replace('_', ' ')} must be between 0 and 1")
        if not 0 < self.hard_error_ratio <= 1:
            problems.append("hard error ratio must be above 0 and at most 1")
        if not 0 < self.min_apdex_ratio <= 1:
            problems.append("minimum apdex ratio must be above 0 and at most 1")
        if self.min_ttfc_delta_ms < 0:
            problems.append("minimum time-to-first-chunk difference must not be negative")
        if self.max_ttfc_ratio < 1:
            problems.append("maximum time-to-first-chunk ratio must be at least 1")
        if problems:
            raise RolloutError("; ".join(problems))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RolloutConfig:
        """The configuration stored in a rollout; keys it does not know are ignored, missing ones default."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in (data or {}).items() if key in names and value is not None})


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in `90s`, `10m`, `1h`, `1d` (a bare number is seconds). RolloutError otherwise."""
    match = _DURATION.match(text or "")
    if match is None or float(match[1]) <= 0:
        raise RolloutError(f"duration {text!r}: write a positive number with s, m, h or d, e.g. 90s, 10m, 1h")
    return float(match[1]) * _UNITS[match[2] or "s"]


class GateLike(Protocol):
    """What the pre-gate reads of an evaluation run's gate (`evaluation.store.gate_result`)."""

    @property
    def status(self) -> str: ...  # pass | regression | error
    @property
    def reasons(self) -> tuple[str, ...]: ...
    @property
    def feature(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def baseline(self) -> str | None: ...
    @property
    def prompt_version(self) -> str | None: ...
    @property
    def baseline_prompt_version(self) -> str | None: ...


def _suggest(name: str, valid: Sequence[str], what: str) -> str:
    close = difflib.get_close_matches(name, list(valid), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else f"; valid: {', '.join(valid) or 'none'}"
    return f"unknown {what} {name!r}{hint}"


async def validate_steps(session: AsyncSession, steps: Sequence[str]) -> list[str]:
    """The steps as given, checked: each parses, named actors exist and come once, percentages increase.
    RolloutError lists every problem."""
    cleaned = [step.strip() for step in steps if step.strip()]
    if not cleaned:
        raise RolloutError("steps: give at least one step, e.g. 1,5,25,50,100")
    problems: list[str] = []
    named: list[tuple[str, str]] = []
    last = 0.0
    for step in cleaned:
        try:
            parsed = parse_step(step)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if isinstance(parsed, tuple):
            if parsed in named:
                problems.append(f"step {step!r} is given twice")
            named.append(parsed)
        elif parsed <= last:
            problems.append(f"step {step!r}: percentages must increase (after {last:g})")
        else:
            last = parsed
    for kind, name in named:
        try:
            await _actor_ids(session, [(kind, name)])
        except LookupError as exc:
            problems.append(f"step {kind}:{name}: {exc}")
    if problems:
        raise RolloutError("; ".join(dict.fromkeys(problems)))
    return cleaned


def _pick_subject(catalogue: Catalogue, kind: str, subject: str) -> list[str]:
    """The features a rollout of `subject` reaches."""
    if kind == "model":
        if subject not in catalogue.feature_settings:
            raise RolloutError(_suggest(subject, list(catalogue.feature_settings), "feature setting"))
        return [key for key, feature in catalogue.features.items() if feature.feature_setting == subject]
    if kind == "prompt":
        if subject not in catalogue.features:
            raise RolloutError(_suggest(subject, list(catalogue.features), "feature"))
        return [subject]
    raise RolloutError(f"unknown rollout kind {kind!r}; valid: model, prompt")


def _families(catalogue: Catalogue, selection: Selection, ref: str) -> tuple[str, ...]:
    registered = selection.self_hosted.get(ref)
    name = registered.model if registered is not None else ref
    model = catalogue.models.get(name)
    return tuple(model.family) if model is not None else ()


def _model_target(catalogue: Catalogue, selection: Selection, setting: str, to: str, features: list[str],
                  default_model: str | None) -> str:
    """Checks a model rollout's target; returns what actors get without the rollout (its `from_ref`)."""
    known = [ref for ref in catalogue.models if not ref.startswith(SELF_HOSTED_PREFIX)] + list(selection.self_hosted)
    if to not in known:
        raise RolloutError(_suggest(to, known, "model") + " (models.yml, or a registered self_hosted_<id>)")
    instance = selection.instance.get(setting)
    if instance is not None and (instance.provider == "disabled" or instance.default is not None):
        chosen = "disabled the feature setting" if instance.provider == "disabled" else f"chose {instance.default!r}"
        raise RolloutError(
            f"the instance admin {chosen} for {setting}: the instance's choice wins over a rollout, which would "
            f"reach no one. Clear it first (`switchboard models reset {setting}`, or set the default model with "
            f"`switchboard models set {setting} ...` instead of migrating)")
    families = _families(catalogue, selection, to)
    for key in features:
        feature = catalogue.features[key]
        version = resolve_prompt_version(feature, selection)
        try:
            catalogue.prompts.get(feature.prompt, families, version)
        except (LookupError, ValueError) as exc:
            raise RolloutError(f"{to} cannot answer the feature {key}: {exc}") from None
    current = resolve_model(catalogue, setting, selection=selection, flags={}, default_model=default_model)
    assert current.model is not None  # the instance disabled nothing (checked above)
    if current.model.identifier == to:
        raise RolloutError(f"{setting} already answers with {to}: nothing to migrate")
    return current.model.identifier


def _prompt_target(catalogue: Catalogue, selection: Selection, key: str, to: str) -> str:
    """Checks a prompt rollout's target; returns the version constraint actors get without the rollout."""
    feature = catalogue.features[key]
    current = resolve_prompt_version(feature, selection)
    models = [ref for ref in catalogue.models_of(feature) if ref in catalogue.models]
    changed = False
    for ref in models:
        families = catalogue.models[ref].family
        try:
            target = catalogue.prompts.get(feature.prompt, families, to)
        except ValueError as exc:
            raise RolloutError(f"prompt version {to!r}: {exc}") from None
        except LookupError:
            versions = sorted({v for found in catalogue.prompts.folders(feature.prompt).values() for v in found})
            raise RolloutError(f"the prompt {feature.prompt} has no version {to!r} for {ref} "
                               f"(families {', '.join(families)}); versions: {', '.join(versions) or 'none'}") from None
        try:
            changed = changed or target is not catalogue.prompts.get(feature.prompt, families, current)
        except (LookupError, ValueError):
            changed = True
    if not changed:
        raise RolloutError(f"{key} already uses prompt version {to} ({current!r} resolves to it): nothing to migrate")
    return current


def _gate_problems(kind: str, subject: str, features: list[str], to: str, from_ref: str, gate: GateLike) -> list[str]:
    problems = []
    if gate.feature not in features:
        problems.append(f"the evaluation is of the feature {gate.feature!r}, not of {' / '.join(features)}")
    if kind == "model":
        if gate.model != to:
            problems.append(f"the evaluation ran {gate.model!r}, not {to!r}")
        if gate.baseline != from_ref:
            against = repr(gate.baseline) if gate.baseline else "no baseline"
            problems.append(f"the evaluation compared against {against}, but actors now get {from_ref!r}")
    elif gate.prompt_version != to:
        problems.append(f"the evaluation ran prompt version {gate.prompt_version!r}, not {to!r}")
    if gate.status != "pass":
        problems.append(f"the evaluation gate is {gate.status}" + (f": {'; '.join(gate.reasons)}" if gate.reasons else ""))
    return problems


def _first_run_hint(kind: str, subject: str, to: str, from_ref: str) -> str:
    if kind == "model":
        return f"run `switchboard eval run DATASET --model {to} --baseline {from_ref}` first and pass --eval RUN"
    return (f"run `switchboard eval run DATASET --model MODEL --prompt-version {to} --baseline-prompt-version "
            f"{from_ref}` first and pass --eval RUN")


async def _current(session: AsyncSession, kind: str, subject: str) -> Rollout | None:
    """The rollout of (kind, subject) that has not ended, if any; the newest one otherwise."""
    query = select(Rollout).where(Rollout.kind == kind, Rollout.subject == subject)
    return await session.scalar(query.order_by(Rollout.state.in_(ENDED_STATES), Rollout.id.desc()).limit(1))


async def start(
    session: AsyncSession, author: Author, catalogue: Catalogue, *, kind: str, subject: str, to: str,
    steps: Sequence[str] = DEFAULT_STEPS, config: RolloutConfig | None = None, gate: GateLike | None = None,
    eval_run_id: str | None = None, force: bool = False, default_model: str | None = None,
) -> Rollout:
    """Start a rollout of `subject` to `to` after its pre-gate (see the module's docstring); its flag is put
    at the first step. `default_model` is `SWITCHBOARD_DEFAULT_MODEL` (what actors get without a rollout
    when nothing else chose). RolloutError says why it cannot start."""
    to = (to or "").strip()
    if not to:
        raise RolloutError("give the target: --to MODEL (or VERSION for a prompt)")
    features = _pick_subject(catalogue, kind, subject)
    config = config or RolloutConfig()
    running = await _current(session, kind, subject)
    if running is not None and running.state not in ENDED_STATES:
        raise RolloutError(f"a {kind} rollout of {subject} to {running.to_ref} is {running.state} "
                           f"(abort or promote it first)")
    selection = await load_selection(session)
    if kind == "model":
        from_ref = _model_target(catalogue, selection, subject, to, features, default_model)
    else:
        from_ref = _prompt_target(catalogue, selection, subject, to)
    cleaned = await validate_steps(session, steps)
    forced_reasons: list[str] = []
    if gate is None:
        if not force:
            raise RolloutError(f"no evaluation run clears this rollout: {_first_run_hint(kind, subject, to, from_ref)}, "
                               f"or start it anyway with --force (audited)")
        forced_reasons = ["no evaluation run"]
    elif problems := _gate_problems(kind, subject, features, to, from_ref, gate):
        if not force:
            raise RolloutError(f"the pre-gate refuses: {'; '.join(problems)} (--force starts it anyway, audited)")
        forced_reasons = problems
    flag = model_migration_flag(subject) if kind == "model" else prompt_migration_flag(subject)
    rollout = Rollout(kind=kind, subject=subject, flag=flag, from_ref=from_ref, to_ref=to, eval_run_id=eval_run_id,
                      forced=bool(forced_reasons), steps=cleaned, step_index=0, step_started_at=utcnow(),
                      extended=False, failures=0, config=config.to_json(), state="running",
                      created_by=_author_name(author))
    session.add(rollout)
    try:
        await session.flush()  # the unique index decides a race between two starts; the caller rolls back
    except IntegrityError:
        raise RolloutError(f"another {kind} rollout of {subject} started meanwhile: "
                           f"see `switchboard {'models' if kind == 'model' else 'prompts'} migrate status {subject}`") from None
    await flags.disable(session, flag)  # a clean flag: nothing left over from before
    gates = await apply_step(session, rollout)
    await record_event(session, rollout, "started", {"from": from_ref, "to": to, "steps": cleaned, "gates": gates,
                                                     "eval_run_id": eval_run_id, "forced": bool(forced_reasons)})
    after = {"from": from_ref, "to": to, "steps": cleaned, "config": rollout.config, "eval_run_id": eval_run_id}
    if forced_reasons:
        await audit(session, author, "rollout_forced", target_of(rollout), None, {"to": to, "reasons": forced_reasons})
    await audit(session, author, "rollout_started", target_of(rollout), None, after)
    log.info("rollout_started", extra={"rollout": rollout.id, "kind": kind, "subject": subject, "to": to,
                                       "from": from_ref, "forced": bool(forced_reasons)})
    return rollout


def _author_name(author: Author) -> str:
    return author.username if isinstance(author, Principal) else (author or "cli")


async def _acting_on(session: AsyncSession, kind: str, subject: str, action: str, allowed: tuple[str, ...]) -> Rollout:
    rollout = await _current(session, kind, subject)
    if rollout is None:
        _pick_subject(get_catalogue(), kind, subject)  # an unknown name: say so, with the close ones
        raise RolloutError(f"no {kind} rollout of {subject!r} to {action}")
    if rollout.state not in allowed:
        ended = f" (ended {rollout.finished_at:%Y-%m-%d %H:%M} UTC)" if rollout.finished_at else ""
        why = f": {rollout.reason}" if rollout.reason else ""
        raise RolloutError(f"cannot {action} the {kind} rollout of {subject} to {rollout.to_ref}: it is "
                           f"{rollout.state.replace('_', ' ')}{ended}{why}")
    # Claim the row as read: the controller may have moved it on (a step, a rollback) since, and it claims
    # rows the same way, so one of the two changes wins and the other is told.
    claimed = await session.execute(
        update(Rollout).where(Rollout.id == rollout.id, Rollout.state == rollout.state,
                              Rollout.step_index == rollout.step_index, Rollout.updated_at == rollout.updated_at)
        .values(updated_at=utcnow()).execution_options(synchronize_session=False))
    if cast("Any", claimed).rowcount != 1:
        raise RolloutError(f"the {kind} rollout of {subject} changed meanwhile (the controller acted): look at its "
                           f"status and try again")
    refreshed = await session.get(Rollout, rollout.id, populate_existing=True)
    assert refreshed is not None
    return refreshed


async def _moved(session: AsyncSession, author: Author, rollout: Rollout, event: str, before: dict[str, Any],
                 detail: dict[str, Any]) -> Rollout:
    await record_event(session, rollout, event, detail)
    await audit(session, author, f"rollout_{event}", target_of(rollout), before, {"state": rollout.state, **detail})
    log.info(f"rollout_{event}", extra={"rollout": rollout.id, "kind": rollout.kind, "subject": rollout.subject,
                                        "to": rollout.to_ref, **detail})
    return rollout


async def pause(session: AsyncSession, author: Author, kind: str, subject: str, reason: str | None = None) -> Rollout:
    """Hold a running rollout at its step: the flag keeps its actors, the controller stops checking it."""
    rollout = await _acting_on(session, kind, subject, "pause", ("running",))
    before = {"state": rollout.state, "step": rollout.step_index}
    rollout.state = "paused"
    rollout.reason = reason or f"paused by {_author_name(author)}"
    return await _moved(session, author, rollout, "paused", before, {"reason": rollout.reason})


async def resume(session: AsyncSession, author: Author, kind: str, subject: str) -> Rollout:
    """Run a paused rollout again: its step starts over (clock, extension and failures in a row)."""
    rollout = await _acting_on(session, kind, subject, "resume", ("paused",))
    before = {"state": rollout.state, "step": rollout.step_index, "reason": rollout.reason}
    rollout.state, rollout.reason = "running", None
    rollout.step_started_at, rollout.extended, rollout.failures = utcnow(), False, 0
    gates = await apply_step(session, rollout)
    return await _moved(session, author, rollout, "resumed", before, {"step": rollout.step_index, "gates": gates})


async def abort(session: AsyncSession, author: Author, kind: str, subject: str, reason: str | None = None) -> Rollout:
    """End a rollout by hand: its flag off for everyone, like a rollback, in state `aborted`."""
    rollout = await _acting_on(session, kind, subject, "abort", ACTIVE_STATES)
    await roll_back(session, rollout, reason or f"aborted by {_author_name(author)}", author=author, state="aborted")
    return rollout


async def promote(session: AsyncSession, author: Author, kind: str, subject: str) -> Rollout:
    """Make the target the default for everyone and retire the flag (deleted: it takes its default, off)."""
    rollout = await _acting_on(session, kind, subject, "promote", ACTIVE_STATES)
    before = {"state": rollout.state, "step": rollout.step_index, "from": rollout.from_ref}
    await flags.delete_flag(session, rollout.flag)
    rollout.state, rollout.finished_at = "promoted", utcnow()
    return await _moved(session, author, rollout, "promoted", before, {"default": rollout.to_ref, "from": rollout.from_ref})


@dataclass(frozen=True)
class EventView:
    kind: str
    created_at: datetime
    detail: dict[str, Any] | None


@dataclass(frozen=True)
class RolloutView:
    """A rollout as operators see it (CLI, GraphQL, `/admin`)."""

    id: int
    kind: str
    subject: str
    flag: str
    from_ref: str
    to_ref: str
    state: str
    steps: tuple[str, ...]
    step_index: int
    percentage: float  # of actors the flag holds now (100 once promoted, 0 once ended otherwise)
    actors: tuple[str, ...]  # the named steps in force: user:alice, group:gitlab-duo
    time_in_step_s: float
    reason: str | None
    forced: bool
    eval_run_id: str | None
    config: RolloutConfig
    last_check: dict[str, Any] | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    events: tuple[EventView, ...]  # newest first

    @property
    def step(self) -> str:
        return f"{self.step_index + 1}/{len(self.steps)}"

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "subject": self.subject, "flag": self.flag, "from": self.from_ref,
            "to": self.to_ref, "state": self.state, "step": self.step, "steps": list(self.steps),
            "percentage": self.percentage, "actors": list(self.actors), "time_in_step_s": round(self.time_in_step_s, 1),
            "reason": self.reason, "forced": self.forced, "eval_run_id": self.eval_run_id,
            "config": self.config.to_json(), "last_check": self.last_check, "created_by": self.created_by,
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "events": [{"kind": e.kind, "created_at": e.created_at.isoformat(), "detail": e.detail} for e in self.events],
        }


def view(rollout: Rollout, events: Sequence[RolloutEvent], now: datetime | None = None) -> RolloutView:
    now = now or utcnow()
    if rollout.state in ACTIVE_STATES:
        named, percentage = gates_at(rollout.steps, rollout.step_index)
        actors = tuple(f"{kind}:{name}" for kind, name in named)
    else:
        actors, percentage = (), 100.0 if rollout.state == "promoted" else 0.0
    clock_end = rollout.finished_at if rollout.finished_at is not None else now
    return RolloutView(
        id=rollout.id, kind=rollout.kind, subject=rollout.subject, flag=rollout.flag, from_ref=rollout.from_ref,
        to_ref=rollout.to_ref, state=rollout.state, steps=tuple(rollout.steps), step_index=rollout.step_index,
        percentage=percentage, actors=actors,
        time_in_step_s=max(0.0, (clock_end - rollout.step_started_at).total_seconds()),
        reason=rollout.reason, forced=rollout.forced, eval_run_id=rollout.eval_run_id,
        config=RolloutConfig.from_json(rollout.config), last_check=rollout.last_check, created_by=rollout.created_by,
        created_at=rollout.created_at, updated_at=rollout.updated_at, finished_at=rollout.finished_at,
        events=tuple(EventView(e.kind, e.created_at, e.detail) for e in events),
    )


async def status(
    session: AsyncSession, kind: str | None = None, subject: str | None = None, *, state: str | None = None,
    recent: timedelta = timedelta(days=1), limit: int = 20, events: int = EVENTS_SHOWN, now: datetime | None = None,
) -> list[RolloutView]:
    """Rollouts, newest first: of one subject (every one of them, up to `limit`), else those not ended and
    those that ended within `recent`; `state` keeps one state only."""
    now = now or utcnow()
    query = select(Rollout)
    if kind is not None:
        query = query.where(Rollout.kind == kind)
    if subject is not None:
        query = query.where(Rollout.subject == subject)
    elif state is None:
        query = query.where(or_(Rollout.state.in_(ACTIVE_STATES), Rollout.finished_at >= now - recent))
    if state is not None:
        query = query.where(Rollout.state == state)
    rollouts = list(await session.scalars(query.order_by(Rollout.id.desc()).limit(limit)))
    found = []
    for rollout in rollouts:
        history = await session.scalars(select(RolloutEvent).where(RolloutEvent.rollout_id == rollout.id)
                                        .order_by(RolloutEvent.id.desc()).limit(events))
        found.append(view(rollout, list(history), now))
    return found


async def latest_event_id(session: AsyncSession, rollout_id: int) -> int:
    """The id of the rollout's newest event (0: none), for following it (`--wait`)."""
    found = await session.scalar(select(RolloutEvent.id).where(RolloutEvent.rollout_id == rollout_id)
                                 .order_by(RolloutEvent.id.desc()).limit(1))
    return found or 0


async def events_after(session: AsyncSession, rollout_id: int, after: int) -> list[tuple[int, EventView]]:
    """The rollout's events newer than event id `after`, oldest first."""
    rows = await session.scalars(select(RolloutEvent).where(RolloutEvent.rollout_id == rollout_id, RolloutEvent.id > after)
                                 .order_by(RolloutEvent.id))
    return [(e.id, EventView(e.kind, e.created_at, e.detail)) for e in rows]
