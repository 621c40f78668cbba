"""`switchboard flags`: the Features REST API's changes from the command line (SPEC §7).

    switchboard flags list
    switchboard flags enable NAME [--user U,...] [--group G,...] [--project P,...]
    switchboard flags disable NAME [--user ...]
    switchboard flags set NAME VALUE [--key percentage_of_actors] [--user ...]
    switchboard flags reset NAME

A name that is neither defined in the catalogue nor set already is refused with the closest known names
(a typo would otherwise create a flag nothing reads); `--create` makes a new flag on purpose.

Running processes pick a change up within their flag cache time (5 s).
"""

from __future__ import annotations

import argparse
import difflib
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from access import flags
from access.admin.flag_changes import BadFlagChange, apply_change
from access.flags import FlagState
from catalogue.flags import FLAGS
from cli.commands import command, subcommands
from core.errors import InvalidInput

__all__ = ["register"]


def _describe(name: str, state: FlagState | None) -> str:
    definition = FLAGS.get(name)
    kind = f"{definition.type}, default {'on' if definition.default_enabled else 'off'}" if definition else "undefined"
    if state is None:
        current = "on" if definition is not None and definition.default_enabled else "off"
        return f"{name:<32} {current:<11} (default)  [{kind}]"
    gates = []
    if state.percentage_of_actors:
        gates.append(f"{state.percentage_of_actors:g}% of actors")
    if state.actors:
        gates.append("actors " + ",".join(sorted(state.actors)))
    return f"{name:<32} {state.state:<11} {'; '.join(gates) or '-'}  [{kind}]"


async def _list(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    states = await flags.load_states(session)
    return [_describe(name, states.get(name)) for name in sorted(set(FLAGS) | set(states))]


async def _known(session: AsyncSession, name: str) -> None:
    """InvalidInput naming the close matches (or every known flag) when `name` is neither defined nor set."""
    if name in FLAGS or await flags.load_state(session, name) is not None:
        return
    known = sorted(set(FLAGS) | set(await flags.load_states(session)))
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}?" if close else f"known flags: {', '.join(known)}"
    raise InvalidInput(None, f"unknown flag {name!r}; {hint} (--create makes a new flag)")


def _change(value: str | None) -> Any:
    async def run(session: AsyncSession, args: argparse.Namespace) -> list[str]:
        if not args.create:
            await _known(session, args.name)
        targets = {"user": args.user, "group": args.group, "project": args.project}
        try:
            state = await apply_change(session, args.name, value or args.value, key=getattr(args, "key", None), targets=targets)
        except BadFlagChange as exc:
            raise InvalidInput(None, str(exc)) from None
        return [_describe(args.name, state)]

    return run


async def _reset(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    forgotten = await flags.delete_flag(session, args.name)
    return [_describe(args.name, None) if forgotten else f"{args.name} was not set; it has its default"]


def _actor_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the flag's name")
    parser.add_argument("--user", help="usernames, comma-separated: only for these actors")
    parser.add_argument("--group", help="group full paths, comma-separated")
    parser.add_argument("--project", help="project full paths, comma-separated")
    parser.add_argument("--create", action="store_true", help="the flag is new: create it rather than refuse the name")


def register(commands: Any) -> None:
    """Add `flags` to `switchboard`."""
    group = subcommands(commands, "flags", "feature flags (the Features API from the command line)")
    command(group.add_parser("list", help="every defined or set flag with its state"), _list)
    enable = group.add_parser("enable", help="turn a flag on for everyone, or for the given actors")
    _actor_options(enable)
    command(enable, _change("true"))
    disable = group.add_parser("disable", help="turn a flag off for everyone (clears its gates), or for the given actors")
    _actor_options(disable)
    command(disable, _change("false"))
    change = group.add_parser("set", help="GitLab's POST /features/:name: VALUE is true, false or a percentage")
    _actor_options(change)
    change.add_argument("value", help="true, false, or 0-100 with --key percentage_of_actors")
    change.add_argument("--key", default=None, choices=["percentage_of_actors"], help="what a number means")
    command(change, _change(None))
    reset = group.add_parser("reset", help="forget the flag: it takes its default again (GitLab's DELETE)")
    reset.add_argument("name")
    command(reset, _reset)
