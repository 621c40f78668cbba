"""The seeded demo world with a few additions, behind the real GraphQL schema, for authorization tests.

Additions to the seed: a private project `gitlab-duo/child/web` in the subgroup, and `dave`, a developer of
`gitlab-duo/child` only, with a Duo Enterprise seat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from arq.jobs import Job

from access.admin import add_ons, namespaces
from access.admin.accounts import create_token, create_user
from access.admin.seed import seed
from access.tokens import authenticate
from api.graphql.context import Context
from api.graphql.schema import build_schema
from api.services import Services, open_services
from catalogue import FEATURES, Feature
from core import keys
from core.actions import ActionRecord
from core.db import create_engine, session_factory
from core.errors import AI_NOT_PERMITTED, RESOURCE_NOT_AVAILABLE
from core.settings import Settings

__all__ = ["World", "world", "action_input"]

SCHEMA = build_schema()
ACTION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors } }"
OUTCOMES = {
    RESOURCE_NOT_AVAILABLE: "no-access",
    "required feature flag is disabled.": "flag",
    "This endpoint has been requested too many times. Try again later.": "rate",
}


def action_input(feature: Feature, resource: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceId": resource} if resource else {}
    for field in feature.fields:
        if field.required and field.kind == "string":
            head, *rest = field.name.split("_")
            body[head + "".join(part.title() for part in rest)] = "x = 1"
    return {feature.graphql_name: body}


@dataclass
class World:
    services: Services
    seeded: dict[str, Any]
    mode: str
    tokens: dict[str, str]
    gids: dict[str, str]

    async def ask(self, user: str, feature: str, resource: str | None = None, **extra: Any) -> str:
        """The outcome of one aiAction: ok, no-access, flag, rate, denied, or the error text."""
        principal = None
        async with self.services.sessions() as session:
            principal = await authenticate(session, self.tokens[user])
        gid = self.gids.get(resource, resource) if resource else None
        variables = {"input": {**action_input(FEATURES[feature], gid), **extra}}
        context = Context(None, None, self.services, principal)  # type: ignore[arg-type]
        result = await SCHEMA.execute(ACTION, variable_values=variables, context_value=context)
        if result.errors:
            message = result.errors[0].message
            return OUTCOMES.get(message, message)
        payload = result.data["aiAction"]  # type: ignore[index]
        if payload["errors"] == [AI_NOT_PERMITTED] and payload["requestId"] is None:
            return "denied"
        assert payload["errors"] == [] and payload["requestId"], payload
        return "ok"

    async def queued(self) -> int:
        return int(await self.services.redis.zcard(keys.QUEUE))

    async def last_record(self) -> ActionRecord:
        (job_id,) = await self.services.redis.zrange(keys.QUEUE, -1, -1)
        info = await Job(job_id.decode(), self.services.redis, _queue_name=keys.QUEUE).info()
        assert info is not None
        return ActionRecord.model_validate_json(info.args[0])

    def changed(self) -> None:
        """Settings or flags changed in the database: forget this process's caches (they last ≤ 5 s)."""
        self.services.flags.invalidate()
        self.services.entitlements.clear()

    async def admin(self, work: Any) -> Any:
        async with self.services.sessions() as session, session.begin():
            result = await work(session)
        self.changed()
        return result


async def _extend(session: Any, mode: str) -> dict[str, str]:
    child = await namespaces.get_group(session, "gitlab-duo/child")
    project = await namespaces.create_project(session, "gitlab-duo/child/web")
    dave = await create_user(session, "dave")
    await namespaces.add_member(session, dave, child, "developer")
    top = await namespaces.get_group(session, "gitlab-duo") if mode == "saas" else None
    await add_ons.assign_seat(session, dave, "duo_enterprise", top)
    return {"dave": await create_token(session, "dave"), "child_project": f"gid://gitlab/Project/{project.id}"}


@pytest.fixture(params=["self_managed", "saas"])
async def world(request: pytest.FixtureRequest, settings: Settings, database_url: str) -> AsyncIterator[World]:
    mode = request.param
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            seeded = await seed(session, mode=mode)
            extra = await _extend(session, mode)
    finally:
        await engine.dispose()
    tokens = {name: user["token"] for name, user in seeded["users"].items()} | {"dave": extra["dave"]}
    gids = {
        **seeded["resources"],
        "project": seeded["projects"]["gitlab-duo/test"],
        "group": seeded["groups"]["gitlab-duo"],
        "subgroup": seeded["groups"]["gitlab-duo/child"],
        "child_project": extra["child_project"],
    }
    async with open_services(settings.model_copy(update={"mode": mode})) as services:
        yield World(services, seeded, mode, tokens, gids)
