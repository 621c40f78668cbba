"""`ops/`: the Grafana dashboard is an importable dashboard, and it and the alert rules only query series
that Switchboard exports (so a renamed metric breaks this test, not a dashboard in production)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import core.metrics  # noqa: F401 - registers every series

ROOT = Path(__file__).resolve().parent.parent
OPS = ROOT / "ops"
_PROMQL_WORDS = {"sum", "by", "rate", "increase", "max", "histogram_quantile", "and", "or", "absent", "le",
                 "feature", "model", "provider", "outcome", "instance", "success", "chat", "up", "job"}


def exported_series() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        names.update(sample.name for sample in family.samples)
        if family.type == "histogram":
            names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "count", "sum"))
        if family.type == "counter":
            names.add(f"{family.name}_total")
    return names


def series_in(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', "", expr)
    words = set(re.findall(r"[a-z_][a-z0-9_]*", without_strings))
    return {word for word in words if word.startswith(("switchboard_", "gitlab_sli_"))}


def test_the_dashboard_is_importable_and_queries_exported_series() -> None:
    dashboard = json.loads((OPS / "grafana" / "switchboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    assert dashboard["__inputs"][0]["type"] == "datasource"
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels) >= 10
    known = exported_series()
    queried = set()
    for panel in panels:
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"} and panel["targets"], panel["title"]
        for target in panel["targets"]:
            found = series_in(target["expr"])
            assert found and found <= known, (panel["title"], found - known)
            queried |= found
    for required in ("gitlab_sli_llm_completion_error_total", "gitlab_sli_llm_completion_apdex_success_total",
                     "switchboard_llm_first_chunk_seconds_bucket", "switchboard_provider_requests_total",
                     "switchboard_llm_input_tokens_total", "switchboard_queue_depth", "switchboard_jobs_in_flight",
                     "switchboard_subscriptions_active", "switchboard_websocket_connections", "switchboard_hub_lag_seconds"):
        assert required in queried, required


def test_alert_rules_are_well_formed_and_query_exported_series() -> None:
    rules = [rule for group in yaml.safe_load((OPS / "prometheus" / "alerts.yml").read_text())["groups"]
             for rule in group["rules"]]
    known = exported_series()
    assert len(rules) >= 6
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("page", "warning")
        assert series_in(rule["expr"]) <= known, (rule["alert"], series_in(rule["expr"]) - known)
    scrape = yaml.safe_load((OPS / "prometheus" / "prometheus.yml").read_text())
    assert {job["job_name"] for job in scrape["scrape_configs"]} == {"switchboard-web", "switchboard-worker"}
