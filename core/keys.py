"""Every Redis key Switchboard uses, in one place.

| key                                   | type   | lifetime                         | holds |
|---------------------------------------|--------|----------------------------------|-------|
| `switchboard:queue`                   | zset   | arq's queue (jobs leave when done)| pending AI actions (arq job ids = request ids) |
| `switchboard:queue:wake`              | list   | trimmed to 64, no TTL            | a nudge per enqueue so idle workers start at once |
| `switchboard:messages`                | stream | `MAXLEN ~ firehose_maxlen`       | every published message with its route ids (read by each web process's hub) |
| `switchboard:route:<route_id>`        | stream | `MAXLEN ~ route_maxlen`, TTL `replay_ttl_s` after the last message | one subscription route's messages, for resume with `after` |
| `switchboard:final:<request_id>`      | string | 1 day                            | set once the final message of a request was published (exactly-once guard) |
| `switchboard:owner:<request_id>`      | string | 1 day (the life of a queued job) | the user id of the request's caller, written with the enqueue (`aiActionCancel` checks it) |
| `switchboard:cancel:<request_id>`     | string | 1 day (the life of a queued job) | set by `aiActionCancel`: a job that starts (or retries) finds it and runs no model |
| `switchboard:cancels`                 | pub/sub channel | (not stored)            | a cancelled request id, published with the cancel key; each worker process listens on one connection |
| `switchboard:rate:<name>:<user_id>`   | string | the limit's period (8 h), from the first call in it | calls of a rate-limited endpoint (`ai_action`) in the current window |
| `switchboard:usage:<request_id>`      | hash   | 1 day                            | token usage of the request's answered model call (model, input/output tokens, estimated) |
| `switchboard:stats:<minute>`          | hash   | 2 hours                          | per-minute counts for `/admin` (done, failed, apdex per feature, models, queue depth), flushed by workers |
| `switchboard:workers`                 | hash   | 2 hours after the last beat      | worker id -> last heartbeat (unix time) and jobs in flight, written every few seconds |
| `switchboard:failures`                | list   | the last `FAILURES_MAXLEN` (50), 1 day after the last push | the latest failed AI actions for `/admin`, newest first: time, request id, feature, model, user-facing error, error class (never user input, prompts or provider text) |
| `switchboard:cohort:<setting>:<minute>` | hash | 2 hours                          | guarded rollouts' cohort counters (SPEC §9.1) of a feature setting in one wall-clock minute: fields `<selected model>/<prompt version>/<metric>` (requests, errors, apdex, time to first chunk), incremented by every worker once per finished action |
| `switchboard:rollout:leader`          | string | `3 × SWITCHBOARD_ROLLOUT_CHECK_S`, renewed by its holder | the token of the worker process whose rollout controller leads (`worker.rollout`) |

arq's own keys (`arq:job:*`, `arq:in-progress:*`, `arq:retry:*`, `arq:result:*`) carry arq's TTLs.
"""

from __future__ import annotations

__all__ = [
    "PREFIX",
    "QUEUE",
    "WAKE",
    "WAKE_MAXLEN",
    "FIREHOSE",
    "JOB_NAME",
    "FINAL_TTL_S",
    "OWNER_TTL_S",
    "CANCEL_TTL_S",
    "CANCELS",
    "owner",
    "cancel",
    "route",
    "final",
    "rate_limit",
    "USAGE_TTL_S",
    "usage",
    "STATS_TTL_S",
    "stats",
    "WORKERS",
    "FAILURES",
    "FAILURES_MAXLEN",
    "FAILURES_TTL_S",
    "COHORT_TTL_S",
    "cohort",
    "ROLLOUT_LEADER",
]

PREFIX = "switchboard"
QUEUE = f"{PREFIX}:queue"
WAKE = f"{QUEUE}:wake"
WAKE_MAXLEN = 64
FIREHOSE = f"{PREFIX}:messages"
FINAL_TTL_S = 24 * 3600
# A request can be cancelled as long as its job may still run: arq keeps a queued job for a day.
OWNER_TTL_S = 24 * 3600
CANCEL_TTL_S = 24 * 3600
CANCELS = f"{PREFIX}:cancels"

# The arq function the worker registers and the web process enqueues by name.
JOB_NAME = "run_action"


def route(route_id: str) -> str:
    return f"{PREFIX}:route:{route_id}"


def final(request_id: str) -> str:
    return f"{PREFIX}:final:{request_id}"


def owner(request_id: str) -> str:
    return f"{PREFIX}:owner:{request_id}"


def cancel(request_id: str) -> str:
    return f"{PREFIX}:cancel:{request_id}"



USAGE_TTL_S = 24 * 3600


def usage(request_id: str) -> str:
    return f"{PREFIX}:usage:{request_id}"


def rate_limit(name: str, user_id: int) -> str:
    return f"{PREFIX}:rate:{name}:{user_id}"


STATS_TTL_S = 2 * 3600
WORKERS = f"{PREFIX}:workers"
FAILURES = f"{PREFIX}:failures"
FAILURES_MAXLEN = 50
FAILURES_TTL_S = 24 * 3600


def stats(minute: int) -> str:
    """Counts of the wall-clock minute `minute` (unix time // 60)."""
    return f"{PREFIX}:stats:{minute}"


# Guarded rollouts (SPEC §9.1): the cohort counters outlive the longest window the controller reads.
COHORT_TTL_S = 2 * 3600
ROLLOUT_LEADER = f"{PREFIX}:rollout:leader"


def cohort(feature_setting: str, minute: int) -> str:
    """Cohort counters of `feature_setting` in the wall-clock minute `minute` (unix time // 60)."""
    return f"{PREFIX}:cohort:{feature_setting}:{minute}"
