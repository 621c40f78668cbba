"""`switchboard db upgrade`: the database schema (Alembic migrations)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.db import upgrade
from core.settings import Settings

__all__ = ["db_upgrade", "register", "safe_url"]


def db_upgrade(settings: Settings, args: argparse.Namespace) -> None:
    upgrade(settings.database)
    print(f"database is up to date ({safe_url(settings.database)})", file=sys.stderr)


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def register(commands: Any) -> None:
    db = commands.add_parser("db", help="database schema")
    actions = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("upgrade", help="apply schema migrations").set_defaults(handler=db_upgrade)
