"""Every Redis key Switchboard uses, in one place.

| key                                   | type   | lifetime                         | holds |
|---------------------------------------|--------|----------------------------------|-------|
| `switchboard:queue`                   | zset   | arq's queue (jobs leave when done)| pending AI actions (arq job ids = request ids) |
| `switchboard:queue:wake`              | list   | trimmed to 64, 60 s TTL          | a nudge per enqueue so idle workers start at once |
| `switchboard:messages`                | stream | `MAXLEN ~ firehose_maxlen`       | every published message with its route ids (read by each web process's hub) |
| `switchboard:route:<route_id>`        | stream | `MAXLEN ~ route_maxlen`, TTL `replay_ttl_s` after the last message | one subscription route's messages, for resume with `after` |
| `switchboard:final:<request_id>`      | string | 1 day                            | set once the final message of a request was published (exactly-once guard) |
| `ai_chat:<user_id>`                   | stream | `MAXLEN 50`, 3 days after the last message | chat history (GitLab's key) |
| `switchboard:rate:<name>:<user_id>`   | string | the limit's period (8 h), from the first call in it | calls of a rate-limited endpoint (`ai_action`) in the current window |
| `switchboard:usage:<request_id>`      | hash   | 1 day                            | token usage of the request's answered model call (model, input/output tokens, estimated) |
| `switchboard:stats:<minute>`          | hash   | 2 hours                          | per-minute counts for `/admin` (done, failed, apdex per feature, models, queue depth), flushed by workers |
| `switchboard:workers`                 | hash   | 2 hours after the last beat      | worker id -> last heartbeat (unix time) and jobs in flight, written every few seconds |

arq's own keys (`arq:job:*`, `arq:in-progress:*`, `arq:retry:*`, `arq:result:*`) carry arq's TTLs.
"""

from __future__ import annotations

__all__ = [
    "PREFIX",
    "QUEUE",
    "WAKE",
    "WAKE_MAXLEN",
    "WAKE_TTL_S",
    "FIREHOSE",
    "JOB_NAME",
    "FINAL_TTL_S",
    "CHAT_HISTORY_MAXLEN",
    "CHAT_HISTORY_TTL_S",
    "route",
    "final",
    "chat_history",
    "rate_limit",
    "USAGE_TTL_S",
    "usage",
    "STATS_TTL_S",
    "stats",
    "WORKERS",
]

PREFIX = "switchboard"
QUEUE = f"{PREFIX}:queue"
WAKE = f"{QUEUE}:wake"
WAKE_MAXLEN = 64
WAKE_TTL_S = 60
FIREHOSE = f"{PREFIX}:messages"
FINAL_TTL_S = 24 * 3600
CHAT_HISTORY_MAXLEN = 50
CHAT_HISTORY_TTL_S = 3 * 24 * 3600

# The arq function the worker registers and the web process enqueues by name.
JOB_NAME = "run_action"


def route(route_id: str) -> str:
    return f"{PREFIX}:route:{route_id}"


def final(request_id: str) -> str:
    return f"{PREFIX}:final:{request_id}"


def chat_history(user_id: int) -> str:
    return f"ai_chat:{user_id}"


USAGE_TTL_S = 24 * 3600


def usage(request_id: str) -> str:
    return f"{PREFIX}:usage:{request_id}"


def rate_limit(name: str, user_id: int) -> str:
    return f"{PREFIX}:rate:{name}:{user_id}"


STATS_TTL_S = 2 * 3600
WORKERS = f"{PREFIX}:workers"


def stats(minute: int) -> str:
    """Counts of the wall-clock minute `minute` (unix time // 60)."""
    return f"{PREFIX}:stats:{minute}"
