"""Features answered by a real provider client (mock mode off, ANTHROPIC_BASE_URL at the fake server), run
by the real worker job against real Redis and a seeded database: chunks, the final answer, retries, the
circuit breaker, time-outs, the fallback model, token usage."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from access.admin.seed import seed
from catalogue import FEATURES, get_feature
from core.actions import ActionRecord
from core.db import create_engine, session_factory
from core.errors import MAX_RETRIES_EXCEEDED
from core.ids import GlobalID, new_request_id
from core.logs import JsonFormatter
from core.redis import connect
from core.settings import Settings
from subscriptions.messages import AiMessage, route_id
from subscriptions.streams import replay
from tests._providers import FakeLLM, Reply, Seen
from tests._services import run_worker
from worker.deps import Deps, build_deps
from worker.jobs import run_inline
from worker.llm import Circuits, build_providers
from worker.llm.anthropic import AnthropicModel, build_anthropic_vertex
from worker.llm.circuit import State
from worker.prompt_variables import describe_resource
from worker.usage import read_usage


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:
    """SQLite only (overrides the backend-parametrized fixture): what these tests check does not depend on
    the database, and PostgreSQL is covered by the access and pipeline tests."""
    return sqlite_database_url


ALICE = "gid://gitlab/User/2"
DEFAULT_MODEL = "claude_sonnet_4_6"

# feature → (seeded resource, inputs, ResourceContext fields its prompt must carry to the model)
CASES: dict[str, tuple[str | None, dict[str, object], tuple[str, ...]]] = {
    "chat": (None, {"content": "How do I rebase onto main?"}, ()),
    "explain_code": ("project", {"code": "def answer():\n    return 42"}, ("reference",)),
    "summarize_comments": ("issue", {}, ("title", "notes")),
    "generate_description": ("issue", {"content": "CI breaks when the base image changes"}, ("title",)),
    "generate_commit_message": ("merge_request", {}, ("title", "diff")),
    "summarize_new_merge_request": ("merge_request", {}, ("diff", "source_branch", "target_branch")),
    "summarize_review": ("merge_request", {}, ("notes",)),
    "explain_vulnerability": ("vulnerability", {"include_source_code": True}, ("title", "severity", "file", "code")),
    "resolve_vulnerability": ("vulnerability", {}, ("title", "code")),
}


@pytest.fixture
def provider_settings(settings: Settings, fake_llm: FakeLLM) -> Settings:
    """Mock mode off, Anthropic at the fake server, short backoff."""
    return settings.model_copy(update={
        "mock_model_responses": None,
        "anthropic_api_key": SecretStr("sk-ant-test"),
        "anthropic_base_url": fake_llm.url,
        "retry_base_delay_s": 0.01,
    })


@pytest.fixture
async def deps(provider_settings: Settings) -> AsyncIterator[Deps]:
    redis = connect(provider_settings.redis_url or "")
    built = build_deps(provider_settings, redis)
    try:
        yield built
    finally:
        await built.close()
        await redis.aclose()


def resource_of(seeded: dict, name: str | None) -> str | None:
    if name is None:
        return None
    return seeded["projects"]["gitlab-duo/test"] if name == "project" else seeded["resources"][name]


def record_for(feature: str, seeded: dict, *, sub: str | None = "s", **inputs: object) -> ActionRecord:
    resource, default_inputs, _ = CASES[feature]
    return ActionRecord(request_id=new_request_id(), feature=feature, user_id=2, resource=resource_of(seeded, resource),
                        inputs={**default_inputs, **inputs}, client_subscription_id=sub)


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured log line with its `extra` fields, as the JSON formatter would write them."""
    return "\n".join(JsonFormatter().format(record) for record in caplog.records)


async def messages(settings: Settings, record: ActionRecord) -> list[AiMessage]:
    feature = get_feature(record.feature)
    if feature.ai_action:
        route = route_id(ALICE, ai_action=feature.ai_action, client_subscription_id=record.client_subscription_id)
    else:
        route = route_id(ALICE, resource_gid=record.resource, client_subscription_id=record.client_subscription_id)
    redis = connect(settings.redis_url or "")
    try:
        return await replay(redis, route, (0, 0))
    finally:
        await redis.aclose()


def prompt_text(seen: Seen) -> str:
    """Everything the model was asked (system and messages) as one text."""
    return "\n".join([seen.body.get("system", ""), *(m["content"] for m in seen.body["messages"])])


@pytest.mark.parametrize("feature", sorted(CASES))
async def test_each_feature_streams_the_providers_deltas_and_ends_with_the_full_answer(
    provider_settings: Settings, seeded: dict, fake_llm: FakeLLM, deps: Deps, feature: str
) -> None:
    fake_llm.script(Reply(deltas=("The", " answer", " is", " **here**.")))
    record = record_for(feature, seeded)
    await run_worker(provider_settings, record)

    streamed = await messages(provider_settings, record)
    *chunks, final = streamed
    assert [(m.chunk_id, m.content) for m in chunks] == [(1, "The"), (2, " answer"), (3, " is"), (4, " **here**.")]
    assert (final.chunk_id, final.content, final.errors) == (None, "The answer is **here**.", ())
    assert final.content_html == "<p>The answer is <strong>here</strong>.</p>\n"

    (seen,) = fake_llm.requests
    assert seen.path == "/v1/messages" and seen.body["model"] == "claude-sonnet-4-6"
    asked = prompt_text(seen)
    for name, value in record.inputs.items():
        if isinstance(value, str):
            assert value in asked, name
    if record.resource:
        async with deps.sessions() as session:
            resource = await describe_resource(session, GlobalID.parse(record.resource, argument="resourceId"))
        assert resource is not None
        for field in CASES[feature][2]:
            value = getattr(resource, field)
            texts = [note.body for note in value] if field == "notes" else [str(value)]
            assert value and all(text in asked for text in texts), field


async def test_two_rate_limits_then_success_still_answers(provider_settings: Settings, seeded: dict, fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply(status=429), Reply(status=529), Reply(deltas=("third", " time")))
    record = record_for("chat", seeded)
    await run_worker(provider_settings, record)
    finals = [m for m in await messages(provider_settings, record) if m.final]
    assert [(m.content, m.errors) for m in finals] == [("third time", ())]
    assert len(fake_llm.requests) == 3


async def test_retry_after_is_honoured(provider_settings: Settings, seeded: dict, fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply(status=429, headers={"retry-after-ms": "600"}), Reply())
    started = time.monotonic()
    await run_worker(provider_settings, record_for("chat", seeded))
    assert time.monotonic() - started >= 0.6
    assert len(fake_llm.requests) == 2


async def test_rate_limited_past_three_retries_ends_with_gitlabs_text(provider_settings: Settings, seeded: dict, fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply(status=429))
    record = record_for("chat", seeded)
    await run_worker(provider_settings, record)
    (final,) = await messages(provider_settings, record)
    assert final.errors == (MAX_RETRIES_EXCEEDED,) and final.content is None
    assert len(fake_llm.requests) == 4  # the first call and three retries


async def test_a_failing_provider_ends_each_request_once_with_a_clear_error_and_opens_the_circuit(
    provider_settings: Settings, seeded: dict, fake_llm: FakeLLM, deps: Deps
) -> None:
    fake_llm.script(Reply(status=500))
    records = [record_for("explain_code", seeded, sub=f"s{i}") for i in range(4)]
    ctx = {"deps": deps}
    for record in records:
        await run_inline(ctx, provider_settings, deps.redis, record.model_dump_json())

    for record in records:
        (final,) = await messages(provider_settings, record)  # no chunk, exactly one final
        assert final.content is None and len(final.errors) == 1
        assert final.errors[0] == "I'm sorry, I can't generate a response. Please try again. Error code: A9999"
    assert deps.circuits.state(DEFAULT_MODEL) is State.OPEN
    assert len(fake_llm.requests) == 10  # 4 + 4 + 2 calls opened it; the rest failed fast


async def test_a_slow_first_byte_ends_with_the_timeout_text_without_retrying(
    provider_settings: Settings, seeded: dict, fake_llm: FakeLLM
) -> None:
    # The timeout is the whole budget of connecting and sending too: 1 s leaves a loaded machine room for
    # those (0.3 s did not, once), and the fake's first byte comes well after it.
    fake_llm.script(Reply(first_byte_delay_s=4.0))
    record = record_for("summarize_comments", seeded)
    await run_worker(provider_settings.model_copy(update={"llm_timeout_s": 1.0}), record)
    (final,) = await messages(provider_settings, record)
    assert final.errors == ("I'm sorry, I couldn't respond in time. Please try again. Error code: A1000",)
    assert len(fake_llm.requests) == 1


async def test_a_stream_cut_mid_way_is_retried_and_its_chunks_restart_at_one(
    provider_settings: Settings, seeded: dict, fake_llm: FakeLLM
) -> None:
    fake_llm.script(Reply(deltas=("a", " b", " c"), cut_after=2), Reply(deltas=("x", " y")))
    record = record_for("chat", seeded)
    await run_worker(provider_settings, record)
    streamed = await messages(provider_settings, record)
    assert [(m.chunk_id, m.content) for m in streamed] == [(1, "a"), (2, " b"), (1, "x"), (2, " y"), (None, "x y")]


async def test_the_fallback_model_answers_when_the_primary_fails_before_its_first_chunk(
    provider_settings: Settings, seeded: dict, fake_llm: FakeLLM
) -> None:
    providers = build_providers(provider_settings)
    vertex = build_anthropic_vertex("proj", "us-east5", f"{fake_llm.url}/v1", access_token="ya29.test")
    providers.clients["vertex"] = AnthropicModel(vertex, "vertex")
    redis = connect(provider_settings.redis_url or "")
    deps = build_deps(provider_settings, redis, providers=providers)
    fake_llm.script(Reply(status=500), Reply(deltas=("from", " vertex")))
    record = record_for("chat", seeded)
    try:
        assert get_feature("chat").fallback_model == "claude_sonnet_4_6_vertex"
        await run_inline({"deps": deps}, provider_settings, redis, record.model_dump_json())
        usage = await read_usage(redis, record.request_id)
    finally:
        await deps.close()
        await redis.aclose()
    assert [m.content for m in await messages(provider_settings, record)] == ["from", " vertex", "from vertex"]
    first, second = fake_llm.requests
    assert first.path == "/v1/messages"
    assert second.path.endswith("/publishers/anthropic/models/claude-sonnet-4-6:streamRawPredict")
    assert usage["model"] == "claude_sonnet_4_6_vertex"


async def test_no_fallback_once_the_answer_has_started(provider_settings: Settings, seeded: dict, fake_llm: FakeLLM, deps: Deps) -> None:
    fake_llm.script(Reply(deltas=("half", " an", " answer"), cut_after=1), Reply(deltas=("whole",)))
    record = record_for("chat", seeded)
    await run_inline({"deps": deps}, provider_settings, deps.redis, record.model_dump_json())
    assert [request.path for request in fake_llm.requests] == ["/v1/messages", "/v1/messages"]  # a retry, same model


async def test_token_usage_is_recorded_from_the_provider(provider_settings: Settings, seeded: dict, fake_llm: FakeLLM, deps: Deps) -> None:
    fake_llm.script(Reply(deltas=("ok",), usage=(1234, 56)))
    record = record_for("chat", seeded)
    await run_inline({"deps": deps}, provider_settings, deps.redis, record.model_dump_json())
    assert await read_usage(deps.redis, record.request_id) == {
        "model": DEFAULT_MODEL, "selected_model": DEFAULT_MODEL, "input_tokens": "1234", "output_tokens": "56", "estimated": "0"
    }
    assert 0 < await deps.redis.ttl(f"switchboard:usage:{record.request_id}") <= 24 * 3600


async def test_token_usage_is_estimated_when_the_provider_gives_none(settings: Settings, seeded: dict) -> None:
    redis = connect(settings.redis_url or "")
    deps = build_deps(settings, redis)  # mock mode: the mock reports no usage
    record = record_for("chat", seeded, content="four words of text")
    try:
        await run_inline({"deps": deps}, settings, redis, record.model_dump_json())
        usage = await read_usage(redis, record.request_id)
    finally:
        await deps.close()
        await redis.aclose()
    assert usage["model"] == "mock" and usage["estimated"] == "1"
    assert int(usage["output_tokens"]) == (len("echo: four words of text") + 3) // 4 and int(usage["input_tokens"]) > 0


async def test_an_unconfigured_provider_fails_the_request_clearly(settings: Settings, seeded: dict, caplog: pytest.LogCaptureFixture) -> None:
    settings = settings.model_copy(update={"mock_model_responses": False})
    record = record_for("chat", seeded, content="private question")
    await run_worker(settings, record)
    (final,) = [m for m in await messages(settings, record) if m.final]
    assert final.errors and "A9999" in final.errors[0]
    assert "anthropic is not configured: set ANTHROPIC_API_KEY" in logged(caplog)  # ours: always logged
    assert "private question" not in logged(caplog)


async def test_switchboard_default_model_answers_every_feature(provider_settings: Settings, seeded: dict, fake_llm: FakeLLM) -> None:
    settings = provider_settings.model_copy(update={"default_model": "llama3", "openai_compatible_base_url": f"{fake_llm.url}/v1"})
    record = record_for("summarize_review", seeded)
    await run_worker(settings, record)
    assert [m.content for m in await messages(settings, record) if m.final] == ["Hello from the fake."]
    (seen,) = fake_llm.requests
    assert seen.path == "/v1/chat/completions" and seen.body["model"] == "llama3"


def test_every_external_feature_has_a_case() -> None:
    assert set(CASES) == {feature.key for feature in FEATURES.values() if not feature.internal}


async def test_circuits_start_closed(deps: Deps) -> None:
    assert isinstance(deps.circuits, Circuits) and deps.circuits.state(DEFAULT_MODEL) is State.CLOSED


async def test_an_internal_feature_runs_without_publishing(
    provider_settings: Settings, database_url: str, seeded: dict, fake_llm: FakeLLM
) -> None:
    engine = create_engine(database_url)  # categorize_question is SaaS only
    async with session_factory(engine)() as session, session.begin():
        await seed(session, mode="saas")
    await engine.dispose()
    settings = provider_settings.model_copy(update={"mode": "saas"})
    fake_llm.script(Reply(deltas=('{"category": "GitLab Usage"}',)))
    record = ActionRecord(request_id=new_request_id(), feature="categorize_question", user_id=2,
                          inputs={"question": "how do I revert a commit?"}, client_subscription_id="s")
    redis = connect(settings.redis_url or "")
    deps = build_deps(settings, redis)
    try:
        assert await run_inline({"deps": deps}, settings, redis, record.model_dump_json()) == "answered"
        usage = await read_usage(redis, record.request_id)
        published = await redis.xlen("switchboard:messages")
    finally:
        await deps.close()
        await redis.aclose()
    (seen,) = fake_llm.requests
    assert seen.body["model"] == "claude-haiku-4-5-20251001" and "how do I revert a commit?" in prompt_text(seen)
    assert usage["model"] == "claude_haiku_4_5_20251001" and published == 0


@pytest.mark.parametrize("expanded", [pytest.param(False, id="plain"), pytest.param(True, id="expanded_ai_logging")])
async def test_a_provider_error_that_echoes_the_prompt_is_logged_only_under_expanded_logging(
    provider_settings: Settings, seeded: dict, fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture, expanded: bool
) -> None:
    """vLLM and LiteLLM quote the prompt in their error bodies: that text reaches the logs only when the
    user's `expanded_ai_logging` flag is on (issue 9)."""
    settings = provider_settings.model_copy(update={"default_model": "llama3", "openai_compatible_base_url": f"{fake_llm.url}/v1"})
    fake_llm.script(Reply(status=400, error_message="This model's maximum context length is 8 tokens: 'my secret plan'"))
    record = record_for("chat", seeded, content="my secret plan")
    record = ActionRecord(**{**record.__dict__, "flags": {"expanded_ai_logging": expanded}})
    await run_worker(settings, record)
    assert [m.errors for m in await messages(settings, record) if m.final] != [()]
    failures = [r for r in caplog.records if r.getMessage() in ("error_response_received", "completion_failed")]
    assert {r.getMessage() for r in failures} == {"error_response_received", "completion_failed"}
    assert all(r.status == 400 for r in failures)  # type: ignore[attr-defined]
    assert ("my secret plan" in logged(caplog)) is expanded
