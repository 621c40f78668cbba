"""The authorization chain of SPEC §5.1 and §6 through the real `aiAction`: users × resources × features,
on SQLite and PostgreSQL, in both modes; then what changes it (Duo off above, seats, maturity, flags, the
rate limit, tokens). Every refusal enqueues nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from access import flags
from access.admin import add_ons, namespaces
from access.admin.accounts import create_token, revoke_tokens
from catalogue import FEATURES, external_features
from tests.api._world import World

READABLE = {
    "root": {"issue", "confidential_issue", "merge_request", "epic", "vulnerability", "project", "group", "subgroup", "child_project"},
    "alice": {"issue", "confidential_issue", "merge_request", "epic", "vulnerability", "project", "group", "subgroup", "child_project"},
    "bob": {"issue", "confidential_issue", "merge_request", "epic", "vulnerability", "project", "group", "subgroup", "child_project"},
    "carol": {"issue", "confidential_issue", "merge_request", "epic", "vulnerability", "project", "group", "subgroup", "child_project"},
    # a developer of the subgroup only: its project, and the parent group (and its epic) as a member inside it
    "dave": {"epic", "group", "subgroup", "child_project"},
    "mallory": set(),
}
ENTITLED = {  # the features a user's seat bundles
    "root": set(),
    "alice": {"chat", "explain_code", "summarize_comments"},
    "bob": {"chat", "explain_code"},
    "carol": set(),
    "dave": {"chat", "explain_code", "summarize_comments"},
    "mallory": set(),
}
RESOURCES = {
    "chat": [None, "issue", "confidential_issue", "merge_request", "epic", "vulnerability", "project", "group", "child_project"],
    "explain_code": ["issue", "confidential_issue", "merge_request", "project", "child_project"],
    "summarize_comments": ["issue", "confidential_issue", "merge_request", "epic"],
}


def expected(user: str, feature: str, resource: str | None) -> str:
    if resource is not None and resource not in READABLE[user]:
        return "no-access"
    return "ok" if feature in ENTITLED[user] else "denied"


async def test_the_permission_matrix(world: World) -> None:
    mismatches, accepted = {}, 0
    for user in READABLE:
        for feature, resources in RESOURCES.items():
            for resource in resources:
                outcome = await world.ask(user, feature, resource)
                accepted += outcome == "ok"
                if outcome != expected(user, feature, resource):
                    mismatches[(user, feature, resource)] = outcome
    assert mismatches == {}
    assert await world.queued() == accepted  # one job per accepted request, none for a refusal


async def test_duo_switched_off_by_a_parent_and_locked(world: World) -> None:
    async def setting(target: str | None, name: str, value: str) -> None:
        async def work(session):  # noqa: ANN001, ANN202
            group = await namespaces.get_group(session, target) if target else None
            await namespaces.set_setting(session, group, name, value)

        await world.admin(work)

    await setting("gitlab-duo", "duo_features_enabled", "false")
    assert await world.ask("alice", "summarize_comments", "issue") == "denied"
    assert await world.ask("alice", "chat", "child_project") == "denied"  # inherited by the subgroup
    assert await world.ask("alice", "chat") == "ok"  # no resource: the instance setting
    await setting("gitlab-duo/child", "duo_features_enabled", "true")
    assert await world.ask("alice", "chat", "child_project") == "ok"
    assert await world.ask("alice", "chat", "project") == "denied"
    await setting("gitlab-duo", "lock_duo_features_enabled", "true")
    assert await world.ask("alice", "chat", "child_project") == "denied"  # the parent's lock wins
    with pytest.raises(namespaces.InvalidInput, match="locked by gitlab-duo"):
        await setting("gitlab-duo/child", "duo_features_enabled", "true")
    await setting(None, "duo_features_enabled", "false")
    assert await world.ask("alice", "chat") == "denied"
    assert await world.queued() == 2


async def test_seats_given_taken_and_expired(world: World) -> None:
    top = "gitlab-duo" if world.mode == "saas" else None

    async def seat(user: str, add_on: str, assign: bool = True) -> None:
        async def work(session):  # noqa: ANN001, ANN202
            group = await namespaces.get_group(session, top) if top else None
            found = await namespaces.get_user(session, user)
            if assign:
                await add_ons.assign_seat(session, found, add_on, group)
            else:
                await add_ons.unassign_seat(session, found, add_on, group)

        await world.admin(work)

    assert await world.ask("carol", "chat") == "denied"
    await seat("carol", "duo_pro")
    assert await world.ask("carol", "chat", "issue") == "ok"
    assert await world.ask("carol", "summarize_comments", "issue") == "denied"
    await seat("alice", "duo_enterprise", assign=False)
    assert await world.ask("alice", "chat") == "denied"
    await seat("alice", "duo_enterprise")

    async def expire(session):  # noqa: ANN001, ANN202
        group = await namespaces.get_group(session, top) if top else None
        purchase = await add_ons.find_purchase(session, "duo_enterprise", group)
        purchase.expires_at = purchase.started_at  # type: ignore[union-attr]

    await world.admin(expire)
    assert await world.ask("alice", "summarize_comments", "issue") == "denied"
    assert await world.queued() == 1


async def test_an_experimental_feature_needs_experiments_on(world: World) -> None:
    feature = next((f for f in external_features() if f.maturity != "ga" and "Issue" in f.resource_types), None)
    if feature is None:
        pytest.skip("the catalogue has no experimental feature about issues")
    assert await world.ask("alice", feature.key, "issue") == "ok"

    async def experiments_off(session):  # noqa: ANN001, ANN202
        if world.mode == "saas":
            await namespaces.set_setting(session, await namespaces.get_group(session, "gitlab-duo"), "experiment_features_enabled", "false")
        else:
            await namespaces.set_setting(session, None, "instance_level_ai_beta_features_enabled", "false")

    await world.admin(experiments_off)
    assert await world.ask("alice", feature.key, "issue") == "denied"
    assert await world.ask("alice", "summarize_comments", "issue") == "ok"  # GA is not affected


async def test_the_global_switch_stops_everything_but_chat_and_chat_has_its_own(world: World) -> None:
    await world.admin(lambda session: flags.disable(session, "ai_global_switch"))
    assert await world.ask("alice", "explain_code", "project") == "flag"
    assert await world.ask("alice", "summarize_comments", "issue") == "flag"
    assert await world.ask("alice", "chat") == "ok"
    assert await world.ask("mallory", "summarize_comments", "confidential_issue") == "flag"  # check 4 before 5
    await world.admin(lambda session: flags.add_actors(session, "ai_global_switch", ["User:2"]))
    assert await world.ask("alice", "explain_code", "project") == "ok"
    assert await world.ask("bob", "explain_code", "project") == "flag"
    await world.admin(lambda session: flags.disable(session, "ai_duo_chat_switch"))
    assert await world.ask("alice", "chat") == "flag"
    await world.admin(lambda session: flags.delete_flag(session, "ai_duo_chat_switch"))
    assert await world.ask("alice", "chat") == "ok"
    assert await world.queued() == 3


async def test_the_rate_limit_answers_with_gitlabs_text_before_any_other_check(world: World) -> None:
    world.services.settings = world.services.settings.model_copy(update={"ai_action_rate_limit": 2})
    assert [await world.ask("bob", "chat") for _ in range(2)] == ["ok", "ok"]
    assert await world.ask("bob", "chat") == "rate"
    assert await world.ask("bob", "summarize_comments", "gid://gitlab/Issue/999") == "rate"
    assert await world.ask("alice", "chat") == "ok"  # per user
    assert await world.queued() == 3
    assert 0 < await world.services.redis.ttl("switchboard:rate:ai_action:3") <= 8 * 3600


async def test_tokens_without_the_scope_revoked_or_expired_are_refused(world: World) -> None:
    async def tokens(session):  # noqa: ANN001, ANN202
        world.tokens["alice-read"] = await create_token(session, "alice", scopes="read_api", name="read")
        world.tokens["alice-ai"] = await create_token(session, "alice", scopes="ai_features", name="ai")
        await revoke_tokens(session, "alice", name="seed")

    await world.admin(tokens)
    assert await world.ask("alice-read", "chat") == "no-access"
    assert await world.ask("alice", "chat") == "no-access"  # revoked
    assert await world.ask("alice-ai", "chat") == "ok"
    assert await world.queued() == 1


async def test_pushed_flags_travel_in_the_job(world: World) -> None:
    await world.admin(lambda session: flags.add_actors(session, "expanded_ai_logging", ["User:2"]))
    assert await world.ask("alice", "chat") == "ok"
    assert (await world.last_record()).flags["expanded_ai_logging"] is True
    assert await world.ask("bob", "explain_code", "project") == "ok"
    assert (await world.last_record()).flags["expanded_ai_logging"] is False


@pytest.mark.parametrize("feature", ["summarize_comments", "explain_code"])
async def test_bad_ids_and_oversized_inputs_enqueue_nothing(world: World, feature: str) -> None:
    bad = ["gid://gitlab/Issue/0", "gid://gitlab/Issue/99999999999999999999", "gid://gitlab/Issue/x", "", "Issue/1",
           "gid://gitlab/Vulnerability/1", "gid://gitlab/Issue/1\n", "x" * 100_000]
    for value in bad:
        outcome = await world.ask("alice", feature, value)
        assert outcome != "ok" and "Traceback" not in outcome, (value[:40], outcome)
    if feature == "explain_code":
        huge = {"explainCode": {"resourceId": world.gids["project"], "code": "x" * 400_001}}
        assert await world.ask("alice", feature, "project", **huge) == "explainCode.code: is too long (maximum is 400000 characters)"
    assert await world.queued() == 0


def test_every_matrix_feature_is_in_the_catalogue() -> None:
    assert set(RESOURCES) <= set(FEATURES)


async def test_with_warm_caches_checks_3_to_6_add_no_query_to_reading_the_resource(world: World) -> None:
    assert await world.ask("alice", "summarize_comments", "issue") == "ok"  # warms the flag and entitlement caches
    assert await world.ask("alice", "chat") == "ok"  # starts alice's chat thread
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(world.services.engine.sync_engine, "before_cursor_execute", listener)
    try:
        assert await world.ask("alice", "summarize_comments", "issue") == "ok"
        asked = len(statements)
        statements.clear()
        assert await world.ask("alice", "chat") == "ok"
    finally:
        event.remove(world.services.engine.sync_engine, "before_cursor_execute", listener)
    assert asked <= 3  # the token, the issue with its project and group, the user's access level
    # the token, then the question saved (SPEC §13.1): its thread bumped, the message inserted
    assert len(statements) <= 3, statements
