"""A property-based fuzz of the GraphQL API (hypothesis-graphql): any generated query or mutation, valid or
with one schema violation, is answered with data or errors, never an internal error or a traceback; and
nothing is enqueued except for an accepted `aiAction`."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes

from access.tokens import authenticate
from api.graphql.context import Context
from api.graphql.schema import UNEXPECTED
from tests.api._world import SCHEMA, World

SDL = str(SCHEMA)
_IDS = st.one_of(
    st.sampled_from([
        "gid://gitlab/Issue/1", "gid://gitlab/Issue/2", "gid://gitlab/MergeRequest/1", "gid://gitlab/Epic/1",
        "gid://gitlab/Vulnerability/1", "gid://gitlab/Project/1", "gid://gitlab/Group/2", "gid://gitlab/User/2",
        "gid://gitlab/Note/1", "gid://gitlab/Issue/0", "gid://gitlab/Issue/99999999999999999999",
        "gid://gitlab/Ai::Conversation::Thread/1", "gid://gitlab/Issue/1\n", "",
    ]),
    st.text(max_size=300),
).map(nodes.String)
SCALARS = {name: _IDS for name in ("AiModelID", "UserID", "ProjectID", "AiConversationThreadID", "NamespaceID", "GroupID", "AiSelfHostedModelID")}
SCALARS |= {"JSON": st.just(nodes.String("{}")), "Time": st.just(nodes.String("2025-01-01T00:00:00Z"))}
_USED = {name: strategy for name, strategy in SCALARS.items() if f"scalar {name}" in SDL}
OPERATIONS = st.one_of(
    from_schema(SDL, custom_scalars=_USED, mode=Mode.POSITIVE),
    from_schema(SDL, custom_scalars=_USED, mode=Mode.NEGATIVE),
)
# More examples on demand: SWITCHBOARD_FUZZ_EXAMPLES=2000 make test PYTEST_ARGS=tests/api/test_fuzz.py
FUZZ = settings(max_examples=int(os.environ.get("SWITCHBOARD_FUZZ_EXAMPLES", "60")), deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(document=OPERATIONS, user=st.sampled_from(["alice", "bob", "mallory", None]))
# Found by this test: a failing duoUserFeedback beside an aiAction nulled the whole response (its payload was
# non-null), so the client never saw the requestId of the action it had enqueued.
@example(document='mutation { aiAction(input: { chat: { content: "0" } }) { threadId } '
                  'duoUserFeedback(input: { aiMessageId: "", agentVersionId: "" }) { clientMutationId } }', user="alice")
async def test_no_generated_operation_gets_an_internal_error(world: World, document: str, user: str | None) -> None:
    principal = None
    if user is not None:
        async with world.services.sessions() as session:
            principal = await authenticate(session, world.tokens[user])
    before = await world.queued()
    result = await SCHEMA.execute(document, context_value=Context(None, None, world.services, principal))  # type: ignore[arg-type]
    messages = [error.message for error in result.errors or []]
    assert UNEXPECTED not in messages and not any("Traceback" in m for m in messages), (document, messages)
    enqueued = await world.queued() - before
    assert enqueued in (0, 1), (document, result)
    payload = (result.data or {}).get("aiAction")
    accepted: bool | None = False  # None: the selection does not say (neither requestId nor errors asked for)
    action_errors = [e for e in result.errors or [] if not e.path or e.path[0] == "aiAction"]  # not other mutations'
    if not action_errors and isinstance(payload, dict):
        if "requestId" in payload:
            accepted = payload["requestId"] is not None
        elif "errors" in payload:
            accepted = payload["errors"] == []
        else:
            accepted = None
    assert accepted is None or enqueued == int(accepted), (document, result)
