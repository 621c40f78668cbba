"""The README's tour with an off-the-shelf GraphQL client (`gql`), as a frontend developer would run it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

from tests._client import post
from tests._stack import Stack

pytestmark = pytest.mark.timeout(60)

SUBSCRIBE = """
subscription($userId: UserID!, $clientSubscriptionId: String) {
  aiCompletionResponse(userId: $userId, aiAction: CHAT, clientSubscriptionId: $clientSubscriptionId) {
    requestId content chunkId role errors
  }
}"""
ASK = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors } }"


async def collect(stack: Stack, user: str, sub: str, into: list[dict], done: asyncio.Event | None) -> None:
    transport = WebsocketsTransport(
        url=stack.ws_url,
        init_payload={"Authorization": f"Bearer {stack.token(user)}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    async with Client(transport=transport) as session:
        async for result in session.subscribe(
            GraphQLRequest(SUBSCRIBE, variable_values={"userId": stack.gid(user), "clientSubscriptionId": sub})
        ):
            message = result["aiCompletionResponse"]
            into.append(message)
            if done is not None and message["chunkId"] is None:
                done.set()
                return


async def test_a_gql_subscriber_gets_chunks_then_their_concatenation_and_nobody_else_does(stack: Stack) -> None:
    sub = f"tour-{uuid.uuid4()}"
    alice: list[dict] = []
    mallory: list[dict] = []
    finished = asyncio.Event()
    tasks = [
        asyncio.create_task(collect(stack, "alice", sub, alice, finished)),
        asyncio.create_task(collect(stack, "mallory", sub, mallory, None)),
    ]
    await asyncio.sleep(0.8)
    answer = await post(stack.url, stack.token("alice"), ASK, {"input": {"chat": {"content": "tell me a story"}, "clientSubscriptionId": sub}})
    assert answer["data"]["aiAction"]["errors"] == []
    await asyncio.wait_for(finished.wait(), 10)
    await asyncio.sleep(0.3)
    tasks[1].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    chunks, final = alice[:-1], alice[-1]
    assert [m["chunkId"] for m in chunks] == [1, 2, 3, 4, 5]
    assert final["content"] == "".join(m["content"] for m in chunks) == "echo: tell me a story"
    assert mallory == []
