from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from access.admin.accounts import create_token, create_user
from access.tokens import authenticate, hash_token
from core.errors import InvalidInput
from core.tables import PersonalAccessToken, utcnow


async def test_create_user(session: AsyncSession) -> None:
    user = await create_user(session, "dora.the-explorer_1")
    admin = await create_user(session, "boss", admin=True, name="The Boss")
    assert (user.id, user.username, user.name, user.admin) == (1, "dora.the-explorer_1", "dora.the-explorer_1", False)
    assert (admin.id, admin.name, admin.admin) == (2, "The Boss", True)
    assert user.created_at.tzinfo is not None


@pytest.mark.parametrize("username", ["", ".dot", "-dash", "has space", "ünïcode", "a" * 256, "slash/y"])
async def test_create_user_rejects_bad_names(session: AsyncSession, username: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await create_user(session, username)
    assert caught.value.argument == "username"


async def test_create_user_rejects_a_taken_name_in_any_case(session: AsyncSession) -> None:
    await create_user(session, "alice")
    for name in ("alice", "Alice"):
        with pytest.raises(InvalidInput, match="already been taken") as caught:
            await create_user(session, name)
        assert caught.value.argument == "username"


async def test_create_token_stores_only_the_digest(session: AsyncSession) -> None:
    user = await create_user(session, "alice")
    token = await create_token(session, "alice")
    await session.commit()
    stored = (await session.scalars(select(PersonalAccessToken))).one()
    assert token.startswith("glpat-") and token not in (stored.token_digest, stored.scopes, stored.name)
    assert stored.token_digest == hash_token(token)
    assert (stored.user_id, stored.scopes, stored.name) == (user.id, "api,ai_features", "switchboard")
    assert not stored.revoked
    assert stored.expires_at is None and stored.last_used_at is None
    principal = await authenticate(session, token)
    assert principal is not None and principal.username == "alice"


@pytest.mark.parametrize(
    ("scopes", "stored"),
    [("read_api", "read_api"), ("ai_features, api", "api,ai_features"), (["api", "api"], "api")],
)
async def test_create_token_with_scopes(session: AsyncSession, scopes: str | list[str], stored: str) -> None:
    await create_user(session, "bob")
    token = await create_token(session, "bob", scopes=scopes, name="cli")
    row = await session.scalar(select(PersonalAccessToken).where(PersonalAccessToken.token_digest == hash_token(token)))
    assert row is not None and (row.scopes, row.name) == (stored, "cli")


async def test_create_token_with_an_expiry(session: AsyncSession) -> None:
    await create_user(session, "bob")
    token = await create_token(session, "bob", expires_in_days=7)
    expires_at = await session.scalar(select(PersonalAccessToken.expires_at))
    assert expires_at is not None
    assert abs(expires_at - (utcnow() + timedelta(days=7))) < timedelta(minutes=1)
    assert await authenticate(session, token) is not None


@pytest.mark.parametrize(
    ("username", "options", "argument"),
    [
        ("nobody", {}, "username"),
        ("bob", {"scopes": ["api", "sudo"]}, "scopes"),
        ("bob", {"scopes": ""}, "scopes"),
        ("bob", {"scopes": []}, "scopes"),
        ("bob", {"expires_in_days": 0}, "expires_in_days"),
    ],
)
async def test_create_token_rejects_bad_input(
    session: AsyncSession, username: str, options: dict[str, object], argument: str
) -> None:
    await create_user(session, "bob")
    with pytest.raises(InvalidInput) as caught:
        await create_token(session, username, **options)  # type: ignore[arg-type]
    assert caught.value.argument == argument
    assert (await session.scalars(select(PersonalAccessToken))).all() == []
