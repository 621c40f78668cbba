"""Operations, end to end (issue 6): `/metrics` of web and worker move under load; the LLM log is JSON and
carries user input, prompts and model output only for a user with `expanded_ai_logging`."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests._client import GraphQLSocket, post
from tests._stack import Stack

# Operations do not depend on the database backend: the SQLite stack only, to keep the suite fast.
pytestmark = [pytest.mark.timeout(60), pytest.mark.sqlite_stack]

ACTION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors } }"


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(found: dict, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for (metric, labelled), value in found.items() if metric == name and wanted <= set(labelled))


def worker_metrics_url(stack: Stack) -> str:
    """The stack's worker serves `/metrics` on its own port (once it has started)."""
    url = f"http://127.0.0.1:{stack.env['SWITCHBOARD_WORKER_METRICS_PORT']}"
    for _ in range(100):
        try:
            httpx.get(f"{url}/metrics", timeout=1)
            return url
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"the worker serves no /metrics at {url}")


async def chat(stack: Stack, user: str, content: str) -> tuple[str, list[dict]]:
    sub = f"sub-{uuid.uuid4()}"
    socket = await GraphQLSocket.connect(stack.ws_url, stack.token(user))
    op = await socket.subscribe({"userId": stack.gid(user), "aiAction": "CHAT", "clientSubscriptionId": sub})
    result = await post(stack.url, stack.token(user), ACTION, {"input": {"chat": {"content": content}, "clientSubscriptionId": sub}})
    assert result["data"]["aiAction"]["errors"] == [], result
    messages = await socket.until_final(op)
    await socket.close()
    return result["data"]["aiAction"]["requestId"], messages


async def test_web_and_worker_metrics_move_under_load(stack: Stack) -> None:
    web_before, worker_before = samples(stack.url), samples(worker_metrics_url(stack))
    socket = await GraphQLSocket.connect(stack.ws_url, stack.token("alice"))
    await socket.subscribe({"userId": stack.gid("alice"), "aiAction": "CHAT", "clientSubscriptionId": "metrics-watch"})
    web_open = samples(stack.url)
    assert total(web_open, "switchboard_websocket_connections") >= 1
    assert total(web_open, "switchboard_subscriptions_active") >= 1

    await asyncio.gather(*(chat(stack, "alice", f"load {i}") for i in range(10)))
    await socket.close()

    def moved(before: dict, after: dict, name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    # A worker counts a completion once its final is out: a client may see the final first.
    for _ in range(100):
        worker_after = samples(worker_metrics_url(stack))
        if moved(worker_before, worker_after, "gitlab_sli_llm_completion_total", feature="chat") >= 10:
            break
        await asyncio.sleep(0.1)
    web_after = samples(stack.url)

    assert moved(web_before, web_after, "switchboard_ai_actions_enqueued_total", feature="chat") >= 10
    assert moved(worker_before, worker_after, "gitlab_sli_llm_completion_total", feature="chat") >= 10
    assert moved(worker_before, worker_after, "gitlab_sli_llm_completion_apdex_success_total", feature="chat") >= 10
    assert moved(worker_before, worker_after, "gitlab_sli_llm_completion_error_total", feature="chat") == 0
    assert moved(worker_before, worker_after, "switchboard_provider_requests_total", outcome="success") >= 10
    assert moved(worker_before, worker_after, "switchboard_provider_request_duration_seconds_count") >= 10
    assert moved(worker_before, worker_after, "switchboard_llm_first_chunk_seconds_count", feature="chat") >= 10
    assert moved(worker_before, worker_after, "switchboard_llm_input_tokens_total", feature="chat") > 0
    assert moved(worker_before, worker_after, "switchboard_llm_output_tokens_total", feature="chat") > 0
    for name in ("switchboard_queue_depth", "switchboard_queue_oldest_job_age_seconds", "switchboard_jobs_in_flight"):
        assert any(metric == name for metric, _ in worker_after), name
    assert any(metric == "switchboard_hub_lag_seconds" for metric, _ in web_after)


def llm_log(stack: Stack, request_id: str) -> list[dict]:
    entries = []
    for name in ("web.log", "worker.log"):
        for line in (stack.logs / name).read_text().splitlines():
            if line.startswith("{") and request_id in line:
                entries.append(json.loads(line))
    return entries


def raw_logs(stack: Stack) -> str:
    return "".join(path.read_text() for path in Path(stack.logs).glob("*.log"))


async def set_expanded_logging(stack: Stack, user: str, value: bool) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{stack.url}/api/v4/features/expanded_ai_logging",
                                     json={"value": value, "user": user},
                                     headers={"Authorization": f"Bearer {stack.token('root')}"})
    assert response.status_code in (200, 201), response.text


async def wait_for_log(stack: Stack, request_id: str, event: str) -> list[dict]:
    for _ in range(50):
        entries = llm_log(stack, request_id)
        if any(entry["message"] == event for entry in entries):
            return entries
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {event} logged for {request_id}")


async def test_the_llm_log_is_json_and_keeps_user_content_out_unless_expanded_logging(stack: Stack) -> None:
    secret = f"hush-{uuid.uuid4().hex}"
    request_id, messages = await chat(stack, "alice", f"my secret is {secret}")
    assert secret in messages[-1]["content"]  # the mock echoes it: it was in the prompt and in the output
    entries = await wait_for_log(stack, request_id, "completion_service_performed")
    events = {entry["message"] for entry in entries}
    assert {"ai_action_mutation", "worker_enqueued", "performing_request", "response_received",
            "completion_service_performed"} <= events
    performed = next(entry for entry in entries if entry["message"] == "completion_service_performed")
    assert performed["feature"] == "chat" and performed["model"] and performed["input_tokens"] > 0
    assert performed["output_tokens"] > 0 and performed["duration_s"] >= 0
    assert secret not in raw_logs(stack)

    revealed = f"shown-{uuid.uuid4().hex}"
    await set_expanded_logging(stack, "bob", True)
    try:
        request_id, _ = await chat(stack, "bob", f"log this {revealed}")
        entries = await wait_for_log(stack, request_id, "response_received")
    finally:
        await set_expanded_logging(stack, "bob", False)
    by_event = {entry["message"]: entry for entry in entries}
    assert revealed in json.dumps(by_event["ai_action_mutation"]["inputs"])
    assert revealed in by_event["performing_request"]["user_input"]
    assert revealed in json.dumps(by_event["performing_request"]["prompt"])
    assert revealed in by_event["response_received"]["response"]
    assert secret not in raw_logs(stack)


def test_the_worker_reports_through_arqs_health_check(stack: Stack) -> None:
    import subprocess
    import sys

    from tests._redis import redis_db_url

    def check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli.main", "worker", "--check"], env=env, capture_output=True,
                              text=True, timeout=30)

    deadline = time.monotonic() + 15
    while (healthy := check(stack.env)).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert healthy.returncode == 0 and "j_complete=" in healthy.stdout, healthy.stderr
    stack_db = int(stack.env["REDIS_URL"].rsplit("/", 1)[1])
    empty_db = redis_db_url(stack.env["REDIS_URL"], (stack_db + 3) % 16 - stack_db)  # Redis has databases 0-15
    nobody = check({**stack.env, "REDIS_URL": empty_db})
    assert nobody.returncode == 1 and "no worker recorded its health" in nobody.stderr
