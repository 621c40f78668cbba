"""`switchboard db upgrade`: the database schema (Alembic migrations)."""

from __future__ import annotations

import argparse
import sys
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from core.db import upgrade
from core.settings import Settings

__all__ = ["db_upgrade", "register", "safe_url"]


def db_upgrade(settings: Settings, args: argparse.Namespace) -> None:
    upgrade(settings.database)
    print(f"database is up to date ({safe_url(settings.database)})", file=sys.stderr)


def safe_url(url: str) -> str:
    """`url` with its password masked, for banners and logs: a database or Redis URL, the password in the
    user-info part (`redis://:pw@host`, `redis+sentinel://user:pw@h1,h2/name`) or in the query (`?password=`)."""
    parts = urlsplit(url)
    safe = url
    user_info, at, hosts = parts.netloc.rpartition("@")
    if at and ":" in user_info:
        safe = safe.replace(parts.netloc, f"{user_info.partition(':')[0]}:***@{hosts}", 1)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name.lower() == "password" for name, _ in query):
        masked = [(name, "***" if name.lower() == "password" else value) for name, value in query]
        safe = safe[: safe.rindex(parts.query)] + urlencode(masked, safe="*") + (f"#{parts.fragment}" if parts.fragment else "")
    return safe


def register(commands: Any) -> None:
    db = commands.add_parser("db", help="database schema")
    actions = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("upgrade", help="apply schema migrations").set_defaults(handler=db_upgrade)
