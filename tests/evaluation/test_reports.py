"""The run report: built from per-item results, gated, and rendered as self-contained HTML, Markdown and JSON."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from catalogue.evals import Check, EvalItem
from evaluation.judges import MockJudge
from evaluation.reports import (
    ItemResult,
    RunInfo,
    RunReport,
    build_report,
    gate,
    render_html,
    render_json,
    render_markdown,
)
from evaluation.scorers import Output, score_output

SCRIPT = "<script>alert('x')</script>"
IMG = '<img src=x onerror="alert(1)">'
HOSTILE = f"{SCRIPT} and {IMG} and ``` a fence"
INFO = RunInfo(dataset="explain_code/basic", dataset_sha256="ab" * 32, feature="explain_code", model="claude_sonnet",
               prompt_version="1.0.0", created_at="2025-06-01T12:00:00+00:00", baseline="claude_haiku",
               judge="mock", judge_warning=f"judge shares a family {SCRIPT}")


def items(count: int = 12) -> list[EvalItem]:
    return [
        EvalItem(id=f"ec-{index:03}", feature="explain_code", input={"code": f"def f{index}(): return {index}"},
                 reference=f"Function f{index} returns the number {index}.", cluster=f"snippet-{index // 3}",
                 checks=(Check(kind="contains", value="returns"), Check(kind="max_chars", value=400)))
        for index in range(count)
    ]


def output(text: str, error: str | None = None, latency: float = 100.0) -> Output:
    return Output(text=text, error=error, latency_ms=latency, ttfc_ms=None if error else latency / 4,
                  input_tokens=30, output_tokens=len(text.split()))


async def results(arm: list[tuple[EvalItem, Output]], *, judged: bool = True) -> list[ItemResult]:
    judge = MockJudge()
    return [ItemResult(item, 0, out, score_output(item, out), await judge.grade(item, out) if judged else None)
            for item, out in arm]


async def with_preferences(candidate: list[ItemResult], baseline: list[ItemResult]) -> list[ItemResult]:
    judge = MockJudge()
    return [ItemResult(c.item, c.epoch, c.output, c.scores, c.grade, await judge.compare(c.item, c.output, b.output))
            for c, b in zip(candidate, baseline, strict=True)]


async def report_of(candidate_text, baseline_text, *, candidate_error=None, latency: float = 90.0) -> RunReport:
    dataset = items()
    baseline = await results([(item, output(baseline_text(item))) for item in dataset])
    candidate = await results([(item, output(candidate_text(item), candidate_error(item) if candidate_error else None,
                                             latency=latency)) for item in dataset])
    return build_report(INFO, await with_preferences(candidate, baseline), baseline)


def good(item: EvalItem) -> str:
    return f"Function f{item.id[-1]} returns the number {item.id[-1]}." if item.reference else ""


def vague(item: EvalItem) -> str:
    return "It is a function."


async def test_a_better_candidate_is_better_on_checks_correctness_and_pairwise_and_passes_the_gate() -> None:
    report = await report_of(lambda item: item.reference or "", vague)
    verdicts = {metric.name: metric.verdict for metric in report.metrics}
    assert verdicts["checks_passed"] == verdicts["correctness"] == verdicts["pairwise"] == "better"
    assert verdicts["error_rate"] == "no detectable difference"
    assert verdicts["latency_ms"] == "better"  # 90 ms against 100 ms on every item
    assert report.pairwise is not None and (report.pairwise.wins, report.pairwise.losses) == (12, 0)
    assert report.pairwise.p_value == pytest.approx(2 / 4096)
    checks = report.metric("checks_passed")
    assert checks is not None and (checks.candidate, checks.baseline, checks.difference) == (1.0, 0.5, 0.5)
    status, reasons = gate(report)
    assert status == "pass" and any(reason.startswith("checks_passed: better") for reason in reasons)
    assert report.summary()["correctness"]["verdict"] == "better"


async def test_a_worse_candidate_is_a_regression_with_reasons() -> None:
    report = await report_of(vague, lambda item: item.reference or "")
    status, reasons = gate(report)
    assert status == "regression"
    assert {reason.split(":")[0] for reason in reasons} == {"checks_passed", "correctness", "pairwise"}
    assert all("worse" in reason for reason in reasons)


async def test_errors_are_a_regression_of_the_error_rate() -> None:
    report = await report_of(lambda item: item.reference or "", lambda item: item.reference or "",
                             candidate_error=lambda item: "ProviderTimeout" if int(item.id[-2:]) % 2 else None)
    error_rate = report.metric("error_rate")
    assert error_rate is not None and error_rate.verdict == "worse" and error_rate.candidate == 0.5
    assert report.candidate_stats.errors == 6 and report.candidate_stats.ttfc_p50 is not None
    assert "error_rate" in " ".join(gate(report)[1])


async def test_latency_is_of_answered_items_only() -> None:
    """Failures that come back at once (here 1 ms against 400 ms answers) must not make an arm look faster."""
    dataset = items()
    arm = [(item, output("", "ProviderError", latency=1.0) if index % 2 else output(good(item), latency=400.0))
           for index, item in enumerate(dataset)]
    report = build_report(INFO, await results(arm), None)
    assert (report.candidate_stats.latency_p50, report.candidate_stats.latency_p95) == (400.0, 400.0)
    all_failed = build_report(INFO, await results([(item, output("", "ProviderError", latency=1.0)) for item in dataset]), None)
    assert all_failed.candidate_stats.latency_p50 is None
    assert "| – |" in render_markdown(all_failed)


async def test_identical_arms_pass_and_max_regression_tolerates_a_small_loss() -> None:
    same = await report_of(lambda item: item.reference or "", lambda item: item.reference or "", latency=100.0)
    assert {metric.verdict for metric in same.metrics} == {"no detectable difference"}
    assert gate(same)[0] == "pass"
    # Every answer grows past max_chars: checks_passed loses 0.5 on every item.
    dataset = items()
    baseline = await results([(item, output(item.reference or "")) for item in dataset], judged=False)
    candidate = await results([(item, output((item.reference or "") + " x" * 200)) for item in dataset], judged=False)
    longer = build_report(INFO, candidate, baseline)
    checks = longer.metric("checks_passed")
    assert checks is not None and (checks.difference, checks.low, checks.high) == (-0.5, -0.5, -0.5)
    assert gate(longer)[0] == "regression"
    status, reasons = gate(longer, max_regression=0.5)
    assert status == "pass" and reasons[0].startswith("checks_passed: no detectable difference")


async def test_a_run_without_baseline_has_means_only_and_passes() -> None:
    dataset = items(3)
    info = RunInfo(dataset="explain_code/basic", dataset_sha256="0" * 64, feature="explain_code", model="mock",
                   prompt_version="1.0.0", created_at="2025-06-01T12:00:00+00:00")
    report = build_report(info, await results([(item, output(vague(item))) for item in dataset]))
    correctness = report.metric("correctness")
    assert correctness is not None and correctness.verdict is None and correctness.poor_candidate is not None
    assert report.pairwise is None and report.baseline_stats is None
    assert gate(report) == ("pass", ("no baseline: nothing to compare with",))
    assert "no baseline" in render_markdown(report) and "Baseline (B)" not in render_html(report)


async def test_repeats_pair_by_epoch_and_cluster_by_item() -> None:
    dataset = items(4)
    candidate = [ItemResult(item, epoch, output("returns"), {"checks_passed": 1.0}) for item in dataset
                 for epoch in range(2)]
    baseline = [ItemResult(item, epoch, output("no"), {"checks_passed": float(epoch)}) for item in dataset
                for epoch in range(2)]
    report = build_report(INFO, candidate, baseline)
    checks = report.metric("checks_passed")
    assert checks is not None and checks.n == 8 and checks.difference == 0.5


@pytest.fixture
async def hostile() -> RunReport:
    dataset = [EvalItem(id="x-1", feature="chat", input={"content": HOSTILE}, reference=HOSTILE,
                        checks=(Check(kind="contains", value=SCRIPT),))]
    candidate = await results([(item, output(HOSTILE)) for item in dataset])
    baseline = await results([(item, output(IMG, error=f"failed: {SCRIPT}")) for item in dataset])
    return build_report(INFO, await with_preferences(candidate, baseline), baseline)


class Tags(HTMLParser):
    """The element names and attribute names a browser would see."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.names.add(tag)
        self.attributes.update(name for name, _ in attrs)


def test_the_html_is_one_self_contained_file_with_every_text_escaped(hostile: RunReport) -> None:
    page = render_html(hostile)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<style>" in page
    assert not re.search(r"https?://", page)
    tags = Tags()
    tags.feed(page)
    assert tags.names <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "table", "tr", "th",
                          "td", "p", "ul", "li", "pre", "details", "summary", "div", "span", "strong"}
    assert tags.attributes <= {"lang", "charset", "name", "content", "class", "open"}
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert "Gate:" in page and "better" in page and "judge shares a family" in page


def test_the_markdown_has_the_verdicts_and_fences_user_text(hostile: RunReport) -> None:
    text = render_markdown(hostile)
    assert "**Gate: pass**" in text
    assert "| checks passed * | 1 | 1.000 | 0.000 | +1.000 | +1.000 to +1.000 | better |" in text
    assert "````text\n" + HOSTILE + "\n````" in text  # a fence longer than the text's ```
    outside = re.sub(r"(`{3,})text\n.*?\n\1", "", text, flags=re.DOTALL)
    assert "<script>" not in outside and "<img" not in outside


def test_the_json_has_the_gate_metrics_and_items(hostile: RunReport) -> None:
    document = json.loads(render_json(hostile))
    assert document["gate"]["status"] == "pass"
    assert {metric["name"]: metric["verdict"] for metric in document["metrics"]}["checks_passed"] == "better"
    assert document["info"]["dataset"] == "explain_code/basic"
    (pair,) = document["items"]
    assert pair["candidate"]["output"]["text"] == HOSTILE and pair["baseline"]["output"]["error"] == f"failed: {SCRIPT}"
    assert pair["candidate"]["item"]["checks"] == [{"kind": "contains", "value": SCRIPT}]
    assert pair["candidate"]["preference"]["choice"] == "a"


def test_a_result_survives_a_trip_through_json(hostile: RunReport) -> None:
    for pair in hostile.items:
        for result in (pair.candidate, pair.baseline):
            assert result is not None
            stored = json.loads(json.dumps(result.to_json()))
            assert ItemResult.from_json(stored) == result
