"""Open websockets stay authenticated (SPEC §5, issue 10 item 1), over a real web process: a socket whose
token is revoked or expires, or whose user stops being an administrator, is closed with 4403 within the
authentication cache time, on both protocols; an operation sent after the revocation gets nothing; the
sockets of other tokens stay open."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
import websockets
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from access.admin.accounts import create_token, create_user, revoke_tokens
from access.tokens import hash_token
from core.db import create_engine, session_factory
from core.tables import PersonalAccessToken, User, utcnow
from tests._client import SUBSCRIPTION
from tests._stack import Stack

pytestmark = pytest.mark.timeout(120)  # the first test also starts the shared stack

TRANSPORT, LEGACY = "graphql-transport-ws", "graphql-ws"
PROTOCOLS = [pytest.param(TRANSPORT, id="graphql-transport-ws"), pytest.param(LEGACY, id="graphql-ws")]
ME = "query { currentUser { username } }"


def _web(stack: Stack, cache_s: str) -> Iterator[str]:
    process, url = stack.start_web(f"web-auth-cache-{cache_s}", SWITCHBOARD_AUTH_CACHE_S=cache_s)
    try:
        yield url.replace("http://", "ws://") + "/api/graphql"
    finally:
        stack.stop(process)


@pytest.fixture(scope="module")
def web(stack: Stack) -> Iterator[str]:
    """A web process re-checking its sockets' tokens every 0.3 s."""
    yield from _web(stack, "0.3")


@pytest.fixture(scope="module")
def uncached_web(stack: Stack) -> Iterator[str]:
    """A web process with no authentication cache: every operation reads its token again."""
    yield from _web(stack, "0")


@asynccontextmanager
async def database(stack: Stack) -> AsyncIterator[AsyncSession]:
    engine = create_engine(stack.env["DATABASE_URL"], pooled=False)
    try:
        async with session_factory(engine)() as session, session.begin():
            yield session
    finally:
        await engine.dispose()


async def new_user(stack: Stack, *, admin: bool = False) -> tuple[str, int, str]:
    """A fresh user (the stack is shared) with an `api` token: name, id, token."""
    name = f"ws-{uuid.uuid4().hex[:10]}"
    async with database(stack) as session:
        user = await create_user(session, name, admin=admin)
        token = await create_token(session, name, scopes="api")
    return name, user.id, token


async def revoke(stack: Stack, name: str) -> None:
    """What `switchboard tokens revoke NAME --all` does (in this process: the CLI takes seconds to start)."""
    async with database(stack) as session:
        await revoke_tokens(session, name)


async def connect(url: str, token: str, protocol: str) -> websockets.ClientConnection:
    ws = await websockets.connect(url, subprotocols=[protocol], open_timeout=10)
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    return ws


async def start(ws: websockets.ClientConnection, op: str, query: str, variables: dict[str, Any] | None = None) -> None:
    kind = "subscribe" if ws.subprotocol == TRANSPORT else "start"
    await ws.send(json.dumps({"id": op, "type": kind, "payload": {"query": query, "variables": variables or {}}}))


async def until_closed(ws: websockets.ClientConnection) -> tuple[int | None, list[dict[str, Any]]]:
    """Everything the server sends until it closes the socket (keep-alives left out), and the close code."""
    frames = []
    try:
        async for raw in ws:
            frame = json.loads(raw)
            if frame.get("type") != "ka":
                frames.append(frame)
    except websockets.ConnectionClosed:
        pass
    return ws.close_code, frames


async def answer(ws: websockets.ClientConnection, op: str) -> dict[str, Any]:
    """The first result of operation `op`."""
    async for raw in ws:
        frame = json.loads(raw)
        if frame.get("id") == op and frame["type"] in ("next", "data"):
            return frame["payload"]
    raise AssertionError("closed before answering")


def data_frames(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f.get("type") in ("next", "data")]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_revoked_token_closes_its_open_socket_with_4403(stack: Stack, web: str, protocol: str) -> None:
    name, user_id, token = await new_user(stack)
    _, _, other_token = await new_user(stack)
    ws = await connect(web, token, protocol)
    other = await connect(web, other_token, TRANSPORT)
    await start(ws, "1", SUBSCRIPTION, {"userId": f"gid://gitlab/User/{user_id}", "aiAction": "CHAT"})
    await revoke(stack, name)
    code, frames = await until_closed(ws)
    assert code == 4403
    assert data_frames(frames) == []
    await start(other, "1", ME)  # another token's socket is still open and answers
    assert (await answer(other, "1"))["data"]["currentUser"]["username"]
    await other.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_expired_token_closes_its_open_socket_with_4403(stack: Stack, web: str, protocol: str) -> None:
    _, _, token = await new_user(stack)
    ws = await connect(web, token, protocol)
    async with database(stack) as session:
        await session.execute(update(PersonalAccessToken).where(PersonalAccessToken.token_digest == hash_token(token))
                              .values(expires_at=utcnow() - timedelta(days=1)))
    code, frames = await until_closed(ws)
    assert code == 4403 and data_frames(frames) == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_administrator_demoted_loses_the_open_socket(stack: Stack, web: str, protocol: str) -> None:
    _, user_id, token = await new_user(stack, admin=True)
    ws = await connect(web, token, protocol)
    await start(ws, "1", SUBSCRIPTION, {"userId": f"gid://gitlab/User/{user_id}", "aiAction": "CHAT"})
    async with database(stack) as session:
        await session.execute(update(User).where(User.id == user_id).values(admin=False))
    code, frames = await until_closed(ws)
    assert code == 4403 and data_frames(frames) == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_operation_after_the_revocation_gets_nothing(stack: Stack, uncached_web: str, protocol: str) -> None:
    name, user_id, token = await new_user(stack)
    ws = await connect(uncached_web, token, protocol)
    await revoke(stack, name)
    if protocol == TRANSPORT:
        await start(ws, "1", ME)
    else:  # the legacy protocol runs subscriptions only
        await start(ws, "1", SUBSCRIPTION, {"userId": f"gid://gitlab/User/{user_id}", "aiAction": "CHAT", "after": "0-0"})
    code, frames = await until_closed(ws)
    assert code == 4403 and data_frames(frames) == []
