"""Duo add-on purchases and seats, and `switchboard duo setup` / `setup-instance`.

A purchase is for a top-level group (SaaS) or, without a group, for the instance (self-managed). A seat of
a group's purchase goes to a member of that group's tree. Like `access.admin.accounts`, these functions flush but
never commit, and raise `InvalidInput` saying what is wrong and how to fix it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from access.admin.namespaces import create_group, duo_cascade
from access.entitlement import Mode
from core.errors import InvalidInput
from core.tables import (
    ADD_ON_NAMES,
    AddOnAssignment,
    AddOnPurchase,
    Group,
    InstanceSettings,
    Member,
    Project,
    User,
)

__all__ = ["assign_seat", "duo_setup", "find_purchase", "purchase", "seat_holders", "tree_members", "unassign_seat"]

logger = logging.getLogger(__name__)


def _where(group: Group | None) -> str:
    return f"group {group.full_path}" if group else "the instance"


def _option(group: Group | None) -> str:
    return f" --group {group.full_path}" if group else ""


def _check_add_on(add_on: str) -> None:
    if add_on not in ADD_ON_NAMES:
        raise InvalidInput("add_on", f"{add_on!r}: one of {', '.join(ADD_ON_NAMES)}")


async def find_purchase(session: AsyncSession, add_on: str, group: Group | None) -> AddOnPurchase | None:
    _check_add_on(add_on)
    namespace = AddOnPurchase.namespace_id == group.id if group else AddOnPurchase.namespace_id.is_(None)
    return await session.scalar(select(AddOnPurchase).where(AddOnPurchase.add_on == add_on, namespace))


async def _assigned(session: AsyncSession, purchase: AddOnPurchase) -> int:
    query = select(func.count()).select_from(AddOnAssignment).where(AddOnAssignment.purchase_id == purchase.id)
    return int(await session.scalar(query) or 0)


async def purchase(
    session: AsyncSession, add_on: str, group: Group | None, seats: int, *, expires_at: datetime | None = None
) -> AddOnPurchase:
    """Buy `add_on` with `seats` seats for a top-level group or the instance, or change the seat count."""
    _check_add_on(add_on)
    if seats < 0:
        raise InvalidInput("seats", f"must be 0 or more, got {seats}")
    if group is not None and group.parent_id is not None:
        top = group.full_path.split("/")[0]
        raise InvalidInput("group", f"add-ons are bought for top-level groups: use --group {top}")
    found = await find_purchase(session, add_on, group)
    if found is None:
        found = AddOnPurchase(add_on=add_on, namespace_id=group.id if group else None, quantity=seats, expires_at=expires_at)
        session.add(found)
    else:
        assigned = await _assigned(session, found)
        if seats < assigned:
            raise InvalidInput(
                "seats", f"{assigned} seats of {add_on} are assigned on {_where(group)}; unassign some first "
                f"(`switchboard seats unassign USER {add_on}{_option(group)}`)"
            )
        found.quantity = seats
        found.expires_at = expires_at
    await session.flush()
    return found


async def tree_members(session: AsyncSession, group: Group) -> list[User]:
    """Users with a membership of `group`, a subgroup, or a project in them."""
    groups = select(Group.id).where(
        or_(Group.id == group.id, Group.full_path.startswith(group.full_path + "/", autoescape=True))
    )
    projects = select(Project.id).where(Project.group_id.in_(groups))
    members = select(Member.user_id).where(
        or_(
            and_(Member.source_type == "Group", Member.source_id.in_(groups)),
            and_(Member.source_type == "Project", Member.source_id.in_(projects)),
        )
    )
    return list(await session.scalars(select(User).where(User.id.in_(members)).order_by(User.id)))


async def seat_holders(session: AsyncSession, purchase: AddOnPurchase) -> list[User]:
    query = select(User).join(AddOnAssignment, AddOnAssignment.user_id == User.id)
    return list(await session.scalars(query.where(AddOnAssignment.purchase_id == purchase.id).order_by(User.id)))


async def _required_purchase(session: AsyncSession, add_on: str, group: Group | None) -> AddOnPurchase:
    found = await find_purchase(session, add_on, group)
    if found is None:
        raise InvalidInput(
            "add_on", f"{_where(group)} has no {add_on} purchase; buy one with "
            f"`switchboard add-ons purchase {add_on}{_option(group)} --seats N`"
        )
    return found


async def assign_seat(session: AsyncSession, user: User, add_on: str, group: Group | None) -> bool:
    """Give `user` a seat of the purchase; False when they hold one already."""
    bought = await _required_purchase(session, add_on, group)
    have = select(AddOnAssignment.id).where(AddOnAssignment.purchase_id == bought.id, AddOnAssignment.user_id == user.id)
    if await session.scalar(have) is not None:
        return False
    if group is not None and user.id not in {member.id for member in await tree_members(session, group)}:
        raise InvalidInput(
            "user", f"{user.username} is not a member of {group.full_path}; add them first: "
            f"`switchboard members add {user.username} --group {group.full_path} --access-level developer`"
        )
    assigned = await _assigned(session, bought)
    if assigned >= bought.quantity:
        raise InvalidInput(
            "seats", f"all {bought.quantity} seats of {add_on} on {_where(group)} are assigned; buy more: "
            f"`switchboard add-ons purchase {add_on}{_option(group)} --seats {assigned + 1}`"
        )
    session.add(AddOnAssignment(purchase_id=bought.id, user_id=user.id))
    await session.flush()
    return True


async def unassign_seat(session: AsyncSession, user: User, add_on: str, group: Group | None) -> None:
    bought = await _required_purchase(session, add_on, group)
    seat = await session.scalar(
        select(AddOnAssignment).where(AddOnAssignment.purchase_id == bought.id, AddOnAssignment.user_id == user.id)
    )
    if seat is None:
        raise InvalidInput("user", f"{user.username} holds no {add_on} seat on {_where(group)}")
    await session.delete(seat)
    await session.flush()


async def duo_setup(session: AsyncSession, mode: Mode, group_path: str | None, add_on: str) -> list[str]:
    """Set Duo up for a top-level group (SaaS, `group_path`) or the instance (self-managed, None):
    the group if missing, Duo on, the purchase with enough seats, a seat for every member. Idempotent;
    returns one line per thing done."""
    _check_add_on(add_on)
    if group_path is not None and mode != "saas":
        raise InvalidInput(None, "`duo setup GROUP` is for SaaS mode (SWITCHBOARD_MODE=saas); this instance is "
                           "self-managed: run `switchboard duo setup-instance`")
    if group_path is None and mode != "self_managed":
        raise InvalidInput(None, "`duo setup-instance` is for self-managed mode; in SaaS mode (SWITCHBOARD_MODE=saas) "
                           "add-ons are bought per top-level group: run `switchboard duo setup GROUP`")
    done: list[str] = []
    group = await _setup_group(session, group_path, done) if group_path is not None else None
    await _enable_duo(session, group, done)
    members = await tree_members(session, group) if group else list(await session.scalars(select(User).order_by(User.id)))
    bought = await find_purchase(session, add_on, group)
    if bought is None:
        bought = await purchase(session, add_on, group, max(len(members), 1))
        plural = "" if bought.quantity == 1 else "s"
        done.append(f"bought {add_on} for {_where(group)} with {bought.quantity} seat{plural}")
    holders = {user.id for user in await seat_holders(session, bought)}
    missing = [user for user in members if user.id not in holders]
    if len(holders) + len(missing) > bought.quantity:
        before, bought.quantity = bought.quantity, len(holders) + len(missing)
        await session.flush()
        done.append(f"raised {add_on} seats on {_where(group)} from {before} to {bought.quantity}")
    for user in missing:
        session.add(AddOnAssignment(purchase_id=bought.id, user_id=user.id))
    await session.flush()
    if missing:
        done.append(f"assigned {add_on} seats to {', '.join(user.username for user in missing)}")
    if not members:
        where = f" --group {group.full_path}" if group else ""
        done.append(f"no members to give seats to yet: add some (`switchboard members add USER{where} "
                    "--access-level developer`), then run this again")
    if not done:
        done.append(f"nothing to do: {add_on} is set up for {_where(group)} ({len(holders)} of {bought.quantity} seats assigned)")
    logger.info("duo setup for %s: %s", _where(group), "; ".join(done))
    return done


async def _setup_group(session: AsyncSession, group_path: str, done: list[str]) -> Group:
    path = group_path.strip("/")
    if "/" in path:
        raise InvalidInput("GROUP", f"{path!r} is a subgroup; add-ons are bought for top-level groups: "
                           f"run `switchboard duo setup {path.split('/')[0]}`")
    group = await session.scalar(select(Group).where(Group.full_path == path))
    if group is None:
        group = await create_group(session, path)
        done.append(f"created group {path}")
    return group


async def _enable_duo(session: AsyncSession, group: Group | None, done: list[str]) -> None:
    instance = await session.get(InstanceSettings, 1)
    if group is None:
        if instance is None or not instance.duo_features_enabled:
            if instance is None:
                instance = InstanceSettings(id=1)
                session.add(instance)
            instance.duo_features_enabled = True
            await session.flush()
            done.append("enabled Duo features on the instance")
        return
    above = await duo_cascade(session, group, above_only=True)
    if above.locked_by == "instance" and not above.enabled:
        raise InvalidInput(None, "Duo is turned off and locked for the whole instance; turn it on first: "
                           "`switchboard settings set duo_features_enabled true` and "
                           "`switchboard settings set lock_duo_features_enabled false`")
    if group.duo_features_enabled is not True:
        group.duo_features_enabled = True
        await session.flush()
        done.append(f"enabled Duo features on {group.full_path}")
