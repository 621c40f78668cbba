"""Contract tests of the provider clients against a local server speaking each wire format (real SDK
clients, real HTTP): streaming deltas and usage, rate limits, overload, server errors, a slow first byte,
a stream cut mid-way or ended early, malformed events."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from core.errors import (
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
)
from tests._providers import FakeLLM, Reply
from worker.llm import Completion, LLMClient, Message, Usage
from worker.llm.anthropic import AnthropicModel, build_anthropic, build_anthropic_vertex
from worker.llm.google import GoogleModel, build_google
from worker.llm.openai_compatible import OpenAICompatibleModel

WIRES = ["anthropic", "vertex", "google", "openai_compatible"]


def build_client(wire: str, url: str) -> LLMClient:
    if wire == "anthropic":
        return AnthropicModel(build_anthropic("sk-ant-test", url))
    if wire == "vertex":
        return AnthropicModel(build_anthropic_vertex("proj", "us-east5", f"{url}/v1", access_token="ya29.test"), "vertex")
    if wire == "google":
        return GoogleModel(build_google("AIza-test", url))
    return OpenAICompatibleModel(httpx.AsyncClient(), base_url=f"{url}/v1", api_key="sk-test")


@pytest.fixture(params=WIRES)
async def client(request: pytest.FixtureRequest, fake_llm: FakeLLM) -> AsyncIterator[LLMClient]:
    built = build_client(request.param, fake_llm.url)
    try:
        yield built
    finally:
        await built.close()  # type: ignore[attr-defined]


def completion(**overrides: object) -> Completion:
    base: dict[str, object] = dict(
        messages=(Message("system", "You are terse."), Message("user", "Say hello.")),
        model="fake-model", max_tokens=64, temperature=0.0, timeout_s=5.0,
    )
    return Completion(**{**base, **overrides})  # type: ignore[arg-type]


async def collect(client: LLMClient, call: Completion | None = None) -> tuple[list[str], list[Usage]]:
    texts: list[str] = []
    usages: list[Usage] = []
    async for event in client.stream(call or completion()):
        (usages if isinstance(event, Usage) else texts).append(event)  # type: ignore[arg-type]
    return texts, usages


async def test_streams_the_deltas_in_order_then_the_providers_usage(client: LLMClient, fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply(deltas=("Hel", "lo", ", world"), usage=(42, 3)))
    texts, usages = await collect(client)
    assert texts == ["Hel", "lo", ", world"]
    assert usages == [Usage(42, 3)]
    (seen,) = fake_llm.requests
    assert "Say hello." in str(seen.body) and "You are terse." in str(seen.body)


@pytest.mark.parametrize(
    ("wire", "path", "expected"),
    [
        pytest.param("anthropic", "/v1/messages",
                     {"model": "fake-model", "max_tokens": 64, "system": "You are terse.", "stream": True,
                      "messages": [{"role": "user", "content": "Say hello."}]}, id="anthropic"),
        pytest.param("vertex", "/v1/projects/proj/locations/us-east5/publishers/anthropic/models/fake-model:streamRawPredict",
                     {"max_tokens": 64, "system": "You are terse.", "stream": True,
                      "messages": [{"role": "user", "content": "Say hello."}]}, id="vertex"),
        pytest.param("google", "/v1/models/fake-model:streamGenerateContent",
                     {"contents": [{"parts": [{"text": "Say hello."}], "role": "user"}],
                      "systemInstruction": {"parts": [{"text": "You are terse."}], "role": "user"}}, id="google"),
        pytest.param("openai_compatible", "/v1/chat/completions",
                     {"model": "fake-model", "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 64,
                      "temperature": 0.0, "messages": [{"role": "system", "content": "You are terse."},
                                                       {"role": "user", "content": "Say hello."}]}, id="openai"),
    ],
)
async def test_the_request_speaks_the_providers_format(fake_llm: FakeLLM, wire: str, path: str, expected: dict) -> None:
    client = build_client(wire, fake_llm.url)
    try:
        await collect(client, completion(stop=("\n\nHuman",)))
    finally:
        await client.close()  # type: ignore[attr-defined]
    (seen,) = fake_llm.requests
    assert seen.path == path
    if wire == "vertex":
        assert "anthropic_version" in seen.body and "model" not in seen.body  # Vertex names the model in the path
    assert {key: seen.body.get(key) for key in expected} == expected
    stop = {"anthropic": seen.body.get("stop_sequences"), "vertex": seen.body.get("stop_sequences"),
            "google": seen.body["generationConfig"].get("stopSequences") if wire == "google" else None,
            "openai_compatible": seen.body.get("stop")}[wire]
    assert stop == ["\n\nHuman"]
    credentials = {"anthropic": ("authorization", "Bearer sk-ant-test"), "vertex": ("authorization", "Bearer ya29.test"),
                   "google": ("x-goog-api-key", "AIza-test"), "openai_compatible": ("authorization", "Bearer sk-test")}[wire]
    assert seen.headers.get(credentials[0]) == credentials[1]
    assert "x-stainless-retry-count" not in seen.headers or seen.headers["x-stainless-retry-count"] == "0"


@pytest.mark.parametrize(
    ("status", "headers", "kind", "retry_after"),
    [
        pytest.param(429, {"retry-after": "2"}, ProviderRateLimited, 2.0, id="429-retry-after"),
        pytest.param(429, {"retry-after-ms": "250"}, ProviderRateLimited, 0.25, id="429-retry-after-ms"),
        pytest.param(529, {}, ProviderRateLimited, None, id="529-overloaded"),
    ],
)
async def test_rate_limits_are_retryable_and_carry_retry_after(
    client: LLMClient, fake_llm: FakeLLM, status: int, headers: dict, kind: type, retry_after: float | None
) -> None:
    fake_llm.script(Reply(status=status, headers=headers))
    with pytest.raises(kind) as caught:
        await collect(client)
    assert caught.value.retryable and caught.value.status == status
    assert caught.value.retry_after == pytest.approx(retry_after) if retry_after else caught.value.retry_after is None
    assert len(fake_llm.requests) == 1  # the SDK does not retry on its own: the job does


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        pytest.param(500, ProviderError, True, id="500"),
        pytest.param(503, ProviderError, True, id="503"),
        pytest.param(400, ProviderRejected, False, id="400"),
        pytest.param(401, ProviderRejected, False, id="401"),
    ],
)
async def test_http_errors(client: LLMClient, fake_llm: FakeLLM, status: int, kind: type, retryable: bool) -> None:
    fake_llm.script(Reply(status=status))
    with pytest.raises(kind) as caught:
        await collect(client)
    assert (caught.value.status, caught.value.retryable) == (status, retryable)
    assert len(fake_llm.requests) == 1


async def test_a_slow_first_byte_times_out(client: LLMClient, fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply(first_byte_delay_s=1.0))
    with pytest.raises(ProviderTimeout) as caught:
        await collect(client, completion(timeout_s=0.2))
    assert not caught.value.retryable


async def test_a_stalled_stream_times_out(client: LLMClient, fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply(deltas=("one", " two"), chunk_delay_s=1.0))
    texts: list[str] = []
    with pytest.raises(ProviderTimeout):
        async for event in client.stream(completion(timeout_s=0.3)):
            texts.append(event)  # type: ignore[arg-type]
    assert texts == ["one"]


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [
        pytest.param(Reply(deltas=("a", " b", " c"), cut_after=2), True, id="cut-mid-way"),
        pytest.param(Reply(deltas=("a", " b", " c"), end_after=2), True, id="ended-without-stop"),
        pytest.param(Reply(deltas=("a", " b", " c"), malformed_after=2), False, id="malformed-event"),
    ],
)
async def test_a_broken_stream_fails_after_the_deltas_it_delivered(
    client: LLMClient, fake_llm: FakeLLM, reply: Reply, retryable: bool
) -> None:
    fake_llm.script(reply)
    texts: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async for event in client.stream(completion()):
            texts.append(event)  # type: ignore[arg-type]
    assert texts == ["a", " b"]
    assert caught.value.status is None and caught.value.retryable is retryable
    assert "a b" not in str(caught.value)  # errors never quote the answer


@pytest.mark.parametrize(("kind", "error", "status"), [("overloaded_error", ProviderRateLimited, 529), ("api_error", ProviderError, 500)])
async def test_an_anthropic_error_event_inside_the_stream(fake_llm: FakeLLM, kind: str, error: type, status: int) -> None:
    fake_llm.script(Reply(deltas=("partial",), error_event=kind))
    client = build_client("anthropic", fake_llm.url)
    try:
        with pytest.raises(error) as caught:
            await collect(client)
    finally:
        await client.close()  # type: ignore[attr-defined]
    assert caught.value.status == status and caught.value.retryable


async def test_an_unreachable_provider_is_a_lost_connection(fake_llm: FakeLLM) -> None:
    from tests._redis import free_port

    client = build_client("openai_compatible", f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(ProviderError) as caught:
            await collect(client)
    finally:
        await client.close()  # type: ignore[attr-defined]
    assert caught.value.status is None and caught.value.retryable


async def test_an_openai_compatible_model_needs_a_base_url() -> None:
    client = OpenAICompatibleModel(httpx.AsyncClient(), base_url=None, api_key=None)
    try:
        with pytest.raises(ProviderRejected, match="SWITCHBOARD_OPENAI_COMPATIBLE_BASE_URL"):
            await collect(client)
    finally:
        await client.close()


async def test_an_openai_compatible_model_may_have_its_own_endpoint_and_served_name(fake_llm: FakeLLM) -> None:
    client = OpenAICompatibleModel(httpx.AsyncClient(), base_url="http://127.0.0.1:9/v1", api_key=None, model="meta-llama/Llama-3.1-8B")
    try:
        texts, _ = await collect(client, completion(endpoint=f"{fake_llm.url}/v1"))
    finally:
        await client.close()
    assert texts == ["Hello", " from", " the", " fake."]
    (seen,) = fake_llm.requests
    assert seen.body["model"] == "meta-llama/Llama-3.1-8B" and "authorization" not in seen.headers


def test_a_completion_keeps_its_api_key_out_of_its_repr() -> None:
    completion = Completion(messages=(Message("user", "hi"),), endpoint="http://vllm:8000/v1", api_key="sk-registered-model")
    assert "sk-registered-model" not in repr(completion) and "http://vllm:8000/v1" in repr(completion)
