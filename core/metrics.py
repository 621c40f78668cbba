"""Prometheus metrics of the web and worker processes (SPEC §10), and the per-minute counters that the
`/admin` status page charts.

Every series is a plain counter, gauge or histogram with a small, closed set of label values (feature
keys, model identifiers, provider names, outcome names); nothing is labelled per request or per user.
Recording costs a dictionary look-up and an addition: no Redis round trip. The per-minute counters are
accumulated in memory and written to Redis by the worker's timer (`MinuteStats.flush`), and the queue is
sampled on a timer too (`sample_queue`), never per request.

The failed actions behind the error ratio are kept too, the last `keys.FAILURES_MAXLEN` of them
(`record_failure`, `recent_failures`), with their reason: the user-facing text and the error's class, never
the user's input, the prompt or a provider's own text.

The cohort counters of guarded rollouts (SPEC §9.1) are counted the same way, in the worker's own
`MinuteStats` (`record_cohort`, flushed by its timer within `worker.monitor.INTERVAL_S` and when it stops),
per feature setting, selected model and prompt version, per wall-clock minute; the controller compares the
new model's (or prompt version's) cohort with the old one's from the counts of every worker
(`read_cohorts` sums a window of minutes). A worker killed with SIGKILL loses at most its last interval's
counts: a sample, not a ledger. They live here, not in the worker, so that the web process's `/admin` page
can read them too.

The completion SLI keeps GitLab's names (`gitlab_sli_llm_completion_*`): the error ratio is
`error_total / total`, the apdex `apdex_success_total / apdex_total`, with a completion satisfactory when it
answered within `APDEX_THRESHOLD_S`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from dataclasses import asdict, dataclass

import orjson
from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics
from redis.asyncio import Redis

from core import keys

__all__ = [
    "APDEX_THRESHOLD_S",
    "COMPLETIONS",
    "COMPLETION_ERRORS",
    "APDEX",
    "APDEX_SUCCESS",
    "COMPLETION_SECONDS",
    "FIRST_CHUNK_SECONDS",
    "PROVIDER_REQUESTS",
    "PROVIDER_SECONDS",
    "INPUT_TOKENS",
    "OUTPUT_TOKENS",
    "ACTIONS_ENQUEUED",
    "CHAT_QUESTION_CATEGORIES",
    "QUEUE_DEPTH",
    "QUEUE_OLDEST_AGE",
    "JOBS_IN_FLIGHT",
    "JOBS_HANDED_BACK",
    "SUBSCRIPTIONS",
    "WEBSOCKETS",
    "HUB_LAG",
    "HUB_BAD_ENTRIES",
    "MinuteStats",
    "STATS",
    "record_completion",
    "record_refusal",
    "ACTIONS_REFUSED",
    "ACTIONS_CANCELLED",
    "record_provider_request",
    "sample_queue",
    "Failure",
    "record_failure",
    "recent_failures",
    "Cohort",
    "CohortCounts",
    "TTFC_BUCKETS_MS",
    "record_cohort",
    "read_cohorts",
]

log = logging.getLogger(__name__)

disable_created_metrics()  # no `_created` series: half the output, nothing dashboards use

APDEX_THRESHOLD_S = 30.0
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)

# The completion SLI, per feature (GitLab's `Gitlab::Metrics::Sli` names).
COMPLETIONS = Counter("gitlab_sli_llm_completion", "AI actions that ended (answer or error)", ["feature"])
COMPLETION_ERRORS = Counter("gitlab_sli_llm_completion_error", "AI actions that ended in an error", ["feature"])
APDEX = Counter("gitlab_sli_llm_completion_apdex", "Answered AI actions measured for apdex", ["feature"])
APDEX_SUCCESS = Counter(
    "gitlab_sli_llm_completion_apdex_success", f"Answered AI actions that took at most {APDEX_THRESHOLD_S:.0f} s",
    ["feature"],
)
COMPLETION_SECONDS = Histogram(
    "switchboard_llm_completion_duration_seconds", "From enqueue to the final message, per feature", ["feature"],
    buckets=_LATENCY_BUCKETS,
)
FIRST_CHUNK_SECONDS = Histogram(
    "switchboard_llm_first_chunk_seconds", "From the model call to its first chunk, per feature", ["feature"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0),
)
PROVIDER_REQUESTS = Counter(
    "switchboard_provider_requests", "Model calls by provider, model and outcome (`success` or the error's kind)",
    ["provider", "model", "outcome"],
)
PROVIDER_SECONDS = Histogram(
    "switchboard_provider_request_duration_seconds", "Duration of model calls", ["provider", "model"],
    buckets=_LATENCY_BUCKETS,
)
INPUT_TOKENS = Counter("switchboard_llm_input_tokens", "Input tokens per feature and model", ["feature", "model"])
OUTPUT_TOKENS = Counter("switchboard_llm_output_tokens", "Output tokens per feature and model", ["feature", "model"])

ACTIONS_REFUSED = Counter(
    "switchboard_ai_actions_refused", "AI actions the worker's access re-check refused (not completions)", ["feature"]
)
ACTIONS_CANCELLED = Counter(
    "switchboard_ai_actions_cancelled", "AI actions stopped by aiActionCancel, by the stage they were in (queued, running)",
    ["feature", "stage"],
)

# Web process.
CHAT_QUESTION_CATEGORIES = Counter(
    "switchboard_chat_question_categories", "Chat questions by the category categorize_question gave them", ["category"]
)
ACTIONS_ENQUEUED = Counter("switchboard_ai_actions_enqueued", "aiAction mutations accepted and enqueued", ["feature"])
SUBSCRIPTIONS = Gauge("switchboard_subscriptions_active", "GraphQL subscriptions this web process serves")
WEBSOCKETS = Gauge("switchboard_websocket_connections", "Open websocket connections of this web process")
SUBSCRIPTION_EVENTS = Counter(
    "switchboard_subscription_events",
    "Messages delivered to subscriptions: `sent` by the websocket without a GraphQL execution (a plain selection, "
    "either websocket protocol), or `executed` one by one",
    ["delivery"],
)
HUB_LAG = Gauge("switchboard_hub_lag_seconds", "Age of the newest message the hub dispatched, when it did")
HUB_BAD_ENTRIES = Counter(
    "switchboard_hub_bad_entries", "Entries of the shared message stream the hub could not read and skipped"
)

# Queue (sampled on a timer by every process) and the worker's own jobs.
QUEUE_DEPTH = Gauge("switchboard_queue_depth", "Jobs in the queue (waiting, deferred or running)")
QUEUE_OLDEST_AGE = Gauge("switchboard_queue_oldest_job_age_seconds", "Age of the oldest job due in the queue")
JOBS_IN_FLIGHT = Gauge("switchboard_jobs_in_flight", "Jobs this worker runs now")
JOBS_HANDED_BACK = Counter("switchboard_jobs_handed_back", "Jobs a stopping worker handed back to the queue")


class MinuteStats:
    """Counts per wall-clock minute, added in memory and flushed to Redis by a timer: the `/admin` page's
    (`keys.stats`, the default) or any other hash of per-minute counts (`key`, `ttl_s`)."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, int], Tally[str]] = {}

    def add(self, field: str, amount: int = 1, *, key: str | None = None, ttl_s: int = keys.STATS_TTL_S) -> None:
        where = (key if key is not None else keys.stats(int(time.time() // 60)), ttl_s)
        tally = self._pending.get(where)
        if tally is None:
            tally = self._pending[where] = Tally()
        tally[field] += amount

    async def flush(self, redis: Redis) -> None:
        """Write what was counted since the last flush (kept in memory if Redis fails): one round trip."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        try:
            async with redis.pipeline(transaction=False) as pipe:
                for (key, ttl_s), tally in pending.items():
                    for field, amount in tally.items():
                        pipe.hincrby(key, field, amount)
                    pipe.expire(key, ttl_s)
                await pipe.execute()
        except Exception:
            for where, tally in pending.items():  # try again at the next flush
                self._pending.setdefault(where, Tally()).update(tally)
            raise


STATS = MinuteStats()


def record_completion(feature: str, *, ok: bool, seconds: float) -> None:
    """One AI action ended: its answer (`ok`) or its user-facing error was published."""
    COMPLETIONS.labels(feature).inc()
    STATS.add("done")
    if not ok:
        COMPLETION_ERRORS.labels(feature).inc()
        STATS.add("failed")
        return
    COMPLETION_SECONDS.labels(feature).observe(seconds)
    APDEX.labels(feature).inc()
    STATS.add(f"apdex:{feature}")
    if seconds <= APDEX_THRESHOLD_S:
        APDEX_SUCCESS.labels(feature).inc()
        STATS.add(f"apdex_ok:{feature}")


def record_refusal(feature: str) -> None:
    """The worker's re-check refused an action: answered with a refusal, outside the completion SLI."""
    ACTIONS_REFUSED.labels(feature).inc()
    STATS.add("refused")


def record_provider_request(provider: str, model: str, outcome: str, seconds: float) -> None:
    PROVIDER_REQUESTS.labels(provider, model, outcome).inc()
    PROVIDER_SECONDS.labels(provider, model).observe(seconds)
    if outcome == "success":
        STATS.add(f"model:{provider}/{model}")


async def sample_queue(redis: Redis) -> tuple[int, float]:
    """Set the queue gauges from one round trip: (depth, age of the oldest due job in seconds)."""
    now_ms = time.time() * 1000
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(keys.QUEUE)
        pipe.zrangebyscore(keys.QUEUE, "-inf", now_ms, start=0, num=1, withscores=True)
        depth, oldest = await pipe.execute()
    age = max(0.0, (now_ms - oldest[0][1]) / 1000) if oldest else 0.0
    QUEUE_DEPTH.set(depth)
    QUEUE_OLDEST_AGE.set(age)
    return int(depth), age


@dataclass(frozen=True, slots=True)
class Failure:
    """One AI action that ended in an error: what `/admin` lists. `error` is the text the user got (with
    GitLab's error code); `error_class` the internal exception's class name, with the provider's HTTP
    status when it had one; `model` the model whose call failed, when one did."""

    at: float  # unix time
    request_id: str
    feature: str
    error: str
    error_class: str
    model: str | None = None
    status: int | None = None
    tries: int = 1


async def record_failure(redis: Redis, failure: Failure) -> None:
    """Push `failure` onto the capped list of recent failures (one round trip). Never raises: a failure
    that cannot be recorded is logged."""
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.lpush(keys.FAILURES, orjson.dumps(asdict(failure)))
            pipe.ltrim(keys.FAILURES, 0, keys.FAILURES_MAXLEN - 1)
            pipe.expire(keys.FAILURES, keys.FAILURES_TTL_S)
            await pipe.execute()
    except Exception as exc:
        log.warning("failure_not_recorded", extra={"request_id": failure.request_id, "error": type(exc).__name__})


async def recent_failures(redis: Redis, limit: int = keys.FAILURES_MAXLEN) -> list[Failure]:
    """The latest failures, newest first; entries that do not parse are skipped."""
    failures = []
    for raw in await redis.lrange(keys.FAILURES, 0, limit - 1):  # type: ignore[misc]
        try:
            failures.append(Failure(**orjson.loads(raw)))
        except (orjson.JSONDecodeError, TypeError):
            continue
    return failures


# Upper bounds of the cohorts' time-to-first-chunk buckets (one more bucket above the last).
TTFC_BUCKETS_MS = (500, 1_000, 2_000, 5_000, 10_000)
_SEPARATOR = "/"  # in neither model identifiers nor prompt version constraints
_FIELDS = ("requests", "errors", "apdex_ok", "ttfc_ms", "ttfc_count")


@dataclass(frozen=True, slots=True)
class Cohort:
    """Who answered an action, as a guarded rollout compares them: the feature setting, the model the
    selection chose (not a fallback, not the mock) and the prompt version constraint in force."""

    feature_setting: str
    model: str
    prompt_version: str


@dataclass(frozen=True, slots=True)
class CohortCounts:
    """A cohort's counts over a window: finished actions (`requests`), those that ended in a user-facing
    error, the answered ones within `APDEX_THRESHOLD_S` from enqueue, and the time to first chunk (sum in
    milliseconds, count, and per bucket of `TTFC_BUCKETS_MS`)."""

    requests: int = 0
    errors: int = 0
    apdex_ok: int = 0
    ttfc_ms: int = 0
    ttfc_count: int = 0
    ttfc_buckets: tuple[int, ...] = (0,) * (len(TTFC_BUCKETS_MS) + 1)

    def __add__(self, other: CohortCounts) -> CohortCounts:
        return CohortCounts(
            self.requests + other.requests, self.errors + other.errors, self.apdex_ok + other.apdex_ok,
            self.ttfc_ms + other.ttfc_ms, self.ttfc_count + other.ttfc_count,
            tuple(a + b for a, b in zip(self.ttfc_buckets, other.ttfc_buckets, strict=True)),
        )

    @property
    def answered(self) -> int:
        return self.requests - self.errors

    def ttfc_p95_ms(self) -> int | None:
        """The upper bound of the bucket that holds the 95th percentile (None: no measure, or above the
        last bound)."""
        seen = 0
        for bound, count in zip((*TTFC_BUCKETS_MS, None), self.ttfc_buckets, strict=True):
            seen += count
            if self.ttfc_count and seen >= 0.95 * self.ttfc_count:
                return bound
        return None

    def as_dict(self) -> dict[str, object]:
        return {**{name: getattr(self, name) for name in _FIELDS}, "ttfc_p95_ms": self.ttfc_p95_ms()}


def _bucket(milliseconds: int) -> int:
    for index, bound in enumerate(TTFC_BUCKETS_MS):
        if milliseconds <= bound:
            return index
    return len(TTFC_BUCKETS_MS)


def record_cohort(
    counts: MinuteStats, cohort: Cohort, *, ok: bool, seconds: float, first_chunk_s: float | None,
    now: float | None = None,
) -> None:
    """Count one finished action of `cohort` in `counts` (the worker's, flushed to Redis with its other
    counters every `worker.monitor.INTERVAL_S` and when it stops): answered (`ok`) or ended in a user-facing
    error, `seconds` from enqueue to its final message (apdex, as `record_completion`), and its time to
    first chunk when a chunk came. No Redis round trip per action."""
    prefix = f"{cohort.model}{_SEPARATOR}{cohort.prompt_version}{_SEPARATOR}"
    increments: list[tuple[str, int]] = [("requests", 1)]
    if not ok:
        increments.append(("errors", 1))
    elif seconds <= APDEX_THRESHOLD_S:
        increments.append(("apdex_ok", 1))
    if first_chunk_s is not None:
        milliseconds = round(first_chunk_s * 1000)
        increments += [("ttfc_ms", milliseconds), ("ttfc_count", 1), (f"ttfc_b{_bucket(milliseconds)}", 1)]
    key = keys.cohort(cohort.feature_setting, int((time.time() if now is None else now) // 60))
    for metric, amount in increments:
        counts.add(prefix + metric, amount, key=key, ttl_s=keys.COHORT_TTL_S)


async def read_cohorts(
    redis: Redis, feature_setting: str, since: float, until: float
) -> dict[tuple[str, str], CohortCounts]:
    """The counts of `feature_setting` in the minutes from `since` to `until` (unix times; both minutes
    included, at most the `keys.COHORT_TTL_S` the counters live), by (selected model, prompt version). One
    round trip."""
    last = int(until // 60)
    first = max(int(since // 60), last - keys.COHORT_TTL_S // 60)
    async with redis.pipeline(transaction=False) as pipe:
        for minute in range(first, last + 1):
            pipe.hgetall(keys.cohort(feature_setting, minute))
        minutes = await pipe.execute()
    raw: dict[tuple[str, str], dict[str, int]] = {}
    for counts in minutes:
        for field, amount in counts.items():
            model, version, metric = field.decode().split(_SEPARATOR)
            tally = raw.setdefault((model, version), {})
            tally[metric] = tally.get(metric, 0) + int(amount)
    return {cohort: CohortCounts(
        **{name: tally.get(name, 0) for name in _FIELDS},
        ttfc_buckets=tuple(tally.get(f"ttfc_b{index}", 0) for index in range(len(TTFC_BUCKETS_MS) + 1)),
    ) for cohort, tally in raw.items()}
