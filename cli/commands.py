"""What every `switchboard` command module shares: the failure a command reports, a transaction to work
in, and the way a command group and its options are declared."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.db import create_engine, session_factory
from core.settings import Settings

__all__ = ["CommandFailed", "Work", "command", "in_transaction", "subcommands", "target_options"]


class CommandFailed(Exception):
    """A command could not do its work; the message is shown on one line."""


def in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    """Run `work` in one committed transaction on a short-lived engine."""

    async def run() -> Any:
        engine = create_engine(settings, pooled=False)
        try:
            async with session_factory(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


Work = Callable[[AsyncSession, argparse.Namespace], Awaitable[list[str]]]


def command(parser: argparse.ArgumentParser, work: Work) -> None:
    """Make `parser` run `work` in one transaction and print the lines it returns."""

    def handler(settings: Settings, args: argparse.Namespace) -> None:
        args.settings = settings
        for line in in_transaction(settings, lambda session: work(session, args)):
            print(line)

    parser.set_defaults(handler=handler)


def target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group", metavar="PATH", help="a group's full path")
    parser.add_argument("--project", metavar="PATH", help="a project's full path (group/project)")


def subcommands(commands: Any, name: str, help: str) -> Any:
    """A command group (`switchboard NAME ACTION ...`)."""
    return commands.add_parser(name, help=help).add_subparsers(dest="action", required=True, metavar="ACTION")
