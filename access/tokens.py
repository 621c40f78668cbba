"""Who is asking: personal access tokens (stored as SHA-256 digests, with scopes, expiry and revocation),
the principal a token stands for, and GitLab's scope rules (SPEC §5): `aiAction` needs `api` or
`ai_features`, every other mutation `api`, reading any scope. A refusal is logged as `auth_failed` with its
reason (`missing_token`, `invalid_token`, `insufficient_scope`, `right_lost`), never with the token."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import RESOURCE_NOT_AVAILABLE, AccessDenied
from core.ids import GlobalID
from core.tables import PersonalAccessToken, User, utcnow

__all__ = [
    "SCOPES",
    "READ_SCOPES",
    "WRITE_SCOPES",
    "AI_ACTION_SCOPES",
    "TOKEN_PREFIX",
    "Principal",
    "authenticate",
    "auth_failed",
    "get_principal",
    "hash_token",
    "new_token",
    "principals_by_digest",
    "require_scopes",
]

log = logging.getLogger(__name__)

TOKEN_PREFIX = "glpat-"
SCOPES = ("api", "read_api", "ai_features")
READ_SCOPES = frozenset(SCOPES)  # queries and subscriptions: any scope
WRITE_SCOPES = frozenset({"api"})  # every mutation but aiAction, as GitLab
AI_ACTION_SCOPES = frozenset({"api", "ai_features"})


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
    digest = hash_token(token)
    return (await principals_by_digest(session, [digest])).get(digest)


async def principals_by_digest(session: AsyncSession, digests: Iterable[str]) -> dict[str, Principal]:
    """The principals of the valid tokens among `digests` (SHA-256 hex), in one query; a digest that is
    unknown, revoked or expired is absent from the answer. Writes nothing."""
    wanted = list(dict.fromkeys(digests))
    if not wanted:
        return {}
    query = (
        select(PersonalAccessToken.token_digest, User.id, User.username, User.admin, PersonalAccessToken.scopes)
        .join(User, User.id == PersonalAccessToken.user_id)
        .where(
            PersonalAccessToken.token_digest.in_(wanted),
            PersonalAccessToken.revoked.is_(False),
            or_(PersonalAccessToken.expires_at.is_(None), PersonalAccessToken.expires_at > utcnow()),
        )
    )
    return {
        row.token_digest: Principal(row.id, row.username, row.admin, frozenset(s for s in row.scopes.split(",") if s))
        for row in await session.execute(query)
    }


def auth_failed(reason: str, **fields: object) -> None:
    """Log an authentication or authorization refusal: the reason and who, never the token."""
    log.info("auth_failed", extra={"reason": reason, **fields})


def require_scopes(principal: Principal | None, scopes: frozenset[str], message: str = RESOURCE_NOT_AVAILABLE) -> Principal:
    """`principal` when its token carries one of `scopes`; AccessDenied with GitLab's `message` otherwise,
    saying why in the error's `extensions.reason`."""
    if principal is None:
        auth_failed("missing_token")
        raise AccessDenied(message, reason="missing_token")
    if not principal.has_scope(*scopes):
        auth_failed("insufficient_scope", user_id=principal.user_id, needed=sorted(scopes))
        raise AccessDenied(message, reason="insufficient_scope")
    return principal


async def get_principal(session: AsyncSession, user_id: int) -> Principal | None:
    """The principal for a user ID (the worker re-checking access); no scopes."""
    row = (await session.execute(select(User.username, User.admin).where(User.id == user_id))).one_or_none()
    return None if row is None else Principal(user_id, row.username, row.admin, frozenset())
