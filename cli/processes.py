"""`switchboard run`, `web` and `worker`: the long-running processes."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import subprocess
import sys
from typing import Any

import uvloop

from cli.accounts import seed_demo
from cli.commands import CommandFailed
from cli.database import safe_url
from core.settings import Settings

__all__ = ["register"]


def _web(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    from api.app import create_app
    from api.connection import guarded_protocol

    app = create_app(settings, _inline_runner(settings))
    _settle_heap()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port if args.port is not None else settings.port,
        log_config=None,  # uvicorn's loggers go through the root handler: JSON lines (`core.logs`)
        log_level="info",
        access_log=args.access_log,
        ws_max_size=1 << 20,
        ws_per_message_deflate=settings.ws_compression,
        timeout_graceful_shutdown=10,
        # Connections are timed out and request heads bounded (README "Limits"); uvicorn alone only times
        # out idle keep-alive connections.
        http=guarded_protocol(
            header_timeout_s=settings.http_header_timeout_s,
            request_timeout_s=settings.http_request_timeout_s,
            max_header_bytes=settings.max_header_bytes,
        ),
        timeout_keep_alive=settings.http_keep_alive_s,  # type: ignore[arg-type]  # uvicorn types it int; a float works (call_later)
    )


def _inline_runner(settings: Settings) -> Any:
    """The worker's job runner for `SWITCHBOARD_SYNC_EXECUTION`; a web process otherwise never loads the
    worker (nor the provider SDKs it imports)."""
    if not settings.sync_execution:
        return None
    from worker.jobs import InlineRunner

    return InlineRunner(settings)


def _worker(settings: Settings, args: argparse.Namespace) -> None:
    if args.check:
        return _worker_check(settings)
    from worker.process import build_worker

    logging.getLogger("arq.worker").setLevel(logging.WARNING)  # arq logs job arguments: user input
    uvloop.install()  # before arq's Worker takes the event loop
    worker = build_worker(settings, burst=args.burst, metrics_port=settings.worker_metrics_port)
    _settle_heap()
    worker.run()


def _worker_check(settings: Settings) -> None:
    """arq's health check: a worker recorded its health within the last interval (exit 1 otherwise)."""
    from worker.monitor import check_health

    healthy, detail = asyncio.run(check_health(settings))
    if not healthy:
        raise CommandFailed(detail)
    print(detail)


def _settle_heap() -> None:
    """Long-running processes: move start-up objects (modules, schema, catalogue) out of the garbage
    collector's sight and collect less often. Full collections over the whole heap otherwise pause a busy
    process for hundreds of milliseconds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def _run(settings: Settings, args: argparse.Namespace) -> None:
    """Migrate, seed, start the embedded Redis when needed, then a web and a worker process."""
    from core.redis import redis_url, release_embedded_redis

    args.json = False
    document = seed_demo(settings, args)
    env = {**os.environ, "REDIS_URL": redis_url(settings.redis_url, settings.data_dir)}
    base = [sys.executable, "-m", "cli.main"]
    children = [
        subprocess.Popen([*base, "web", "--host", args.host, "--port", str(args.port)], env=env),
        subprocess.Popen([*base, "worker"], env=env),
    ]
    host = "localhost" if args.host in ("0.0.0.0", "127.0.0.1") else args.host
    print(f"\nSwitchboard: http://{host}:{args.port}/api/graphql  (GraphiQL in a browser; Ctrl-C stops)")
    print(f"Redis: {safe_url(env['REDIS_URL'])}   mock model: {'on' if settings.use_mock_model else 'off'}")
    alice = document["users"].get("alice", {})
    if alice:
        print(f"Try: curl -s http://{host}:{args.port}/api/graphql -H 'Authorization: Bearer {alice['token']}' "
              "-H 'Content-Type: application/json' -d '{\"query\": \"{ currentUser { username } }\"}'")
    try:
        _supervise(children)
    finally:
        release_embedded_redis(settings.data_dir)  # the embedded Redis's last user stops it (core.redis)


def _supervise(children: list[subprocess.Popen[bytes]]) -> None:
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    failed = None
    while any(child.poll() is None for child in children):
        for child in children:
            if child.poll() not in (None, 0) and not stopping:
                failed = child
                stop(signal.SIGTERM, None)
        try:
            children[0].wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
    for child in children:
        child.wait()
    if failed is not None:
        raise CommandFailed(f"a process exited with status {failed.returncode}; see its output above")


def register(commands: Any) -> None:
    run = commands.add_parser("run", help="migrate, seed, start Redis (embedded if REDIS_URL is unset), web and worker")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    run.set_defaults(handler=_run)

    web = commands.add_parser("web", help="serve the ASGI app with uvicorn")
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=int, default=None, help="default: $PORT or 8080")
    web.add_argument("--access-log", action="store_true", help="log every HTTP request")
    web.set_defaults(handler=_web)

    worker = commands.add_parser("worker", help="run an arq worker")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.add_argument("--check", action="store_true", help="health check: exit 0 when a worker is alive")
    worker.set_defaults(handler=_worker)
