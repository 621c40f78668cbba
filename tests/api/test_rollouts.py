"""Guarded migrations through the real GraphQL schema against a real database (`aiModelMigrations`,
`aiModelMigrationStart/Pause/Resume/Abort/Promote`): admins only, `api` scope for changes, the pre-gate
through the app's `gate_lookup` hook, errors in the payload; and the `/admin` card that shows them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from access.admin import rollouts
from access.admin.accounts import create_token
from access.tokens import authenticate
from api.app import create_app
from api.graphql.context import Context
from api.graphql.schema import build_schema
from api.pages.admin import HourStats, render
from api.services import Services
from catalogue import get_catalogue
from core.errors import RESOURCE_NOT_AVAILABLE
from core.tables import Rollout

SCHEMA = build_schema()
HAIKU, SONNET = "claude_haiku_4_5_20251001", "claude_sonnet_4_6"
FIELDS = """id kind subject fromRef toRef state step steps percentage actors reason forced evalRunId createdBy
  createdAt updatedAt timeInStep config lastCheck events { kind createdAt detail }"""
START = f"""mutation($input: AiModelMigrationStartInput!) {{ aiModelMigrationStart(input: $input) {{
  migration {{ {FIELDS} }} errors }} }}"""
LIST = f"query($state: String) {{ aiModelMigrations(state: $state) {{ {FIELDS} }} }}"


def action(name: str) -> str:
    return (f"mutation($input: AiModelMigrationActionInput!) {{ aiModelMigration{name}(input: $input) {{ "
            f"migration {{ state reason }} errors }} }}")


@dataclass(frozen=True)
class Gate:
    status: str = "pass"
    reasons: tuple[str, ...] = ()
    feature: str = "chat"
    model: str = HAIKU
    baseline: str | None = SONNET
    prompt_version: str | None = None
    baseline_prompt_version: str | None = None


@dataclass
class Api:
    services: Services
    tokens: dict[str, str]

    async def run(self, user: str, document: str, **variables: Any) -> Any:
        async with self.services.sessions() as session:
            principal = await authenticate(session, self.tokens[user])
        result = await SCHEMA.execute(document, variable_values=variables,
                                      context_value=Context(None, None, self.services, principal))  # type: ignore[arg-type]
        if result.errors:
            return {"error": result.errors[0].message}
        (value,) = (result.data or {}).values()
        return value


@pytest.fixture
async def api(services: Services, seeded: dict) -> Api:
    async with services.sessions() as session, session.begin():
        reader = await create_token(session, "root", scopes="read_api")
    return Api(services, {name: user["token"] for name, user in seeded["users"].items()} | {"reader": reader})


async def test_an_admin_runs_a_migration_over_graphql(api: Api) -> None:
    found = await api.run("root", START, input={"kind": "model", "subject": "duo_chat", "to": HAIKU})
    assert found["migration"] is None and "evalRunId" in found["errors"][0] and "force: true" in found["errors"][0]
    found = await api.run("root", START, input={"kind": "model", "subject": "duo_chat", "to": HAIKU, "force": True,
                                                "steps": ["user:alice", "5", "100"], "stepTime": "90s", "minRequests": 10})
    assert found["errors"] == []
    migration = found["migration"]
    assert (migration["kind"], migration["subject"], migration["fromRef"], migration["toRef"]) == ("model", "duo_chat", SONNET, HAIKU)
    assert (migration["state"], migration["step"], migration["percentage"], migration["actors"]) == ("running", "1/3", 0.0, ["user:alice"])
    assert migration["forced"] and migration["createdBy"] == "root" and migration["config"]["step_time_s"] == 90
    assert migration["config"]["min_requests"] == 10 and [e["kind"] for e in migration["events"]] == ["started"]
    again = await api.run("root", START, input={"kind": "model", "subject": "duo_chat", "to": "gemini_2_5_pro", "force": True})
    assert again["migration"] is None and "is running" in again["errors"][0]

    paused = await api.run("root", action("Pause"), input={"kind": "model", "subject": "duo_chat", "reason": "lunch"})
    assert paused == {"migration": {"state": "paused", "reason": "lunch"}, "errors": []}
    listed = await api.run("root", LIST)
    assert [(m["subject"], m["state"]) for m in listed] == [("duo_chat", "paused")]
    assert [m["state"] for m in await api.run("root", LIST, state="running")] == []
    assert (await api.run("root", LIST, state="gone"))["error"].startswith("state: must be one of")
    resumed = await api.run("root", action("Resume"), input={"kind": "model", "subject": "duo_chat"})
    assert resumed["migration"]["state"] == "running"
    promoted = await api.run("root", action("Promote"), input={"kind": "model", "subject": "duo_chat"})
    assert promoted["migration"]["state"] == "promoted"
    wrong = await api.run("root", action("Abort"), input={"kind": "model", "subject": "duo_chat"})
    assert wrong["migration"] is None and "cannot abort the model rollout of duo_chat" in wrong["errors"][0]
    assert "it is promoted" in wrong["errors"][0]
    bad_kind = await api.run("root", action("Pause"), input={"kind": "flag", "subject": "duo_chat"})
    assert bad_kind["errors"] == ["kind must be one of: model, prompt"]


async def test_the_pre_gate_reads_evaluation_runs_through_the_apps_hook(api: Api) -> None:
    start = {"kind": "model", "subject": "duo_chat", "to": HAIKU, "evalRunId": "run-7"}
    found = await api.run("root", START, input=start)
    assert "cannot read evaluation runs" in found["errors"][0]  # no hook handed to the app

    gates = {"run-7": Gate(), "run-8": Gate(status="regression", reasons=("checks_passed worse",))}

    async def lookup(session: object, run_id: str) -> Gate:  # evaluation.store.gate_result's contract
        if run_id not in gates:
            raise LookupError(run_id)
        return gates[run_id]

    api.services.gate_lookup = lookup
    assert (await api.run("root", START, input=start | {"evalRunId": "run-99"}))["errors"] == ["no evaluation run run-99"]
    refused = await api.run("root", START, input=start | {"evalRunId": "run-8"})
    assert "the evaluation gate is regression: checks_passed worse" in refused["errors"][0]
    found = await api.run("root", START, input=start)
    assert found["errors"] == [] and found["migration"]["evalRunId"] == "run-7" and not found["migration"]["forced"]


async def test_only_admins_and_changes_need_the_api_scope(api: Api) -> None:
    for user in ("alice", "bob"):
        assert (await api.run(user, LIST))["error"] == RESOURCE_NOT_AVAILABLE
        assert (await api.run(user, START, input={"kind": "model", "subject": "duo_chat", "to": HAIKU, "force": True}))["error"] == RESOURCE_NOT_AVAILABLE
        assert (await api.run(user, action("Abort"), input={"kind": "model", "subject": "duo_chat"}))["error"] == RESOURCE_NOT_AVAILABLE
    assert await api.run("reader", LIST) == []
    assert (await api.run("reader", START, input={"kind": "model", "subject": "duo_chat", "to": HAIKU, "force": True}))["error"] == RESOURCE_NOT_AVAILABLE
    async with api.services.sessions() as session:
        assert await session.get(Rollout, 1) is None


HOSTILE = '<script>alert("x")</script>'


async def test_the_admin_card_shows_a_migration_with_its_last_check_escaped(api: Api) -> None:
    async with api.services.sessions() as session, session.begin():
        rollout = await rollouts.start(session, None, get_catalogue(), kind="model",
                                       subject="duo_chat", to=HAIKU, force=True, steps=["5", "100"])
        rollout.last_check = {"decision": "fail", "metrics": [
            {"name": "error_ratio", "new": 0.3, "old": 0.01, "difference": 0.29, "low": 0.2, "high": 0.38,
             "verdict": f"worse {HOSTILE}"}], "cohorts": {"new": {"requests": 60}, "old": {"requests": 900}}}
        await rollouts.pause(session, None, "model", "duo_chat", f"paused by {HOSTILE}")
    app = create_app(api.services.settings)
    app.state.services = api.services
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://switchboard") as http:
        page = (await http.get("/admin", headers={"Authorization": f"Bearer {api.tokens['root']}"})).text
    card = page[page.index('id="migrations"'):page.index('id="failures"')]
    assert HOSTILE not in page and "&lt;script&gt;" in card
    assert "<caption" in card and '<th scope="col">last check</th>' in card
    assert "model duo_chat" in card and f"{SONNET} → {HAIKU}" in card and "paused" in card
    assert "1/2 · 5%" in card and "fail" in card and "error_ratio: 0.3 vs 0.01, Δ 0.29 [0.2, 0.38]" in card
    assert "requests: new 60, old 900" in card


def test_the_card_says_when_there_is_no_migration() -> None:
    page = render(HourStats([], [], [], []), depth_now=0, oldest_age_s=0, workers={}, migrations=[])
    assert "no migration running or ended in the last day" in page
