"""Chat conversations through the real schema, real Redis, a real database and a real worker (SPEC §13.1):
threads of aiAction, aiMessages, aiConversationThreads, deleteConversationThread, duoUserFeedback."""

from __future__ import annotations

from typing import Any

from access.tokens import authenticate
from api.graphql.context import Context
from api.graphql.schema import build_schema
from api.services import Services
from chat import conversations
from core import keys
from core.errors import RESOURCE_NOT_AVAILABLE, THREAD_NOT_DELETABLE, THREAD_NOT_FOUND
from core.settings import Settings
from tests._services import run_worker

SCHEMA = build_schema()
ACTION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId threadId errors } }"
MESSAGES = """query($threadId: AiConversationThreadID, $requestIds: [String!], $first: Int, $after: String,
                    $conversationType: AiConversationsThreadsConversationType) {
  aiMessages(threadId: $threadId, requestIds: $requestIds, first: $first, after: $after, conversationType: $conversationType) {
    nodes { id requestId content contentHtml role errors timestamp threadId extras { hasFeedback sources toolCalls cancelled } }
    edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""
THREADS = """query($id: AiConversationThreadID, $first: Int, $after: String, $conversationType: AiConversationsThreadsConversationType) {
  aiConversationThreads(id: $id, first: $first, after: $after, conversationType: $conversationType) {
    nodes { id title conversationType createdAt lastUpdatedAt }
    pageInfo { hasNextPage endCursor }
  }
}"""
DELETE = "mutation($id: AiConversationThreadID!) { deleteConversationThread(input: {threadId: $id}) { success errors } }"
FEEDBACK = """mutation($id: String!, $extra: JSON) { duoUserFeedback(input: {aiMessageId: $id, trackingEvent:
  {category: "ask_gitlab_chat", action: "click_button", label: "response_feedback", property: "negative", extra: $extra}}) { errors } }"""


async def gql(services: Services, seeded: dict, user: str, query: str, **variables: Any) -> tuple[Any, list[str]]:
    async with services.sessions() as session:
        principal = await authenticate(session, seeded["users"][user]["token"])
    result = await SCHEMA.execute(query, variable_values=variables, context_value=Context(None, None, services, principal))  # type: ignore[arg-type]
    return result.data, [error.message for error in result.errors or []]


async def ask(services: Services, seeded: dict, user: str, content: str, **extra: Any) -> dict:
    data, errors = await gql(services, seeded, user, ACTION, input={"chat": {"content": content}, **extra})
    assert errors == []
    return data["aiAction"]


async def messages(services: Services, seeded: dict, user: str, **variables: Any) -> dict:
    data, errors = await gql(services, seeded, user, MESSAGES, **variables)
    assert errors == []
    return data["aiMessages"]


async def test_two_questions_in_one_thread_are_saved_with_their_answers(
    services: Services, settings: Settings, seeded: dict
) -> None:
    first = await ask(services, seeded, "alice", "what is *CI*?")
    thread = first["threadId"]
    assert thread.startswith("gid://gitlab/Ai::Conversation::Thread/") and first["errors"] == []
    await run_worker(settings)
    second = await ask(services, seeded, "alice", "and CD?", threadId=thread)
    await run_worker(settings)
    third = await ask(services, seeded, "alice", "without a thread id")  # the latest DUO_CHAT thread
    assert second["threadId"] == third["threadId"] == thread
    nodes = (await messages(services, seeded, "alice", threadId=thread))["nodes"]
    assert [(n["role"], n["content"], n["requestId"]) for n in nodes] == [
        ("USER", "what is *CI*?", first["requestId"]), ("ASSISTANT", "echo: what is *CI*?", first["requestId"]),
        ("USER", "and CD?", second["requestId"]), ("ASSISTANT", "echo: and CD?", second["requestId"]),
        ("USER", "without a thread id", third["requestId"]),
    ]
    assert {n["threadId"] for n in nodes} == {thread}
    assert nodes[1]["contentHtml"] == "<p>echo: what is <em>CI</em>?</p>\n" and nodes[0]["contentHtml"] is None
    assert nodes[1]["extras"] == {"hasFeedback": False, "sources": None, "toolCalls": None, "cancelled": None}
    assert (await messages(services, seeded, "alice"))["nodes"] == nodes  # no arguments: the latest DUO_CHAT thread
    data, _ = await gql(services, seeded, "alice", THREADS)
    assert [(t["id"], t["title"], t["conversationType"]) for t in data["aiConversationThreads"]["nodes"]] == [
        (thread, "what is *CI*?", "DUO_CHAT")]


async def test_the_echo_is_the_saved_question(services: Services, seeded: dict) -> None:
    from subscriptions.messages import route_id
    from subscriptions.streams import replay

    payload = await ask(services, seeded, "alice", "echo me")
    [echo] = await replay(services.redis, route_id(seeded["users"]["alice"]["gid"], ai_action="chat"), (0, 0))
    [saved] = (await messages(services, seeded, "alice", requestIds=[payload["requestId"]]))["nodes"]
    assert (echo.id, echo.thread_id) == (saved["id"], saved["threadId"]) == (saved["id"], payload["threadId"])


async def test_another_user_can_neither_read_write_delete_nor_give_feedback(
    services: Services, settings: Settings, seeded: dict
) -> None:
    asked = await ask(services, seeded, "alice", "private question")
    await run_worker(settings)
    thread = asked["threadId"]
    answer = (await messages(services, seeded, "alice", threadId=thread))["nodes"][1]
    _, errors = await gql(services, seeded, "bob", MESSAGES, threadId=thread)
    assert errors == [f"Thread {thread} is not found."]
    assert (await messages(services, seeded, "bob", requestIds=[asked["requestId"]]))["nodes"] == []
    data, _ = await gql(services, seeded, "bob", THREADS, id=thread)
    assert data["aiConversationThreads"]["nodes"] == []
    data, errors = await gql(services, seeded, "bob", ACTION, input={"chat": {"content": "let me in"}, "threadId": thread})
    assert data["aiAction"] == {"requestId": None, "threadId": None, "errors": [THREAD_NOT_FOUND]} and errors == []
    assert await services.redis.zcard(keys.QUEUE) == 0
    data, _ = await gql(services, seeded, "bob", DELETE, id=thread)
    assert data["deleteConversationThread"] == {"success": False, "errors": [THREAD_NOT_DELETABLE]}
    _, errors = await gql(services, seeded, "bob", FEEDBACK, id=answer["id"])
    assert errors == [RESOURCE_NOT_AVAILABLE]
    after = (await messages(services, seeded, "alice", threadId=thread))["nodes"]
    assert [n["content"] for n in after] == ["private question", "echo: private question"]
    assert after[1]["extras"]["hasFeedback"] is False


async def test_clear_and_new_start_a_new_thread_and_the_old_one_stays(services: Services, seeded: dict) -> None:
    quick = (await ask(services, seeded, "alice", "hello", conversationType="DUO_QUICK_CHAT"))["threadId"]
    cleared = (await ask(services, seeded, "alice", "/clear", threadId=quick))["threadId"]
    fresh = (await ask(services, seeded, "alice", "/new"))["threadId"]
    assert len({quick, cleared, fresh}) == 3
    data, _ = await gql(services, seeded, "alice", THREADS)
    assert [(t["id"], t["conversationType"], t["title"]) for t in data["aiConversationThreads"]["nodes"]] == [
        (fresh, "DUO_CHAT", None), (cleared, "DUO_QUICK_CHAT", None), (quick, "DUO_QUICK_CHAT", "hello")]
    assert (await messages(services, seeded, "alice", threadId=cleared))["nodes"] == []
    titled = await ask(services, seeded, "alice", "first real question", threadId=cleared)
    assert titled["threadId"] == cleared
    data, _ = await gql(services, seeded, "alice", THREADS, id=cleared)
    assert data["aiConversationThreads"]["nodes"][0]["title"] == "first real question"


async def test_an_unknown_or_malformed_thread_is_refused(services: Services, seeded: dict) -> None:
    unknown = "gid://gitlab/Ai::Conversation::Thread/999"
    data, errors = await gql(services, seeded, "alice", ACTION, input={"chat": {"content": "hi"}, "threadId": unknown})
    assert data["aiAction"]["errors"] == [THREAD_NOT_FOUND] and await services.redis.zcard(keys.QUEUE) == 0
    _, errors = await gql(services, seeded, "alice", MESSAGES, threadId=unknown)
    assert errors == [f"Thread {unknown} is not found."]
    _, errors = await gql(services, seeded, "alice", MESSAGES, threadId="gid://gitlab/Issue/1")
    assert errors == ["threadId: 'gid://gitlab/Issue/1' does not represent an instance of Ai::Conversation::Thread"]


async def test_messages_and_threads_page_with_first_and_after(services: Services, seeded: dict) -> None:
    thread = None
    for n in range(5):
        thread = (await ask(services, seeded, "alice", f"q{n}", **({"threadId": thread} if thread else {})))["threadId"]
    contents: list[str] = []
    after = None
    pages = 0
    while True:
        page = await messages(services, seeded, "alice", threadId=thread, first=2, after=after)
        contents += [n["content"] for n in page["nodes"]]
        assert [e["node"]["id"] for e in page["edges"]] == [n["id"] for n in page["nodes"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert contents == ["q0", "q1", "q2", "q3", "q4"] and pages == 3
    _, errors = await gql(services, seeded, "alice", MESSAGES, threadId=thread, after="bogus")
    assert errors == ["after: is not a valid cursor"]
    for kind in ("DUO_QUICK_CHAT", "DUO_CODE_REVIEW"):
        await ask(services, seeded, "alice", kind, conversationType=kind)
    seen: list[str] = []
    after = None
    while True:
        data, errors = await gql(services, seeded, "alice", THREADS, first=1, after=after)
        connection = data["aiConversationThreads"]
        seen += [t["title"] for t in connection["nodes"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert seen == ["DUO_CODE_REVIEW", "DUO_QUICK_CHAT", "q0"]
    data, _ = await gql(services, seeded, "alice", THREADS, conversationType="DUO_QUICK_CHAT")
    assert [t["title"] for t in data["aiConversationThreads"]["nodes"]] == ["DUO_QUICK_CHAT"]


async def test_feedback_marks_the_answer_and_is_stored_with_the_model(
    services: Services, settings: Settings, seeded: dict
) -> None:
    thread = (await ask(services, seeded, "alice", "rate me"))["threadId"]
    await run_worker(settings)
    question, answer = (await messages(services, seeded, "alice", threadId=thread))["nodes"]
    data, errors = await gql(services, seeded, "alice", FEEDBACK, id=answer["id"], extra={"improveWhat": "be brief"})
    assert errors == [] and data["duoUserFeedback"] == {"errors": []}
    _, errors = await gql(services, seeded, "alice", FEEDBACK, id=question["id"])
    assert errors == [RESOURCE_NOT_AVAILABLE]  # only an answer takes feedback
    assert (await messages(services, seeded, "alice", threadId=thread))["nodes"][1]["extras"]["hasFeedback"] is True
    async with services.sessions() as session:
        counts = await conversations.feedback_counts(session)
    assert counts == {"mock": conversations.FeedbackCount(negative=1)}


async def test_the_owner_deletes_a_thread(services: Services, seeded: dict) -> None:
    thread = (await ask(services, seeded, "alice", "forget me"))["threadId"]
    data, _ = await gql(services, seeded, "alice", DELETE, id=thread)
    assert data["deleteConversationThread"] == {"success": True, "errors": []}
    _, errors = await gql(services, seeded, "alice", MESSAGES, threadId=thread)
    assert errors == [f"Thread {thread} is not found."]
