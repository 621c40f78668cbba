"""Configuration from the environment (and `.env` when present). Built only in entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Every knob of Switchboard. Field names work as keyword arguments; the aliases are the env names, and
    only they are read (SPEC §4): never an un-prefixed alias such as `MODE` or `SECRET_KEY` that other software
    sets. With `populate_by_name` pydantic-settings also looks a field's name up in the environment, so the
    prefix makes that lookup `SWITCHBOARD_<FIELD>`, in our own namespace."""

    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", env_file=".env", extra="ignore", populate_by_name=True)

    redis_url: str | None = Field(None, validation_alias=_env("REDIS_URL"))
    database_url: str | None = Field(None, validation_alias=_env("DATABASE_URL"))
    mode: Literal["saas", "self_managed"] = Field(
        "self_managed", validation_alias=_env("SWITCHBOARD_MODE")
    )
    mock_model_responses: bool | None = Field(
        None, validation_alias=_env("SWITCHBOARD_MOCK_MODEL_RESPONSES")
    )
    anthropic_api_key: SecretStr | None = Field(
        None, validation_alias=_env("ANTHROPIC_API_KEY")
    )
    google_api_key: SecretStr | None = Field(
        None, validation_alias=_env("GOOGLE_API_KEY", "GEMINI_API_KEY")
    )
    # Providers (SPEC §8.1). Anthropic reads the SDK's own variables; Claude on Vertex AI and Gemini on
    # Vertex AI use Google's application default credentials with the project and location below.
    anthropic_base_url: str | None = Field(None, validation_alias=_env("ANTHROPIC_BASE_URL"))
    google_base_url: str | None = Field(
        None, validation_alias=_env("SWITCHBOARD_GOOGLE_BASE_URL")
    )
    google_genai_use_vertexai: bool = Field(
        False, validation_alias=_env("GOOGLE_GENAI_USE_VERTEXAI")
    )
    google_cloud_project: str | None = Field(
        None, validation_alias=_env("GOOGLE_CLOUD_PROJECT")
    )
    google_cloud_location: str | None = Field(
        None, validation_alias=_env("GOOGLE_CLOUD_LOCATION")
    )
    vertex_base_url: str | None = Field(
        None, validation_alias=_env("ANTHROPIC_VERTEX_BASE_URL")
    )
    openai_compatible_base_url: str | None = Field(
        None, validation_alias=_env("SWITCHBOARD_OPENAI_COMPATIBLE_BASE_URL")
    )
    openai_compatible_api_key: SecretStr | None = Field(
        None, validation_alias=_env("SWITCHBOARD_OPENAI_COMPATIBLE_API_KEY")
    )
    # The model name the OpenAI-compatible server serves (vLLM, Ollama, LiteLLM); overrides the catalogue's.
    openai_compatible_model: str | None = Field(
        None, validation_alias=_env("SWITCHBOARD_OPENAI_COMPATIBLE_MODEL")
    )
    # A models.yml identifier that answers every feature instead of its feature setting's default.
    default_model: str | None = Field(None, validation_alias=_env("SWITCHBOARD_DEFAULT_MODEL"))
    # First backoff delay of a retried model call (then ×2·(1+random)); tests make it small.
    retry_base_delay_s: float = Field(
        1.0, ge=0, validation_alias=_env("SWITCHBOARD_RETRY_BASE_DELAY_S")
    )
    secret_key: SecretStr | None = Field(None, validation_alias=_env("SWITCHBOARD_SECRET_KEY"))
    sync_execution: bool = Field(False, validation_alias=_env("SWITCHBOARD_SYNC_EXECUTION"))
    ai_action_rate_limit: int = Field(
        160, ge=0, validation_alias=_env("SWITCHBOARD_AI_ACTION_RATE_LIMIT")
    )
    data_dir: Path = Field(Path(".data"), validation_alias=_env("SWITCHBOARD_DATA_DIR"))
    port: int = Field(8080, validation_alias=_env("PORT"))

    # Worker: how many jobs one process runs at once, how long a job may take in all, and the lease that
    # lets another worker take over the job of a worker that died (renewed every lease/3 while alive).
    worker_max_jobs: int = Field(2000, validation_alias=_env("SWITCHBOARD_WORKER_MAX_JOBS"))
    job_timeout_s: float = Field(300.0, validation_alias=_env("SWITCHBOARD_JOB_TIMEOUT_S"))
    job_lease_s: float = Field(10.0, gt=0, validation_alias=_env("SWITCHBOARD_JOB_LEASE_S"))
    poll_delay_s: float = Field(0.5, gt=0, validation_alias=_env("SWITCHBOARD_POLL_DELAY_S"))
    # SIGTERM: how long a worker lets its running jobs finish before it hands the rest back to the queue.
    shutdown_grace_s: float = Field(
        20.0, ge=0, validation_alias=_env("SWITCHBOARD_SHUTDOWN_GRACE_S")
    )
    # The worker's Prometheus `/metrics` port (the next free one when taken, so several workers share a
    # host); 0 turns it off.
    worker_metrics_port: int = Field(
        8082, ge=0, validation_alias=_env("SWITCHBOARD_WORKER_METRICS_PORT")
    )
    # `json` (one object a line, SPEC §10) or `text` for the long-running processes' logs.
    log_format: Literal["json", "text"] = Field(
        "json", validation_alias=_env("SWITCHBOARD_LOG_FORMAT")
    )
    # Overrides every feature's model-call timeout when set (operators; tests).
    llm_timeout_s: float | None = Field(None, validation_alias=_env("SWITCHBOARD_LLM_TIMEOUT_S"))

    # permessage-deflate on websockets: off by default; streamed chunks are small, and compressing each costs
    # CPU and ~tens of KB of zlib state per connection.
    ws_compression: bool = Field(False, validation_alias=_env("SWITCHBOARD_WS_COMPRESSION"))

    # How long a web process trusts a token it checked (a revoked token stops working within this time).
    auth_cache_s: float = Field(5.0, ge=0, validation_alias=_env("SWITCHBOARD_AUTH_CACHE_S"))

    # Streams: how long a route's messages stay replayable, and how many the shared stream keeps.
    replay_ttl_s: int = Field(3600, ge=600, validation_alias=_env("SWITCHBOARD_REPLAY_TTL_S"))
    route_maxlen: int = Field(1000, validation_alias=_env("SWITCHBOARD_ROUTE_MAXLEN"))
    firehose_maxlen: int = Field(100_000, validation_alias=_env("SWITCHBOARD_FIREHOSE_MAXLEN"))
    redis_max_connections: int = Field(
        32, validation_alias=_env("SWITCHBOARD_REDIS_MAX_CONNECTIONS")
    )

    # Limits of the web process (README "Limits"). HTTP: the body's size (413 past it), the request head's
    # size (431), how long a client may take to send the head (from connecting, or from the first byte of a
    # next request) and the whole request, and how long an idle keep-alive connection stays open.
    max_body_bytes: int = Field(8 << 20, gt=0, validation_alias=_env("SWITCHBOARD_MAX_BODY_BYTES"))
    max_header_bytes: int = Field(
        64 << 10, gt=0, validation_alias=_env("SWITCHBOARD_MAX_HEADER_BYTES")
    )
    http_header_timeout_s: float = Field(
        10.0, gt=0, validation_alias=_env("SWITCHBOARD_HTTP_HEADER_TIMEOUT_S")
    )
    http_request_timeout_s: float = Field(
        60.0, gt=0, validation_alias=_env("SWITCHBOARD_HTTP_REQUEST_TIMEOUT_S")
    )
    http_keep_alive_s: float = Field(
        5.0, gt=0, validation_alias=_env("SWITCHBOARD_HTTP_KEEP_ALIVE_S")
    )
    # Websockets: how long a socket may stay open without `connection_init` (both protocols, closed with
    # 4408), and how many subscriptions one user may hold at once on one web process.
    ws_init_timeout_s: float = Field(
        10.0, gt=0, validation_alias=_env("SWITCHBOARD_WS_INIT_TIMEOUT_S")
    )
    max_subscriptions_per_user: int = Field(
        100, gt=0, validation_alias=_env("SWITCHBOARD_MAX_SUBSCRIPTIONS_PER_USER")
    )
    # Backpressure (web): GraphQL and API requests a web process serves at once; more are refused at once with
    # HTTP 503 and Retry-After (health endpoints and /metrics excepted). 0: no limit.
    max_inflight_requests: int = Field(
        256, ge=0, validation_alias=_env("SWITCHBOARD_MAX_INFLIGHT_REQUESTS")
    )
    # The database pool of one process: at most this many connections, fewer when the process's concurrency
    # is lower (in-flight requests for web, jobs for a worker); see `core.db.pool_for`.
    db_pool_size: int = Field(20, ge=1, validation_alias=_env("SWITCHBOARD_DB_POOL_SIZE"))
    # How long a checkout waits for a free connection before the request is refused (web: HTTP 503). Unset:
    # derived from the process's concurrency and the pool size (`core.db.pool_for`).
    db_pool_timeout_s: float | None = Field(
        None, gt=0, validation_alias=_env("SWITCHBOARD_DB_POOL_TIMEOUT_S")
    )

    # Duo Chat (SPEC §13): threads not updated for this many days are deleted by a periodic job; extra
    # Markdown indexed by the `documentation_search` tool.
    chat_thread_expiry_days: int = Field(
        30, ge=1, validation_alias=_env("SWITCHBOARD_CHAT_THREAD_EXPIRY_DAYS")
    )
    docs_dir: Path | None = Field(None, validation_alias=_env("SWITCHBOARD_DOCS_DIR"))

    # Guarded rollouts (SPEC §9.1): how often the leading worker's controller checks the running rollouts
    # (a dead leader is replaced within about three checks).
    rollout_check_s: float = Field(10.0, gt=0, validation_alias=_env("SWITCHBOARD_ROLLOUT_CHECK_S"))

    @property
    def database(self) -> str:
        """The SQLAlchemy URL in force: `DATABASE_URL`, else SQLite under the data directory."""
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'switchboard.db'}"

    @property
    def use_mock_model(self) -> bool:
        """The mock model answers when asked to, or when no provider credential is set."""
        if self.mock_model_responses is not None:
            return self.mock_model_responses
        configured = (
            self.anthropic_api_key,
            self.anthropic_base_url,
            self.google_api_key,
            self.google_cloud_project if self.google_genai_use_vertexai else None,
            self.vertex_base_url,
            self.openai_compatible_base_url,
        )
        return all(value is None for value in configured)
