"""`switchboard run`, `web` and `worker`: the long-running processes."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from typing import Any

import uvloop
from sqlalchemy.ext.asyncio import AsyncSession

from access.admin.rollouts import GateLike
from cli.accounts import seed_for_run
from cli.commands import CommandFailed
from cli.database import safe_url
from core.settings import Settings

__all__ = ["banner", "log_format", "register"]


async def _gate_of_run(session: AsyncSession, run_id: str) -> GateLike:
    """The rollouts' pre-gate over GraphQL: an evaluation run's gate (imported on first use: `evaluation` brings
    the worker's provider clients, which the web process otherwise never loads)."""
    from evaluation.store import gate_result

    return await gate_result(session, run_id)


def _web(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    from api.app import create_app
    from api.connection import CoalescingWebSocketProtocol, guarded_protocol

    app = create_app(settings, _inline_runner(settings), _gate_of_run)
    _settle_heap()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port if args.port is not None else settings.port,
        log_config=None,  # uvicorn's loggers go through the root handler: JSON lines (`core.logs`)
        log_level="info",
        access_log=args.access_log,
        ws=CoalescingWebSocketProtocol,  # a websocket's frames of one loop turn in one write
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


def log_format(settings: Settings, command: str, terminal: bool) -> str:
    """`SWITCHBOARD_LOG_FORMAT` when set; else readable text for `switchboard run` on a terminal (a person
    watching), JSON for everything else (`web` and `worker` feed log collectors). `run` hands its choice
    down to its web and worker processes."""
    if "log_format" in settings.model_fields_set:
        return settings.log_format
    return "text" if command == "run" and terminal else "json"


def _run(settings: Settings, args: argparse.Namespace) -> None:
    """Migrate, seed, start the embedded Redis when needed, then a web and a worker process; the banner
    once the web process is ready. A taken port is refused before anything is written."""
    from core.redis import redis_url, release_embedded_redis

    _check_port_free(args.host, args.port)
    document = seed_for_run(settings, args)
    env = {**os.environ, "REDIS_URL": redis_url(settings.redis_url, settings.data_dir),
           "SWITCHBOARD_LOG_FORMAT": log_format(settings, "run", sys.stderr.isatty())}
    base = [sys.executable, "-m", "cli.main"]
    children = [
        subprocess.Popen([*base, "web", "--host", args.host, "--port", str(args.port)], env=env),
        subprocess.Popen([*base, "worker"], env=env),
    ]
    host = "localhost" if args.host in ("0.0.0.0", "127.0.0.1", "::") else args.host
    lines = banner(f"http://{host}:{args.port}", document, settings, env["REDIS_URL"])
    try:
        _supervise(children, ready=f"http://127.0.0.1:{args.port}/-/readiness" if host == "localhost" else None,
                   announce=lambda: print("\n".join(lines), flush=True))
    finally:
        release_embedded_redis(settings.data_dir)  # the embedded Redis's last user stops it (core.redis)


def _check_port_free(host: str, port: int) -> None:
    """CommandFailed when the web process could not listen on `port` (checked the way uvicorn binds)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CommandFailed(f"cannot listen on {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise CommandFailed(
                f"port {port} on {host} is already in use ({exc.strerror}); is Switchboard already running? "
                f"Choose another port: make run PORT={port + 1}  (or switchboard run --port {port + 1})"
            ) from None


def banner(url: str, document: dict[str, Any], settings: Settings, redis: str) -> list[str]:
    """What `switchboard run` prints once it serves: the pages (the chat and GraphiQL open with alice's
    token, from the URL's fragment, which never reaches the server's logs), the demo users and their tokens,
    and how to get the `switchboard` command."""
    users = document["users"]
    alice = users.get("alice", {}).get("token", "")
    lines = [
        "",
        "Switchboard is running (Ctrl-C stops it). Open:",
        f"  Chat      {url}/chat#token={alice}",
        "            (one click: signed in as alice, who holds a Duo Enterprise seat)",
        f"  GraphiQL  {url}/api/graphql#token={alice}",
        f"  Admin     {url}/admin   (sign in with root's token)",
        "",
        "Demo users (API: Authorization: Bearer <token>; reused by the next `switchboard run` while valid):",
    ]
    lines += [f"  {name:<8} {user['gid']:<22} {user['token']}" for name, user in users.items()]
    lines += [
        f"  Try: curl -s {url}/api/graphql -H 'Authorization: Bearer {alice}' -H 'Content-Type: application/json' "
        "-d '{\"query\": \"{ currentUser { username } }\"}'",
        "",
        f"Redis: {safe_url(redis)}   database: {safe_url(settings.database)}   "
        f"mock model: {'on' if settings.use_mock_model else 'off'}",
        f"Worker metrics: port {settings.worker_metrics_port} (the next free one if taken)"
        if settings.worker_metrics_port else "Worker metrics: off",
    ]
    hint = _command_hint()
    if hint:
        lines.append(hint)
    return lines


def _command_hint() -> str | None:
    """How to get `switchboard` on PATH, when this one runs from a virtual environment that is not active."""
    if sys.prefix == sys.base_prefix:
        return None
    own = os.path.join(sys.prefix, "bin", "switchboard")
    found = shutil.which("switchboard")
    if found and os.path.realpath(found) == os.path.realpath(own):
        return None
    venv = os.path.relpath(sys.prefix)
    venv = venv if not venv.startswith("..") else sys.prefix
    return f"The switchboard command (seed, flags, models, ...): . {venv}/bin/activate   or   {venv}/bin/switchboard"


def _supervise(children: list[subprocess.Popen[bytes]], *, ready: str | None = None,
               announce: Callable[[], None] | None = None) -> None:
    """Wait for the children; stop them all on SIGINT/SIGTERM or when one fails. `announce` runs once
    `ready` answers 200 (or at once without a URL to ask)."""
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
    pending = announce
    while any(child.poll() is None for child in children):
        for child in children:
            if child.poll() not in (None, 0) and not stopping:
                failed = child
                stop(signal.SIGTERM, None)
        if pending is not None and not stopping and (ready is None or _answers(ready)):
            pending()
            pending = None
        try:
            children[0].wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
    for child in children:
        child.wait()
    if failed is not None:
        raise CommandFailed(f"a process exited with status {failed.returncode}; see its output above")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


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
