"""Finding the caller: `Authorization: Bearer`, `PRIVATE-TOKEN`, or a websocket's `connection_init` payload,
resolved to a principal through the process's authentication cache (`SWITCHBOARD_AUTH_CACHE_S`)."""

from __future__ import annotations

from collections.abc import Mapping

from access.tokens import (
    AI_ACTION_SCOPES,
    READ_SCOPES,
    WRITE_SCOPES,
    Principal,
    hash_token,
    require_scopes,
)
from api.services import Services

__all__ = [
    "token_from_headers",
    "token_from_params",
    "principal_for",
    "principal_for_digest",
    "require_scopes",
    "AI_ACTION_SCOPES",
    "WRITE_SCOPES",
    "READ_SCOPES",
]


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def token_from_headers(headers: Mapping[str, str]) -> str | None:
    return _bearer(headers.get("authorization")) or (headers.get("private-token") or "").strip() or None


def token_from_params(params: object) -> str | None:
    """The token of a `connection_init` payload (`{"Authorization": "Bearer ..."}`, key case-insensitive)."""
    if not isinstance(params, dict):
        return None
    lowered = {str(k).lower(): v for k, v in params.items()}
    auth = lowered.get("authorization")
    private = lowered.get("private-token")
    return _bearer(auth if isinstance(auth, str) else None) or (private.strip() if isinstance(private, str) else None)


async def principal_for(services: Services, token: str | None) -> Principal | None:
    if token is None:
        return None
    return await principal_for_digest(services, hash_token(token))


async def principal_for_digest(services: Services, digest: str) -> Principal | None:
    """The principal of the token with this SHA-256 digest: cached, else one query per token at a time
    however many requests bring it."""
    return await services.principals.principal(services.sessions, digest)
