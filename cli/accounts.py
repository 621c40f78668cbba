"""`switchboard users` and `switchboard tokens`: accounts and personal access tokens (stored hashed; a
listing never shows them), and `switchboard seed`, the demo accounts and data.

`switchboard seed` issues fresh tokens every run (SPEC §11). `switchboard run` does not: it keeps the demo
users' tokens in `<data dir>/demo-tokens.json` (mode 0600) and hands them out again while they are valid,
so that each `make run` neither changes the links a user bookmarked nor adds never-expiring tokens."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from access.admin import accounts
from cli.commands import command, in_transaction, subcommands
from cli.database import db_upgrade
from core.errors import InvalidInput
from core.settings import Settings
from core.tables import User

__all__ = ["DEMO_TOKENS_FILE", "print_users", "register", "seed_demo", "seed_for_run"]

log = logging.getLogger(__name__)

DEMO_TOKENS_FILE = "demo-tokens.json"


def seed_demo(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    from access.admin.seed import seed

    db_upgrade(settings, args)
    document = in_transaction(settings, lambda session: seed(session, mode=settings.mode))
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print_users(document)
    return document


def seed_for_run(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """`switchboard run`'s seed: migrations, the demo data, and the demo users' tokens of the previous run
    again where they are still valid (not revoked, not expired), new ones for the others. Prints nothing."""
    from access.admin.seed import seed

    db_upgrade(settings, args)
    path = settings.data_dir / DEMO_TOKENS_FILE
    kept = _read_tokens(path)
    document = in_transaction(settings, lambda session: seed(session, mode=settings.mode, reuse=kept))
    tokens = {name: user["token"] for name, user in document["users"].items()}
    if tokens != kept:
        _write_tokens(path, tokens)
    return document


def _read_tokens(path: Path) -> dict[str, str]:
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("demo_tokens_unreadable", extra={"path": str(path), "error": str(exc)})
        return {}
    if not isinstance(stored, dict):
        return {}
    return {name: token for name, token in stored.items() if isinstance(name, str) and isinstance(token, str)}


def _write_tokens(path: Path, tokens: dict[str, str]) -> None:
    """Replace the file atomically, readable by its owner only (it holds an administrator's token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an older partial file may have had wider permissions
    with os.fdopen(descriptor, "w") as out:
        json.dump(tokens, out, indent=2)
    os.replace(partial, path)


def print_users(document: dict[str, Any]) -> None:
    print("Demo users (token: Authorization: Bearer <token>):")
    for name, user in document["users"].items():
        print(f"  {name:<8} {user['gid']:<22} {user['token']}")


def _users_create(settings: Settings, args: argparse.Namespace) -> None:
    user = in_transaction(settings, lambda s: accounts.create_user(s, args.name, admin=args.admin))
    print(f"gid://gitlab/User/{user.id}")


def _tokens_create(settings: Settings, args: argparse.Namespace) -> None:
    scopes = tuple(s.strip() for s in args.scopes.split(",") if s.strip())
    token = in_transaction(
        settings, lambda s: accounts.create_token(s, args.name, scopes=scopes, expires_in_days=args.expires_in_days)
    )
    print(token)


async def _users_list(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    users = await session.scalars(select(User).order_by(User.id))
    return [f"{u.username:<24} gid://gitlab/User/{u.id:<6} {'admin' if u.admin else ''}".rstrip() for u in users]


async def _tokens_list(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    lines = []
    for token in await accounts.list_tokens(session, args.name):
        expires = token.expires_at.date().isoformat() if token.expires_at else "never"
        state = "revoked" if token.revoked else "active"
        lines.append(f"{token.id:<6} {token.name:<16} {token.scopes:<28} expires {expires:<10} {state}")
    return lines


async def _tokens_revoke(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    if args.id is None and args.token_name is None and not args.all:
        raise InvalidInput(None, "say which tokens: --id ID, --name NAME or --all")
    count = await accounts.revoke_tokens(session, args.name, token_id=args.id, name=args.token_name)
    return [f"revoked {count} token(s) of {args.name}"]


def register(commands: Any) -> None:
    """Add `seed`, `users` and `tokens` to `switchboard`."""
    seed_parser = commands.add_parser("seed", help="deterministic demo data; fresh tokens every run")
    seed_parser.add_argument("--json", action="store_true", help="print the JSON document on stdout")
    seed_parser.set_defaults(handler=seed_demo)

    users = subcommands(commands, "users", "user accounts")
    create_user = users.add_parser("create", help="create a user; prints its global ID")
    create_user.add_argument("name")
    create_user.add_argument("--admin", action="store_true")
    create_user.set_defaults(handler=_users_create)
    command(users.add_parser("list", help="every user"), _users_list)

    tokens = subcommands(commands, "tokens", "personal access tokens")
    create_token = tokens.add_parser("create", help="create a token for a user; prints the token alone")
    create_token.add_argument("name", help="the user's username")
    create_token.add_argument("--scopes", default="api,ai_features", help="comma-separated: api, read_api, ai_features")
    create_token.add_argument("--expires-in-days", type=int, default=None)
    create_token.set_defaults(handler=_tokens_create)
    listing = tokens.add_parser("list", help="a user's tokens (never their values)")
    listing.add_argument("name", help="the user's username")
    command(listing, _tokens_list)
    revoke = tokens.add_parser("revoke", help="revoke a user's tokens")
    revoke.add_argument("name", help="the user's username")
    revoke.add_argument("--id", type=int, help="the token's id (see tokens list)")
    revoke.add_argument("--name", dest="token_name", help="every token with this name")
    revoke.add_argument("--all", action="store_true", help="every token of the user")
    command(revoke, _tokens_revoke)
