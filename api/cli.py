"""The `switchboard` command line (SPEC §3). Exit status: 0 success, 2 usage error, 1 failure."""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import uvloop
from pydantic import ValidationError

from core import logs
from core.errors import SwitchboardError
from core.settings import Settings

__all__ = ["main"]

log = logging.getLogger("switchboard")


class CommandFailed(Exception):
    """A command could not do its work; the message is shown on one line."""


def _with_session(settings: Settings, work: Callable[[Any], Awaitable[Any]]) -> Any:
    from core.db import create_engine, session_factory

    async def run() -> Any:
        engine = create_engine(settings)
        try:
            async with session_factory(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _db_upgrade(settings: Settings, args: argparse.Namespace) -> None:
    from core.db import upgrade

    upgrade(settings.database)
    print(f"database is up to date ({_safe_url(settings.database)})", file=sys.stderr)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _seed(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    from api.seed import seed

    _db_upgrade(settings, args)
    document = _with_session(settings, lambda session: seed(session, mode=settings.mode))
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        _print_users(document)
    return document


def _print_users(document: dict[str, Any]) -> None:
    print("Demo users (token: Authorization: Bearer <token>):")
    for name, user in document["users"].items():
        print(f"  {name:<8} {user['gid']:<22} {user['token']}")


def _users_create(settings: Settings, args: argparse.Namespace) -> None:
    from api.accounts import create_user

    user = _with_session(settings, lambda s: create_user(s, args.name, admin=args.admin))
    print(f"gid://gitlab/User/{user.id}")


def _tokens_create(settings: Settings, args: argparse.Namespace) -> None:
    from api.accounts import create_token

    scopes = tuple(s.strip() for s in args.scopes.split(",") if s.strip())
    token = _with_session(
        settings, lambda s: create_token(s, args.name, scopes=scopes, expires_in_days=args.expires_in_days)
    )
    print(token)


def _catalogue(settings: Settings, args: argparse.Namespace) -> None:
    import catalogue

    loaded = catalogue.validate()
    if args.action == "show":  # one JSON object a line: features, models, feature settings, prompts
        for entry in loaded.entries():
            print(json.dumps(entry, sort_keys=True))
    else:
        counts = (f"{len(loaded.features)} features, {len(loaded.models)} models, "
                  f"{len(loaded.feature_settings)} feature settings, {len(list(loaded.prompts))} prompt definitions")
        print(f"catalogue is valid: {counts}", file=sys.stderr)


def _check(settings: Settings, args: argparse.Namespace) -> None:
    """A test completion against each model the features use; one line per model."""
    probe_models = importlib.import_module("worker.probe").probe_models  # by name: `api` never imports `worker`
    results = asyncio.run(probe_models(settings))
    for result in results:
        print(result.line())
    failed = [result.model.identifier for result in results if result.failed]
    if failed:
        raise CommandFailed(f"{len(failed)} of {len(results)} models failed: {', '.join(failed)}")


def _web(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    from api.app import create_app

    app = create_app(settings)
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
    )


def _worker(settings: Settings, args: argparse.Namespace) -> None:
    if args.check:
        return _worker_check(settings)
    # Resolved by name, like arq's own CLI, so that `api` keeps no import of `worker`.
    build_worker = importlib.import_module("worker.settings").build_worker
    logging.getLogger("arq.worker").setLevel(logging.WARNING)  # arq logs job arguments: user input
    uvloop.install()  # before arq's Worker takes the event loop
    worker = build_worker(settings, burst=args.burst, metrics_port=settings.worker_metrics_port)
    _settle_heap()
    worker.run()


def _worker_check(settings: Settings) -> None:
    """arq's health check: a worker recorded its health within the last interval (exit 1 otherwise)."""
    healthy, detail = asyncio.run(importlib.import_module("worker.monitor").check_health(settings))
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
    from core.redis import embedded_redis_running, redis_url, stop_embedded_redis

    args.json = False
    document = _seed(settings, args)
    owns_redis = settings.redis_url is None and not embedded_redis_running(settings.data_dir)
    env = {**os.environ, "REDIS_URL": redis_url(settings.redis_url, settings.data_dir)}
    base = [sys.executable, "-m", "api.cli"]
    children = [
        subprocess.Popen([*base, "web", "--host", args.host, "--port", str(args.port)], env=env),
        subprocess.Popen([*base, "worker"], env=env),
    ]
    host = "localhost" if args.host in ("0.0.0.0", "127.0.0.1") else args.host
    print(f"\nSwitchboard: http://{host}:{args.port}/api/graphql  (GraphiQL in a browser; Ctrl-C stops)")
    print(f"Redis: {env['REDIS_URL']}   mock model: {'on' if settings.use_mock_model else 'off'}")
    alice = document["users"].get("alice", {})
    if alice:
        print(f"Try: curl -s http://{host}:{args.port}/api/graphql -H 'Authorization: Bearer {alice['token']}' "
              "-H 'Content-Type: application/json' -d '{\"query\": \"{ currentUser { username } }\"}'")
    try:
        _supervise(children)
    finally:
        if owns_redis:
            stop_embedded_redis(settings.data_dir)


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description="Switchboard, the AI action server.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    db_commands.add_parser("upgrade", help="apply schema migrations").set_defaults(handler=_db_upgrade)

    seed = commands.add_parser("seed", help="deterministic demo data; fresh tokens every run")
    seed.add_argument("--json", action="store_true", help="print the JSON document on stdout")
    seed.set_defaults(handler=_seed)

    users = commands.add_parser("users", help="user accounts")
    users_commands = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    create_user = users_commands.add_parser("create", help="create a user; prints its global ID")
    create_user.add_argument("name")
    create_user.add_argument("--admin", action="store_true")
    create_user.set_defaults(handler=_users_create)

    tokens = commands.add_parser("tokens", help="personal access tokens")
    tokens_commands = tokens.add_subparsers(dest="action", required=True, metavar="ACTION")
    create_token = tokens_commands.add_parser("create", help="create a token for a user; prints the token alone")
    create_token.add_argument("name", help="the user's username")
    create_token.add_argument("--scopes", default="api,ai_features", help="comma-separated: api, read_api, ai_features")
    create_token.add_argument("--expires-in-days", type=int, default=None)
    create_token.set_defaults(handler=_tokens_create)

    cat = commands.add_parser("catalogue", help="the feature catalogue")
    cat.add_argument("action", choices=["validate", "show"])
    cat.set_defaults(handler=_catalogue)

    check = commands.add_parser("check", help="a test completion against each configured model, one line per model")
    check.set_defaults(handler=_check)

    from api import add_ons_cli, admin_cli, flags_cli, models_cli  # operator commands (issue 3) live in their own modules

    admin_cli.register(commands, users_commands, tokens_commands)
    add_ons_cli.register(commands)
    flags_cli.register(commands)
    models_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    long_running = args.command in ("run", "web", "worker")
    logging.basicConfig(
        level=logging.INFO if long_running else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = Settings()
        if long_running:
            logs.configure(json=settings.log_format == "json")
        args.handler(settings, args)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"switchboard: invalid configuration: {problems}", file=sys.stderr)
        return 1
    except (CommandFailed, SwitchboardError) as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
