"""`switchboard add-ons`, `switchboard seats` and `switchboard duo setup` / `setup-instance`."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from access.admin import add_ons, namespaces
from cli.commands import Work, command, subcommands
from core.tables import ADD_ON_NAMES, AddOnPurchase, Group

__all__ = ["register"]


async def _purchase(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    group = await namespaces.get_group(session, args.group) if args.group else None
    expires = datetime.fromisoformat(args.expires_on).replace(tzinfo=UTC) if args.expires_on else None
    bought = await add_ons.purchase(session, args.add_on, group, args.seats, expires_at=expires)
    where = group.full_path if group else "the instance"
    return [f"{bought.add_on} for {where}: {bought.quantity} seats" + (f", until {args.expires_on}" if expires else "")]


async def _add_ons_list(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    rows = await session.execute(
        select(AddOnPurchase, Group.full_path).outerjoin(Group, Group.id == AddOnPurchase.namespace_id).order_by(AddOnPurchase.id)
    )
    lines = []
    for bought, path in rows.all():
        holders = [user.username for user in await add_ons.seat_holders(session, bought)]
        until = f" until {bought.expires_at.date()}" if bought.expires_at else ""
        lines.append(f"{bought.add_on:<16} {path or '(instance)':<24} {len(holders)}/{bought.quantity} seats{until}: "
                     f"{', '.join(holders) or '-'}")
    return lines


async def _seats_assign(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    group = await namespaces.get_group(session, args.group) if args.group else None
    user = await namespaces.get_user(session, args.user)
    fresh = await add_ons.assign_seat(session, user, args.add_on, group)
    return [f"{user.username} {'now holds' if fresh else 'already holds'} a {args.add_on} seat"]


async def _seats_unassign(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    group = await namespaces.get_group(session, args.group) if args.group else None
    user = await namespaces.get_user(session, args.user)
    await add_ons.unassign_seat(session, user, args.add_on, group)
    return [f"{user.username} no longer holds a {args.add_on} seat"]


def _duo(mode_group: bool) -> Work:
    async def run(session: AsyncSession, args: argparse.Namespace) -> list[str]:
        mode = args.settings.mode
        return await add_ons.duo_setup(session, mode, args.group if mode_group else None, args.add_on)

    return run


def _add_on_option(parser: argparse.ArgumentParser, *, default: str | None = None) -> None:
    if default is None:
        parser.add_argument("add_on", choices=ADD_ON_NAMES, metavar="ADD_ON", help=" or ".join(ADD_ON_NAMES))
    else:
        parser.add_argument("--add-on", default=default, choices=ADD_ON_NAMES, help=f"default: {default}")


def register(commands: Any) -> None:
    """Add `add-ons`, `seats` and `duo` to `switchboard`."""
    purchases = subcommands(commands, "add-ons", "Duo add-on purchases (SaaS: per top-level group; self-managed: the instance)")
    buy = purchases.add_parser("purchase", help="buy an add-on, or change its seat count")
    _add_on_option(buy)
    buy.add_argument("--group", metavar="PATH", help="the top-level group (SaaS); without it: the instance")
    buy.add_argument("--seats", type=int, required=True, help="how many seats")
    buy.add_argument("--expires-on", metavar="YYYY-MM-DD", help="last day of the subscription (default: none)")
    command(buy, _purchase)
    command(purchases.add_parser("list", help="every purchase with its seat holders"), _add_ons_list)

    seats = subcommands(commands, "seats", "Duo seats of a purchase")
    for action, work, text in (("assign", _seats_assign, "give a user a seat"), ("unassign", _seats_unassign, "take a seat back")):
        parser = seats.add_parser(action, help=text)
        parser.add_argument("user")
        _add_on_option(parser)
        parser.add_argument("--group", metavar="PATH", help="the purchase's top-level group (SaaS)")
        command(parser, work)

    duo = subcommands(commands, "duo", "set GitLab Duo up in one step")
    setup = duo.add_parser(
        "setup", help="SaaS mode: the top-level group (created if missing), Duo on, the add-on with a seat for "
        "each member; idempotent",
    )
    setup.add_argument("group", metavar="GROUP", help="a top-level group's path")
    _add_on_option(setup, default="duo_enterprise")
    command(setup, _duo(True))
    instance = duo.add_parser(
        "setup-instance", help="self-managed mode: Duo on for the instance, the add-on with a seat for every user; idempotent"
    )
    _add_on_option(instance, default="duo_enterprise")
    command(instance, _duo(False))
