"""Stopping a request (SPEC §13.5): the worker's side of `aiActionCancel`.

The web process sets `keys.cancel(request_id)` and publishes the request id on `keys.CANCELS`, in one
round trip. A worker learns of it in one of two ways:

- **At the start of a job** (`job_start`, one MGET that also reads the final marker): a request cancelled
  while queued, or a job retried after a cancel, runs no model and ends at once.
- **While the job runs**: each worker process holds one pub/sub connection (`Cancellations`), whatever the
  number of its jobs; a running job `watch`es its request id and gets an `asyncio.Event` that is set when the
  cancel arrives. Ids of requests this process does not run are ignored. The job runs its model call with
  `until_cancelled`, which cancels the call's task when the event is set first (the provider stream is
  closed by its generator's `aclose`) and raises `RequestCancelled`; the pipeline then publishes the final
  message with the content streamed so far and `extras.cancelled`.

No cancel is lost to a race: a job registers its watch before `job_start` reads the cancel key, so a
cancel is either in the key when it reads it or published after the watch exists; and when the listener
(re)subscribes after a lost connection, it checks the cancel keys of every watched request once.

Exactly one final message: a cancel racing the request's natural end is settled by the final marker of
`subscriptions.streams.Publisher` (whichever publishes first wins; the other is a no-op).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Literal, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from core import keys
from core.metrics import ACTIONS_CANCELLED
from core.redis import REDIS_UNAVAILABLE

__all__ = ["Cancellations", "RequestCancelled", "JobStart", "job_start", "cancelled", "until_cancelled",
           "record_cancelled", "Stage"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
Stage = Literal["queued", "running"]

# A read of the pub/sub connection waits at most this long (well under the pool's socket timeout).
_LISTEN_S = 1.0
# How long a stopped model call gets to close its stream before the request ends without it.
_STOP_GRACE_S = 5.0


class RequestCancelled(Exception):
    """The user stopped the request (`aiActionCancel`); not an asyncio cancellation of the job."""


@dataclass(frozen=True, slots=True)
class JobStart:
    final_published: bool  # another run of the job ended the request already
    cancel_requested: bool


async def job_start(redis: Redis, request_id: str) -> JobStart:
    """What a job must know before it runs, in one round trip: is the final out, was a cancel asked for."""
    final, cancel = await redis.mget(keys.final(request_id), keys.cancel(request_id))
    return JobStart(final_published=final is not None, cancel_requested=cancel is not None)


async def cancelled(redis: Redis, request_id: str) -> bool:
    """Whether `aiActionCancel` was called for the request (a job that starts after it runs no model)."""
    return bool(await redis.exists(keys.cancel(request_id)))


def record_cancelled(request_id: str, feature: str, stage: Stage, chunks: int) -> None:
    """The log line and the metric of a request that ended cancelled (its cancelled final went out)."""
    ACTIONS_CANCELLED.labels(feature, stage).inc()
    log.info("request_cancelled", extra={"request_id": request_id, "feature": feature, "stage": stage,
                                         "chunks": chunks})


class Cancellations:
    """The cancels that reach one worker process: one pub/sub connection for all its jobs."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._watched: dict[str, set[asyncio.Event]] = {}
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe (a connection of the client's pool, held until `close`) and start listening."""
        self._pubsub = self._redis.pubsub()
        await self._pubsub.subscribe(keys.CANCELS)
        self._listener = asyncio.create_task(self._listen(self._pubsub), name="switchboard-cancellations")

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None

    @contextlib.asynccontextmanager
    async def watch(self, request_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set when a cancel of `request_id` arrives while the block runs. Register the watch
        before checking the cancel key (`job_start`), so that no cancel falls between the two."""
        event = asyncio.Event()
        self._watched.setdefault(request_id, set()).add(event)
        try:
            yield event
        finally:
            events = self._watched.get(request_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._watched[request_id]

    def _cancel(self, request_id: str) -> None:
        for event in self._watched.get(request_id, ()):
            event.set()

    async def _listen(self, pubsub: PubSub) -> None:
        backoff = 0.1
        while True:
            try:
                await self._receive(pubsub)
                backoff = 0.1
                continue
            except REDIS_UNAVAILABLE as exc:  # redis-py reconnects and subscribes again on the next read
                log.warning("cancel listener lost Redis (%s); retrying in %.1f s", exc, backoff)
            except Exception:  # never let the one listener of the process die
                log.exception("cancel listener failed; retrying in %.1f s", backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _receive(self, pubsub: PubSub) -> None:
        message = await pubsub.get_message(timeout=_LISTEN_S)
        if message is None:
            return
        if message["type"] == "message":
            data = message["data"]
            self._cancel(data.decode() if isinstance(data, bytes) else str(data))
        elif message["type"] == "subscribe":  # (re)subscribed: cancels published meanwhile were missed
            await self._recheck()

    async def _recheck(self) -> None:
        watched = list(self._watched)
        if not watched:
            return
        try:
            found = await self._redis.mget([keys.cancel(request_id) for request_id in watched])
        except REDIS_UNAVAILABLE as exc:  # the next (re)subscription checks again
            log.warning("cancel listener could not check the cancel keys (%s)", exc)
            return
        for request_id, value in zip(watched, found, strict=True):
            if value is not None:
                self._cancel(request_id)


async def until_cancelled(stop: asyncio.Event | None, work: Awaitable[_T]) -> _T:
    """Await `work`, as a task raced against `stop`. When `stop` is set first (or was set already), the task
    is cancelled and given `_STOP_GRACE_S` to close its provider stream, and `RequestCancelled` is raised:
    the stop wins over whatever the work did meanwhile. A cancellation of the caller (arq's job timeout, a
    worker stopping) cancels the task too and propagates."""
    if stop is None:
        return await work
    if stop.is_set():  # stopped before the work began: it never runs
        if inspect.iscoroutine(work):
            work.close()
        raise RequestCancelled()
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        await _stop(task)
        raise
    finally:
        waiter.cancel()
    if not stop.is_set():
        return task.result()
    await _stop(task)  # a CancelledError here is the caller's own: it propagates
    raise RequestCancelled()


async def _stop(task: asyncio.Future[_T]) -> None:
    """Cancel `task` and wait (bounded) for it to end; its outcome is consumed, never raised: a failure
    while stopping is no failure of the request."""
    task.cancel()
    await asyncio.wait({task}, timeout=_STOP_GRACE_S)
    if not task.done():
        log.warning("a stopped model call did not end within %.1f s", _STOP_GRACE_S)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
