"""Users and personal access tokens, as the CLI and the seed create them.

These functions flush but never commit: the caller owns the transaction (`async with session.begin():`,
or `await session.commit()` afterwards).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from access.tokens import SCOPES, hash_token, new_token
from core.errors import InvalidInput
from core.tables import PersonalAccessToken, User, utcnow

__all__ = ["DEFAULT_SCOPES", "create_token", "create_user", "list_tokens", "revoke_tokens"]

logger = logging.getLogger(__name__)

DEFAULT_SCOPES = ("api", "ai_features")
_USERNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$")


async def create_user(session: AsyncSession, username: str, *, admin: bool = False, name: str | None = None) -> User:
    """A new user; InvalidInput("username") when the name is malformed or taken (case-insensitively)."""
    if not isinstance(username, str) or not _USERNAME.match(username):
        raise InvalidInput(
            "username", f"{username!r} must be 1-255 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
        )
    taken = await session.scalar(select(User.id).where(func.lower(User.username) == username.lower()))
    if taken is not None:
        raise InvalidInput("username", f"{username!r} has already been taken")
    user = User(username=username, name=name or username, admin=admin)
    session.add(user)
    await session.flush()
    logger.info("created user %s (id %s, admin=%s)", username, user.id, admin)
    return user


async def create_token(
    session: AsyncSession,
    username: str,
    *,
    scopes: Iterable[str] | str = DEFAULT_SCOPES,
    expires_in_days: int | None = None,
    name: str = "switchboard",
) -> str:
    """A new personal access token for `username`; returns the plaintext, stores only its digest.

    `scopes` may be a comma-separated string ("api,ai_features"). Unknown user, unknown or no scopes, or a
    non-positive `expires_in_days` raise InvalidInput naming the argument.
    """
    chosen = _scopes(scopes)
    if expires_in_days is not None and expires_in_days < 1:
        raise InvalidInput("expires_in_days", f"must be at least 1, got {expires_in_days}")
    user_id = await session.scalar(select(User.id).where(func.lower(User.username) == str(username).lower()))
    if user_id is None:
        raise InvalidInput("username", f"no user named {username!r}")
    token = new_token()
    expires_at = None if expires_in_days is None else utcnow() + timedelta(days=expires_in_days)
    session.add(
        PersonalAccessToken(
            user_id=user_id,
            name=name,
            token_digest=hash_token(token),
            scopes=",".join(chosen),
            expires_at=expires_at,
        )
    )
    await session.flush()
    logger.info("created token %r for %s with scopes %s", name, username, ",".join(chosen))
    return token


def _scopes(scopes: Iterable[str] | str) -> list[str]:
    """The requested scopes, validated, deduplicated and in `SCOPES` order."""
    requested = [s.strip() for s in scopes.split(",")] if isinstance(scopes, str) else [s.strip() for s in scopes]
    requested = [s for s in requested if s]
    unknown = sorted(set(requested) - set(SCOPES))
    if unknown:
        raise InvalidInput("scopes", f"unknown scope(s) {', '.join(unknown)}; valid: {', '.join(SCOPES)}")
    if not requested:
        raise InvalidInput("scopes", f"give at least one of {', '.join(SCOPES)}")
    return [scope for scope in SCOPES if scope in requested]


async def list_tokens(session: AsyncSession, username: str) -> list[PersonalAccessToken]:
    """The user's tokens (digests only), oldest first."""
    user_id = await _user_id(session, username)
    query = select(PersonalAccessToken).where(PersonalAccessToken.user_id == user_id).order_by(PersonalAccessToken.id)
    return list(await session.scalars(query))


async def revoke_tokens(
    session: AsyncSession, username: str, *, token_id: int | None = None, name: str | None = None
) -> int:
    """Revoke one token by id, the tokens with a name, or (neither given) all of the user's tokens;
    returns how many were revoked now."""
    user_id = await _user_id(session, username)
    where = [PersonalAccessToken.user_id == user_id, PersonalAccessToken.revoked.is_(False)]
    if token_id is not None:
        where.append(PersonalAccessToken.id == token_id)
    if name is not None:
        where.append(PersonalAccessToken.name == name)
    result = await session.execute(update(PersonalAccessToken).where(*where).values(revoked=True))
    logger.info("revoked %s token(s) of %s", result.rowcount, username)  # type: ignore[attr-defined]
    return int(result.rowcount)  # type: ignore[attr-defined]


async def _user_id(session: AsyncSession, username: str) -> int:
    user_id = await session.scalar(select(User.id).where(func.lower(User.username) == str(username).lower()))
    if user_id is None:
        raise InvalidInput("username", f"no user named {username!r}")
    return user_id
