"""Who is asking: personal access tokens (stored as SHA-256 digests, with scopes, expiry and revocation)
and the principal a token stands for."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.ids import GlobalID
from core.tables import PersonalAccessToken, User, utcnow

__all__ = ["SCOPES", "TOKEN_PREFIX", "Principal", "authenticate", "get_principal", "hash_token", "new_token"]

TOKEN_PREFIX = "glpat-"
SCOPES = ("api", "read_api", "ai_features")


def hash_token(token: str) -> str:
    """The SHA-256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(20)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user, with the scopes of the token used (empty when not from a token)."""

    user_id: int
    username: str
    admin: bool
    scopes: frozenset[str]

    @property
    def gid(self) -> str:
        return str(GlobalID("User", self.user_id))

    def has_scope(self, *scopes: str) -> bool:
        """True when the token carries any of `scopes`."""
        return not self.scopes.isdisjoint(scopes)


async def authenticate(session: AsyncSession, token: str) -> Principal | None:
    """The principal a token stands for; None when it is unknown, revoked or expired. Writes nothing."""
    if not token:
        return None
    query = (
        select(User.id, User.username, User.admin, PersonalAccessToken.scopes)
        .join(User, User.id == PersonalAccessToken.user_id)
        .where(
            PersonalAccessToken.token_digest == hash_token(token),
            PersonalAccessToken.revoked.is_(False),
            or_(PersonalAccessToken.expires_at.is_(None), PersonalAccessToken.expires_at > utcnow()),
        )
    )
    row = (await session.execute(query)).one_or_none()
    if row is None:
        return None
    scopes = frozenset(scope for scope in row.scopes.split(",") if scope)
    return Principal(row.id, row.username, row.admin, scopes)


async def get_principal(session: AsyncSession, user_id: int) -> Principal | None:
    """The principal for a user ID (the worker re-checking access); no scopes."""
    row = (await session.execute(select(User.username, User.admin).where(User.id == user_id))).one_or_none()
    return None if row is None else Principal(user_id, row.username, row.admin, frozenset())
