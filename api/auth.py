"""Finding the caller: `Authorization: Bearer`, `PRIVATE-TOKEN`, or a websocket's `connection_init` payload."""

from __future__ import annotations

from collections.abc import Mapping

from access.tokens import Principal
from api.services import Services

__all__ = [
    "token_from_headers",
    "token_from_params",
    "principal_for",
    "WRITE_SCOPES",
    "READ_SCOPES",
]

WRITE_SCOPES = frozenset({"api", "ai_features"})
READ_SCOPES = frozenset({"api", "read_api", "ai_features"})


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
    return await services.principals.principal(services.sessions, token)  # cached, one query per token at a time
