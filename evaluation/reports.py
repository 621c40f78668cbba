"""The run report (SPEC §15) rendered three ways: one self-contained HTML file, Markdown and JSON.

The HTML file has its CSS inline, needs no script and names no external address, so it can be mailed or
attached to a merge request and opened offline. Every text that came from a user, a dataset or a model is
escaped (`html.escape`); in Markdown such text only appears inside code fences longer than any run of
backticks it contains. The report itself is built by `evaluation.comparison.build_report` (re-exported here).
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from evaluation.comparison import (
    ArmStats,
    ItemPair,
    ItemResult,
    MetricSummary,
    RunInfo,
    RunReport,
    build_report,
    gate,
)
from evaluation.scorers import CHECKS_PASSED, check_keys, describe_check

__all__ = ["ItemResult", "RunInfo", "RunReport", "build_report", "gate", "render_html", "render_json",
           "render_markdown"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;
color:#1f1f1f;background:#fff}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;
vertical-align:top}th{background:#f5f5f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
.better{color:#0a7a2f;font-weight:600}.worse{color:#b3261e;font-weight:600}.same{color:#555}
.warning{background:#fff4ce;border:1px solid #e0c060;padding:.5rem}
.gate-pass{color:#0a7a2f}.gate-regression{color:#b3261e}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1rem}.arm{border:1px solid #ddd;padding:.5rem;min-width:0}
pre{white-space:pre-wrap;word-break:break-word;background:#f7f7f7;padding:.5rem;margin:.25rem 0}
details{margin:.5rem 0;border:1px solid #eee;padding:.25rem .5rem}summary{cursor:pointer}
.pass{color:#0a7a2f}.fail{color:#b3261e}.error{color:#b3261e}
"""
_VERDICT_CLASS = {"better": "better", "worse": "worse"}


def render_json(report: RunReport, *, indent: int | None = 2) -> str:
    """The whole report as JSON: run information, gate, metrics, pairwise, arm statistics and every item."""
    status, reasons = gate(report)
    document = {"gate": {"status": status, "reasons": list(reasons)}, **dataclasses.asdict(report)}
    return json.dumps(document, indent=indent, ensure_ascii=False, default=_jsonable)


def _jsonable(value: object) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# Markdown


def render_markdown(report: RunReport) -> str:
    status, reasons = gate(report)
    info = report.info
    lines = [f"# Evaluation of {_md_text(info.model)} on {_md_text(info.dataset)}", ""]
    lines += [f"- {name}: {_md_text(value)}" for name, value in _info_rows(report)]
    if info.judge_warning:
        lines += ["", f"> **Warning:** {_md_text(info.judge_warning)}"]
    lines += ["", f"**Gate: {status}**", ""] + [f"- {_md_text(reason)}" for reason in reasons]
    lines += ["", "## Metrics", "", "| metric | n | candidate | baseline | difference | 95 % CI | verdict | poor (≤ 2) |",
              "|---|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(_metric_cells(metric)) + " |" for metric in report.metrics]
    if report.pairwise is not None:
        lines += ["", _pairwise_line(report)]
    lines += ["", "## Operations", "", "| arm | answers | errors | latency p50 / p95 | TTFC p50 / p95 | tokens in / out |",
              "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in _stats_rows(report)]
    lines += ["", "## Items"]
    for pair in report.items:
        lines += ["", f"### {_md_text(_item_title(pair))}", "", "Input:", *_fenced(_input_text(pair))]
        for title, result in _arms(pair):
            lines += ["", f"**{title}**{_md_status(result)}", *_fenced(result.output.text or "(empty)")]
            if result.output.error:
                lines += [f"Error: {_md_text(result.output.error)}"]
            lines += [f"- {_md_text(label)}: {'pass' if passed else 'FAIL'}" for label, passed in _checks(result)]
            if result.grade is not None:
                grade = result.grade
                lines += [f"- grade: correctness {grade.correctness}, readability {grade.readability}, "
                          f"comprehensiveness {grade.comprehensiveness}", *_fenced(grade.reasoning)]
            if result.judge_error:
                lines += [f"- judge error: {_md_text(result.judge_error)}"]
        preference = pair.candidate.preference
        if preference is not None:
            lines += ["", f"Preference: **{_choice_text(preference.choice)}**", "Asked with the candidate as A:",
                      *_fenced(preference.reasons[0]), "Asked with the baseline as A:", *_fenced(preference.reasons[1])]
    return "\n".join(lines) + "\n"


def _fenced(text: str) -> list[str]:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", text, fence]


def _md_text(value: object) -> str:
    """Text outside fences: on one line, with HTML and the Markdown that could change its meaning neutralized."""
    text = re.sub(r"([\\`*\[\]|])", r"\\\1", str(value).replace("\n", " "))
    return html.escape(text, quote=False)


def _md_status(result: ItemResult) -> str:
    output = result.output
    return f" ({output.latency_ms:.0f} ms{', failed' if output.failed else ''})"


# HTML


def render_html(report: RunReport) -> str:
    status, reasons = gate(report)
    info = report.info
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(f'Evaluation: {info.model} on {info.dataset}')}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Evaluation of {_e(info.model)} on {_e(info.dataset)}</h1>",
        "<table>" + "".join(f"<tr><th>{_e(name)}</th><td>{_e(value)}</td></tr>" for name, value in _info_rows(report))
        + "</table>",
    ]
    if info.judge_warning:
        parts.append(f'<p class="warning">{_e(info.judge_warning)}</p>')
    parts.append(f'<h2>Gate: <span class="gate-{status}">{status}</span></h2><ul>'
                 + "".join(f"<li>{_e(reason)}</li>" for reason in reasons) + "</ul>")
    parts.append("<h2>Metrics</h2>" + _html_table(
        ("metric", "n", "candidate", "baseline", "difference", "95 % CI", "verdict", "poor (≤ 2)"),
        (_metric_cells(metric) for metric in report.metrics), verdict_column=6,
    ))
    if report.pairwise is not None:
        parts.append(f"<p>{_e(_pairwise_line(report))}</p>")
    parts.append("<h2>Operations</h2>" + _html_table(
        ("arm", "answers", "errors", "latency p50 / p95", "TTFC p50 / p95", "tokens in / out"), _stats_rows(report)
    ))
    parts.append("<h2>Items</h2>")
    parts += [_html_item(pair) for pair in report.items]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _html_table(header: Iterable[str], rows: Iterable[list[str]], verdict_column: int | None = None) -> str:
    out = ["<table><tr>", *(f"<th>{_e(cell)}</th>" for cell in header), "</tr>"]
    for row in rows:
        out.append("<tr>")
        for index, cell in enumerate(row):
            css = _VERDICT_CLASS.get(cell, "same") if index == verdict_column else ("n" if index else "")
            out.append(f'<td class="{css}">{_e(cell)}</td>' if css else f"<td>{_e(cell)}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _html_item(pair: ItemPair) -> str:
    preference = pair.candidate.preference
    differs = pair.baseline is not None and (
        (preference is not None and preference.choice != "tie")
        or pair.candidate.scores.get(CHECKS_PASSED) != pair.baseline.scores.get(CHECKS_PASSED)
        or pair.candidate.output.failed != pair.baseline.output.failed
    )
    out = [f"<details{' open' if differs else ''}><summary>{_e(_item_title(pair))}</summary>",
           f"<p>Input:</p><pre>{_e(_input_text(pair))}</pre>"]
    if pair.candidate.item.reference:
        out.append(f"<p>Reference:</p><pre>{_e(pair.candidate.item.reference)}</pre>")
    out.append('<div class="pair">')
    for title, result in _arms(pair):
        output = result.output
        out.append(f'<div class="arm"><h3>{_e(title)}</h3>'
                   f"<p>{output.latency_ms:.0f} ms, {output.output_tokens} output tokens</p>"
                   f"<pre>{_e(output.text or '(empty)')}</pre>")
        if output.error:
            out.append(f'<p class="error">Error: {_e(output.error)}</p>')
        if result.item.checks:
            out.append("<ul>" + "".join(
                f'<li class="{"pass" if passed else "fail"}">{"✓" if passed else "✗"} {_e(label)}</li>'
                for label, passed in _checks(result)) + "</ul>")
        if result.grade is not None:
            grade = result.grade
            out.append(f"<p>Correctness {grade.correctness}, readability {grade.readability}, comprehensiveness "
                       f"{grade.comprehensiveness}</p><pre>{_e(grade.reasoning)}</pre>")
        if result.judge_error:
            out.append(f'<p class="error">Judge error: {_e(result.judge_error)}</p>')
        out.append("</div>")
    out.append("</div>")
    if preference is not None:
        out.append(f"<p>Preference: <strong>{_e(_choice_text(preference.choice))}</strong></p>"
                   f"<p>Asked with the candidate as A:</p><pre>{_e(preference.reasons[0])}</pre>"
                   f"<p>Asked with the baseline as A:</p><pre>{_e(preference.reasons[1])}</pre>")
    out.append("</details>")
    return "".join(out)


# Shared cells and texts


def _info_rows(report: RunReport) -> list[tuple[str, str]]:
    info = report.info
    rows = [
        ("dataset", f"{info.dataset} (sha256 {info.dataset_sha256[:12]})"),
        ("feature", info.feature),
        ("model", f"{info.model}, prompt {info.prompt_version}"),
    ]
    if info.baseline is not None:
        rows.append(("baseline", f"{info.baseline}, prompt {info.baseline_prompt_version or info.prompt_version}"))
    rows += [("judge", info.judge or "none"), ("repeat", str(info.repeat)), ("created", info.created_at)]
    if info.sha:
        rows.append(("code", info.sha))
    rows.append(("statistics", f"paired bootstrap, {report.resamples} resamples, seed {report.seed}, clustered; "
                               f"margin {report.margin:g}"))
    return rows


def _metric_cells(metric: MetricSummary) -> list[str]:
    digits = 0 if metric.name.endswith("_ms") or metric.name.endswith("tokens") else 3
    poor = [share for share in (metric.poor_candidate, metric.poor_baseline) if share is not None]
    return [
        metric.label + (" *" if metric.gating else ""),
        str(metric.n),
        f"{metric.candidate:.{digits}f}",
        _maybe(metric.baseline, f".{digits}f"),
        _maybe(metric.difference, f"+.{digits}f"),
        f"{metric.low:+.{digits}f} to {metric.high:+.{digits}f}" if metric.low is not None and metric.high is not None
        else "–",
        metric.verdict or "–",
        " / ".join(f"{share:.0%}" for share in poor) or "–",
    ]


def _maybe(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _pairwise_line(report: RunReport) -> str:
    pairwise = report.pairwise
    assert pairwise is not None
    rate = "–" if pairwise.win_rate is None else f"{pairwise.win_rate:.0%}"
    return (f"Pairwise (both orders, disagreement = tie): {pairwise.wins} wins, {pairwise.ties} ties, "
            f"{pairwise.losses} losses; win rate without ties {rate} (95 % Wilson {pairwise.low:.0%} to "
            f"{pairwise.high:.0%}); sign test p = {pairwise.p_value:.3g}. * gating metric.")


def _stats_rows(report: RunReport) -> list[list[str]]:
    arms: list[tuple[str, ArmStats]] = [("candidate", report.candidate_stats)]
    if report.baseline_stats is not None:
        arms.append(("baseline", report.baseline_stats))
    return [[
        name,
        str(stats.n),
        f"{stats.errors} ({stats.error_rate:.0%})",
        "–" if stats.latency_p50 is None or stats.latency_p95 is None else f"{stats.latency_p50:.0f} / {stats.latency_p95:.0f} ms",
        "–" if stats.ttfc_p50 is None or stats.ttfc_p95 is None else f"{stats.ttfc_p50:.0f} / {stats.ttfc_p95:.0f} ms",
        f"{stats.input_tokens:.0f} / {stats.output_tokens:.0f}",
    ] for name, stats in arms]


def _arms(pair: ItemPair) -> list[tuple[str, ItemResult]]:
    arms = [("Candidate (A)", pair.candidate)]
    if pair.baseline is not None:
        arms.append(("Baseline (B)", pair.baseline))
    return arms


def _item_title(pair: ItemPair) -> str:
    item = pair.candidate.item
    title = item.id + (f" (repeat {pair.candidate.epoch + 1})" if pair.candidate.epoch else "")
    preference = pair.candidate.preference
    return title + (f": {_choice_text(preference.choice)}" if preference is not None else "")


def _input_text(pair: ItemPair) -> str:
    item = pair.candidate.item
    text = json.dumps(item.input, indent=2, ensure_ascii=False)
    return text + (f"\nresource: {item.resource}" if item.resource else "")


def _checks(result: ItemResult) -> list[tuple[str, bool]]:
    checks = result.item.checks
    return [(describe_check(check), result.scores.get(key) == 1.0) for check, key in
            zip(checks, check_keys(result.item), strict=True)]


def _choice_text(choice: str) -> str:
    return {"a": "candidate better", "b": "baseline better"}.get(choice, "tie")
