"""`migrate`: guarded rollouts from the command line (SPEC §9.1), one implementation behind two entry points,
`switchboard models migrate` (a feature setting to a new model) and `switchboard prompts migrate` (a feature
to a new prompt version):

    switchboard models migrate SETTING --to MODEL [--eval RUN | --force] [--steps ...] [--step-time 10m] [--wait]
    switchboard models migrate status [SETTING] [--json]
    switchboard models migrate pause SETTING [--reason TEXT] | resume SETTING | abort SETTING [--reason TEXT]
    switchboard models migrate promote SETTING

The first argument is a verb (`status`, `pause`, `resume`, `abort`, `promote`) or else the subject to start
a rollout of. `--wait` follows a rollout it started (or, with `status SUBJECT`, one already running): one
line per event, exit 0 once it completed or was promoted, 1 once it was rolled back or aborted; Ctrl-C stops
following and leaves the rollout running. The controller in the workers does the steps and the checks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from access.admin import rollouts
from access.admin.rollouts import EventView, GateLike, RolloutConfig, RolloutError, RolloutView
from catalogue import get_catalogue
from cli.commands import CommandFailed, in_transaction
from core.db import create_engine, session_factory
from core.settings import Settings

__all__ = ["VERBS", "add_migrate"]

VERBS = ("status", "pause", "resume", "abort", "promote")
_POLL_S = 1.0
_FIELDS = {  # the thresholds' options, as RolloutConfig names them
    "min_requests": int, "failure_limit": int, "max_error_delta": float, "hard_error_ratio": float,
    "min_apdex_ratio": float, "max_ttfc_ratio": float, "min_ttfc_delta_ms": float,
    "max_negative_feedback_delta": float,
}
_DEFAULTS = RolloutConfig()


def _duration(text: str) -> float:
    try:
        return rollouts.parse_duration(text)
    except RolloutError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _steps(text: str) -> list[str]:
    steps = [step.strip() for step in text.split(",") if step.strip()]
    if not steps:
        raise argparse.ArgumentTypeError("give at least one step, e.g. user:alice,1,5,25,50,100")
    for step in steps:
        try:
            rollouts.parse_step(step)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return steps


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _span(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def describe_event(event: EventView) -> str:
    """One line for an event of a rollout's history."""
    detail = event.detail or {}
    parts = []
    for key in ("decision", "reason", "step", "gates", "metric", "from", "to", "default"):
        if key in detail and detail[key] not in (None, "", [], {}):
            value = detail[key]
            if key == "step" and isinstance(value, int):
                value += 1  # stored from 0; shown as `step 1/3` is
            parts.append(f"{key} {json.dumps(value) if isinstance(value, dict | list) else value}")
    for metric in detail.get("metrics") or []:
        if isinstance(metric, dict):
            parts.append(_metric(metric))
    return f"{_when(event.created_at)} {event.kind}" + (f": {', '.join(parts)}" if parts else "")


def _metric(metric: dict[str, Any]) -> str:
    """`error_ratio 0.3 vs 0.01 [0.2, 0.38] worse`: the new cohort, the old one, the interval of the difference."""
    interval = f" [{metric.get('low')}, {metric.get('high')}]" if metric.get("low") is not None else ""
    return f"{metric.get('name')} {metric.get('new')} vs {metric.get('old')}{interval} {metric.get('verdict') or ''}".strip()


def _check(view: RolloutView) -> str | None:
    check = view.last_check or {}
    if not check:
        return None
    figures = [_metric(metric) for metric in check.get("metrics") or [] if isinstance(metric, dict)]
    return f"last check: {check.get('decision', '?')}" + (f"; {'; '.join(figures)}" if figures else "")


def describe(view: RolloutView) -> list[str]:
    """A rollout in a few human lines."""
    actors = f" + {', '.join(view.actors)}" if view.actors else ""
    forced = " (forced past the pre-gate)" if view.forced else ""
    lines = [
        f"{view.kind} rollout #{view.id} of {view.subject}: {view.from_ref} -> {view.to_ref}, {view.state}{forced}",
        f"  step {view.step} ({','.join(view.steps)}): {view.percentage:g}% of actors{actors}, "
        f"{_span(view.time_in_step_s)} in step",
    ]
    if view.reason:
        lines.append(f"  reason: {view.reason}")
    if (check := _check(view)) is not None:
        lines.append(f"  {check}")
    lines.extend(f"  {describe_event(event)}" for event in view.events[:5])
    return lines


async def _gate(session: AsyncSession, run_id: str) -> GateLike:
    from evaluation.store import gate_result  # lazily: evaluation imports the worker

    try:
        found: GateLike = await gate_result(session, run_id)
    except LookupError:
        raise CommandFailed(f"no evaluation run {run_id} (see `switchboard eval run`)") from None
    return found


def _config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> RolloutConfig:
    values: dict[str, Any] = {name: getattr(args, name) for name in _FIELDS if getattr(args, name) is not None}
    if args.step_time is not None:
        values["step_time_s"] = args.step_time
    try:
        return RolloutConfig(**values)
    except RolloutError as exc:
        parser.error(str(exc))


def _usage(parser: argparse.ArgumentParser, args: argparse.Namespace, kind: str) -> tuple[str, str | None]:
    """The verb and subject of the command line; usage errors exit 2."""
    noun = "SETTING" if kind == "model" else "FEATURE"
    first, second = args.first, args.second
    starting = first not in VERBS
    if starting:
        if second is not None:
            parser.error(f"unexpected {second!r}: start with `migrate {noun} --to ...`, or give a verb: {', '.join(VERBS)}")
        if not args.to:
            parser.error(f"--to is required to start a migration of {first}")
        return "start", first
    start_only = ("to", "eval", "steps", "step_time", *_FIELDS)
    given = [f"--{name.replace('_', '-')}" for name in start_only if getattr(args, name) not in (None, False)]
    if args.force:
        given.append("--force")
    if given:
        parser.error(f"{', '.join(given)} only apply when starting a migration, not to {first}")
    if first != "status" and second is None:
        parser.error(f"{first} needs the {noun.lower().replace('_', ' ')}: migrate {first} {noun}")
    if args.reason is not None and first not in ("pause", "abort"):
        parser.error(f"--reason applies to pause and abort, not to {first}")
    if args.json and first != "status":
        parser.error("--json applies to status")
    if args.wait and (first != "status" or second is None):
        parser.error(f"--wait follows a migration you start, or an existing one with `migrate status {noun} --wait`")
    return first, second


async def _follow(settings: Settings, kind: str, subject: str, rollout_id: int, after: int) -> None:
    """Print each new event of the rollout until it ends or completes; CommandFailed when it did not get
    through."""
    engine = create_engine(settings, pooled=False)
    sessions = session_factory(engine)
    try:
        while True:
            async with sessions() as session:
                # The state first, then the events: an ending commits its event with its state, so the events
                # read after a final state include the one that ended it (read the other way round, a commit
                # between the two reads ended the follow without printing its event).
                (current,) = [v for v in await rollouts.status(session, kind, subject, limit=50, events=0) if v.id == rollout_id]
                for event_id, event in await rollouts.events_after(session, rollout_id, after):
                    print(describe_event(event), flush=True)
                    after = event_id
            if current.state in ("completed", "promoted"):
                print(f"{kind} rollout of {subject} to {current.to_ref}: {current.state}", flush=True)
                return
            if current.state in ("rolled_back", "aborted"):
                raise CommandFailed(f"{kind} rollout of {subject} to {current.to_ref} {current.state.replace('_', ' ')}: "
                                    f"{current.reason or 'no reason given'}")
            await asyncio.sleep(_POLL_S)  # polling the database: the controller may run in any process
    finally:
        await engine.dispose()


def _handler(parser: argparse.ArgumentParser, kind: str) -> Any:
    def handle(settings: Settings, args: argparse.Namespace) -> None:
        verb, subject = _usage(parser, args, kind)
        config = _config(parser, args) if verb == "start" else None

        async def work(session: AsyncSession) -> tuple[list[str], int | None, int]:
            try:
                if verb == "start":
                    assert subject is not None and config is not None
                    gate = await _gate(session, args.eval) if args.eval is not None else None
                    rollout = await rollouts.start(
                        session, None, get_catalogue(), kind=kind, subject=subject, to=args.to,
                        steps=args.steps or rollouts.DEFAULT_STEPS, config=config, gate=gate, eval_run_id=args.eval,
                        force=args.force, default_model=settings.default_model)
                    (found,) = [v for v in await rollouts.status(session, kind, subject, limit=1)]
                    return describe(found), rollout.id, await rollouts.latest_event_id(session, rollout.id)
                if verb == "status":
                    views = await rollouts.status(session, kind, subject)
                    if args.json:
                        return [json.dumps([v.to_json() for v in views])], None, 0
                    if not views:
                        what = f" of {subject}" if subject else " running or ended in the last day"
                        return [f"no {kind} migration{what}"], None, 0
                    latest = views[0]
                    lines = [line for v in views for line in describe(v)]
                    if args.wait and not latest.ended:
                        return lines, latest.id, await rollouts.latest_event_id(session, latest.id)
                    return lines, None, 0
                assert subject is not None
                if verb == "pause":
                    rollout = await rollouts.pause(session, None, kind, subject, args.reason)
                elif verb == "resume":
                    rollout = await rollouts.resume(session, None, kind, subject)
                elif verb == "abort":
                    rollout = await rollouts.abort(session, None, kind, subject, args.reason)
                else:
                    rollout = await rollouts.promote(session, None, kind, subject)
                (found,) = [v for v in await rollouts.status(session, kind, subject, limit=1)]
                return describe(found), None, rollout.id
            except RolloutError as exc:
                raise CommandFailed(str(exc)) from None

        lines, follow, after = in_transaction(settings, work)
        for line in lines:
            print(line)
        if follow is None or not args.wait:
            if verb == "start":
                print(f"the workers' controller takes it from here; follow it with `switchboard {_GROUP[kind]} migrate "
                      f"status {subject}` (or start with --wait)")
            return
        assert subject is not None
        try:
            # Ctrl-C (SIGINT) stops following even when the command was started with SIGINT ignored, as a shell
            # does for a background job of a script.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            print("following it, one line per event (Ctrl-C stops following; the migration goes on)", flush=True)
            asyncio.run(_follow(settings, kind, subject, follow, after))
        except KeyboardInterrupt:
            print(f"stopped following; the {kind} migration of {subject} keeps running "
                  f"(`switchboard {_GROUP[kind]} migrate status {subject}`)", file=sys.stderr)
            raise

    return handle


_GROUP = {"model": "models", "prompt": "prompts"}


def add_migrate(group: Any, kind: str) -> None:
    """Add `migrate` to a command group (`models` for kind `model`, `prompts` for kind `prompt`)."""
    noun, target = ("SETTING", "MODEL") if kind == "model" else ("FEATURE", "VERSION")
    what = "a feature setting to a new model" if kind == "model" else "a feature to a new prompt version"
    parser = group.add_parser(
        "migrate", formatter_class=argparse.RawDescriptionHelpFormatter,
        help=f"an evaluated, guarded migration of {what}: start one, or status/pause/resume/abort/promote",
        usage=(f"switchboard {_GROUP[kind]} migrate {noun} --to {target} [options]\n"
               f"       switchboard {_GROUP[kind]} migrate {{status [{noun}] | pause {noun} | resume {noun} | "
               f"abort {noun} | promote {noun}}}"),
        description=(
            f"Start a guarded migration of {what} (the first argument is the {noun.lower()}), or manage one (the first\n"
            f"argument is a verb: status, pause, resume, abort, promote; then the {noun.lower()}).\n\n"
            "Starting needs an evaluation run that passed its gate (--eval RUN) unless --force (audited). The\n"
            "controller in the workers then raises the flag step by step while the new cohort does as well as the\n"
            "old one, and rolls back by itself when it does not. `promote` makes the target the default."),
    )
    parser.add_argument("first", metavar=f"{noun}|VERB",
                        help=f"the {noun.lower()} to migrate, or one of: {', '.join(VERBS)}")
    parser.add_argument("second", nargs="?", metavar=noun, help=f"after a verb: the {noun.lower()} it acts on")
    parser.add_argument("--to", metavar=target, help=(
        "the model (a models.yml reference or self_hosted_<id>)" if kind == "model" else "the prompt version"))
    parser.add_argument("--eval", metavar="RUN", help="the evaluation run that cleared the target (switchboard eval run)")
    parser.add_argument("--force", action="store_true", help="start even without a passing evaluation run (audited)")
    parser.add_argument("--steps", type=_steps, help=(
        "comma-separated steps: named actors (user:NAME, group:PATH) and increasing percentages of actors "
        f"(default {','.join(rollouts.DEFAULT_STEPS)})"))
    parser.add_argument("--step-time", type=_duration, metavar="DURATION",
                        help=f"the least time a step lasts: 90s, 10m, 1h (default {_span(_DEFAULTS.step_time_s)})")
    parser.add_argument("--min-requests", type=int, metavar="N",
                        help=f"requests each cohort needs before a step may pass (default {_DEFAULTS.min_requests})")
    parser.add_argument("--failure-limit", type=int, metavar="N",
                        help=f"failing checks in a row that roll back (default {_DEFAULTS.failure_limit})")
    parser.add_argument("--max-error-delta", type=float, metavar="X",
                        help=f"error ratio new minus old beyond which a check fails (default {_DEFAULTS.max_error_delta})")
    parser.add_argument("--hard-error-ratio", type=float, metavar="X",
                        help=f"the new cohort's error ratio that rolls back at once (default {_DEFAULTS.hard_error_ratio})")
    parser.add_argument("--min-apdex-ratio", type=float, metavar="X",
                        help=f"apdex new over old below which a check fails (default {_DEFAULTS.min_apdex_ratio})")
    parser.add_argument("--min-ttfc-delta-ms", type=float, metavar="MS",
                        help="... and at least this many milliseconds slower on average "
                             f"(default {_DEFAULTS.min_ttfc_delta_ms:g})")
    parser.add_argument("--max-ttfc-ratio", type=float, metavar="X",
                        help=f"time to first chunk new over old above which a check fails (default {_DEFAULTS.max_ttfc_ratio})")
    parser.add_argument("--max-negative-feedback-delta", type=float, metavar="X",
                        help=("negative feedback rate new minus old beyond which a check fails "
                              f"(default {_DEFAULTS.max_negative_feedback_delta})"))
    parser.add_argument("--wait", action="store_true", help=(
        "follow the migration, one line per event: exit 0 once completed or promoted, 1 once rolled back or "
        "aborted; Ctrl-C stops following and leaves it running"))
    parser.add_argument("--reason", help="why (pause, abort): kept in the history and the audit log")
    parser.add_argument("--json", action="store_true", help="status: print the migrations as JSON")
    parser.set_defaults(handler=_handler(parser, kind))
