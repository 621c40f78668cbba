"""`switchboard eval`: evaluation of models and prompt versions on datasets (SPEC §15).

    switchboard eval run DATASET --model REF [--baseline REF] [--judge REF | --no-judge] [--repeat K]
                         [--concurrency N] [--prompt-version V] [--baseline-prompt-version V] [--no-cache]
    switchboard eval compare RUN_A RUN_B          two stored runs item by item (A is the candidate)
    switchboard eval report RUN [--html|--md|--json]
    switchboard eval gate RUN [--max-regression X] exit 0 pass, 1 error (an unknown run too), 3 regression
    switchboard eval import FILE --feature F [--resource KEY] [--out PATH]

`eval run` needs the migrated database (runs are stored there) and no Redis; its last stdout line is the
run's id alone. A progress bar is drawn on stderr when it is a terminal. The evaluation package is imported
by the commands that use it, so that other `switchboard` commands do not pay for loading the provider SDKs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from catalogue import get_catalogue
from catalogue.evals import DatasetError, import_records, load_dataset
from cli.commands import CommandFailed, subcommands
from core.db import create_engine, current_revision_ok, session_factory
from core.settings import Settings

if TYPE_CHECKING:  # the evaluation package (and the worker's provider SDKs under it) loads only for `eval`
    from evaluation.comparison import MetricSummary, RunReport

__all__ = ["EXIT_REGRESSION", "register"]

EXIT_REGRESSION = 3
_T = TypeVar("_T")


def _with_database(settings: Settings, work: Callable[[Any], Awaitable[_T]]) -> _T:
    """Run `work(sessions)` against the migrated database (a pooled engine: a run reads and writes the cache
    from many tasks at once)."""

    async def run() -> _T:
        engine = create_engine(settings)
        try:
            if not await current_revision_ok(engine):
                raise CommandFailed("the database is not migrated: run `switchboard db upgrade` first")
            return await work(session_factory(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


class _ProgressBar:
    """A one-line bar on stderr, redrawn in place; nothing when stderr is not a terminal."""

    def __init__(self, label: str) -> None:
        self.label, self.enabled = label, sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        width = 30
        filled = width * done // max(total, 1)
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _judge(settings: Settings, args: argparse.Namespace) -> str | None:
    from evaluation.runner import MOCK_JUDGE

    if args.no_judge:
        return None
    if settings.use_mock_model:
        if args.judge and args.judge != MOCK_JUDGE:
            print(f"switchboard: mock mode: the mock judge grades instead of {args.judge}", file=sys.stderr)
        return MOCK_JUDGE
    return args.judge


def _run(settings: Settings, args: argparse.Namespace) -> None:
    from evaluation.runner import Arm, PlanError, RunPlan, evaluate

    try:
        dataset = load_dataset(args.dataset)
    except DatasetError as exc:
        raise CommandFailed(str(exc)) from None
    candidate = Arm("candidate", args.model, args.prompt_version)  # None: the version production serves
    baseline = None
    if args.baseline or args.baseline_prompt_version:
        baseline = Arm("baseline", args.baseline or args.model, args.baseline_prompt_version)
    plan = RunPlan(dataset, candidate, baseline, judge=_judge(settings, args), repeat=args.repeat,
                   concurrency=args.concurrency)
    # Every failed model call is in the run's results; the worker's per-call warnings would only flood stderr.
    logging.getLogger("worker").setLevel(logging.ERROR)
    bar = _ProgressBar(f"{dataset.name}")
    try:
        outcome = _with_database(settings, lambda sessions: evaluate(
            settings, sessions, plan, use_cache=not args.no_cache, progress=bar))
    except PlanError as exc:
        raise CommandFailed(str(exc)) from None
    info = outcome.report.info
    arms = f"{info.model} @ {info.prompt_version}"
    if info.baseline is not None:
        arms += f" against {info.baseline} @ {info.baseline_prompt_version}"
    print(f"{dataset.name}: {len(dataset.items)} items x {plan.repeat} epoch(s), {arms}; "
          f"cache hits {outcome.cache_hits}; gate {outcome.gate}: {'; '.join(outcome.reasons)}", file=sys.stderr)
    for metric in outcome.report.metrics:
        print(_metric_line(metric))
    print(f"cache hits: {outcome.cache_hits}")
    print(outcome.run_id)


def _metric_line(metric: MetricSummary) -> str:
    line = f"{metric.name:<18} {metric.candidate:.4g}"
    if metric.baseline is not None and metric.low is not None and metric.high is not None:
        line += (f" vs {metric.baseline:.4g}  diff {metric.difference or 0:+.4g} "
                 f"[{metric.low:+.4g}, {metric.high:+.4g}]  {metric.verdict}")
    return line


async def _report_of(sessions: Any, run_id: str) -> RunReport:
    from evaluation.store import load_report

    async with sessions() as session:
        try:
            return await load_report(session, run_id)
        except (LookupError, ValueError) as exc:
            raise CommandFailed(str(exc)) from None


def _report(settings: Settings, args: argparse.Namespace) -> None:
    from evaluation import reports

    report = _with_database(settings, lambda sessions: _report_of(sessions, args.run))
    render = reports.render_html if args.format == "html" else reports.render_json if args.format == "json" else reports.render_markdown
    sys.stdout.write(render(report))


async def _compared(sessions: Any, run_a: str, run_b: str) -> RunReport:
    """Run A's candidate answers against run B's, item by item (same item id and epoch); A's pairwise
    judgements (against its own baseline) are left out."""
    from evaluation.comparison import build_report
    from evaluation.store import info_of, load_results, load_run

    async with sessions() as session:
        try:
            a, b = await load_run(session, run_a), await load_run(session, run_b)
        except LookupError as exc:
            raise CommandFailed(str(exc)) from None
        if a.feature != b.feature:
            raise CommandFailed(f"the runs are of different features: {a.feature} and {b.feature}")
        mine = [replace(f.result, preference=None) for f in await load_results(session, run_a) if f.arm == "candidate"]
        theirs = [f.result for f in await load_results(session, run_b) if f.arm == "candidate"]
    keys = {(result.item.id, result.epoch) for result in theirs}
    mine = [result for result in mine if (result.item.id, result.epoch) in keys]
    if not mine:
        raise CommandFailed("the runs have no item in common")
    info = replace(info_of(a), baseline=b.model, baseline_prompt_version=b.prompt_version,
                   dataset=a.dataset if a.dataset_sha256 == b.dataset_sha256 else f"{a.dataset} vs {b.dataset}",
                   judge=a.judge if a.judge == b.judge else None)
    return build_report(info, mine, theirs)


def _compare(settings: Settings, args: argparse.Namespace) -> None:
    from evaluation import reports

    report = _with_database(settings, lambda sessions: _compared(sessions, args.run_a, args.run_b))
    print(f"run {args.run_a} (candidate) against run {args.run_b} (baseline)")
    sys.stdout.write(reports.render_markdown(report))


def _gate(settings: Settings, args: argparse.Namespace) -> None:
    from evaluation.store import gate_result

    async def gate(sessions: Any) -> Any:
        async with sessions() as session:
            try:
                return await gate_result(session, args.run, max_regression=args.max_regression)
            except LookupError as exc:
                raise CommandFailed(str(exc)) from None

    result = _with_database(settings, gate)
    line = f"{result.status}: {'; '.join(result.reasons)}"
    if result.status == "pass":
        print(line)
        return
    print(f"switchboard: {line}", file=sys.stderr)
    raise SystemExit(EXIT_REGRESSION if result.status == "regression" else 1)


def _import(settings: Settings, args: argparse.Namespace) -> None:
    if args.feature not in get_catalogue().features:
        raise CommandFailed(f"unknown feature {args.feature!r}; valid: {', '.join(get_catalogue().features)}")
    try:
        lines = Path(args.file).read_text().splitlines()
        items = import_records(lines, args.feature, source=Path(args.file).stem, resource=args.resource)
    except OSError as exc:
        raise CommandFailed(f"{args.file}: {exc.strerror}") from None
    except ValueError as exc:
        raise CommandFailed(f"{args.file}: {exc}") from None
    text = "".join(item.to_line() + "\n" for item in items)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {len(items)} items to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _share(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {value}")
    return value


def register(commands: Any) -> None:
    """Add `eval` to `switchboard`."""
    group = subcommands(commands, "eval", "evaluate models and prompt versions on datasets")
    run = group.add_parser("run", help="run a dataset through the pipeline for a model (and a baseline); prints the run id last")
    run.add_argument("dataset", metavar="DATASET", help="feature/name under catalogue/evals, or a JSONL file")
    run.add_argument("--model", required=True, metavar="REF", help="the candidate: a models.yml identifier or self_hosted_<id>")
    run.add_argument("--baseline", metavar="REF", help="the model to compare with (default: none)")
    judge = run.add_mutually_exclusive_group()
    judge.add_argument("--judge", metavar="REF", help="a model that grades the answers (default: the mock judge in mock mode, else none)")
    judge.add_argument("--no-judge", action="store_true", help="deterministic checks only, even in mock mode")
    run.add_argument("--repeat", type=_positive, default=1, metavar="K", help="answer every item K times (default 1)")
    run.add_argument("--concurrency", type=_positive, default=8, metavar="N", help="model calls at once per provider (default 8)")
    run.add_argument("--prompt-version", metavar="V",
                     help="the candidate's prompt version or constraint (default: the one production serves)")
    run.add_argument("--baseline-prompt-version", metavar="V",
                     help="the baseline's prompt version; without --baseline the baseline is the candidate's model")
    run.add_argument("--no-cache", action="store_true", help="neither read nor write cached answers and judgements")
    run.set_defaults(handler=_run)
    compare = group.add_parser("compare", help="compare two stored runs item by item (Markdown on stdout)")
    compare.add_argument("run_a", metavar="RUN_A", help="the run whose candidate is the candidate")
    compare.add_argument("run_b", metavar="RUN_B", help="the run whose candidate is the baseline")
    compare.set_defaults(handler=_compare)
    report = group.add_parser("report", help="a stored run's report on stdout (default Markdown)")
    report.add_argument("run", metavar="RUN", help="the run id")
    formats = report.add_mutually_exclusive_group()
    formats.add_argument("--html", dest="format", action="store_const", const="html", help="one self-contained HTML page")
    formats.add_argument("--md", dest="format", action="store_const", const="md", help="Markdown (the default)")
    formats.add_argument("--json", dest="format", action="store_const", const="json", help="JSON")
    report.set_defaults(handler=_report, format="md")
    gate = group.add_parser("gate", help="exit 0 when the run passes, 3 on a regression, 1 on an error")
    gate.add_argument("run", metavar="RUN", help="the run id")
    gate.add_argument("--max-regression", type=_share, default=0.0, metavar="X",
                      help="tolerated worsening of a gating metric, in its unit (a share, or points of 1-4; default 0)")
    gate.set_defaults(handler=_gate)
    imported = group.add_parser("import", help="convert LangSmith/GitLab {inputs, outputs} JSONL into a dataset")
    imported.add_argument("file", metavar="FILE", help="the JSONL file to import")
    imported.add_argument("--feature", required=True, metavar="F", help="the feature the items are for")
    imported.add_argument("--resource", metavar="KEY", help="the seed resource the items are about, when their inputs name none")
    imported.add_argument("--out", metavar="PATH", help="write the dataset here (default: stdout)")
    imported.set_defaults(handler=_import)
