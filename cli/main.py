"""The `switchboard` command line (SPEC §3). Exit status: 0 success, 2 usage error, 1 failure.

One module per command group registers its commands here: `processes` (run, web, worker), `database`
(db upgrade), `accounts` (seed, users, tokens), `catalogue` (catalogue, check), `namespaces` (groups,
projects, members, settings), `add_ons` (add-ons, seats, duo), `flags`, `models`, `prompts`, `evaluation` (eval).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from cli import (
    accounts,
    add_ons,
    catalogue,
    database,
    evaluation,
    flags,
    models,
    namespaces,
    processes,
    prompts,
)
from cli.commands import CommandFailed
from core import logs
from core.errors import SwitchboardError
from core.settings import Settings

__all__ = ["main"]

_GROUPS = (processes, database, accounts, catalogue, namespaces, add_ons, flags, models, prompts, evaluation)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description="Switchboard, the AI action server.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in _GROUPS:
        group.register(commands)
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
            logs.configure(json=processes.log_format(settings, args.command, sys.stderr.isatty()) == "json")
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
