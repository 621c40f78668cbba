"""GitLab's Features REST API (`/api/v4/features`), admin only, over `core.flags`.

- `GET /api/v4/features`: every set flag, `[{name, state, gates, definition}]`;
- `GET /api/v4/features/definitions`: every defined flag (Switchboard's catalogue);
- `POST /api/v4/features/:name` with `value=true|false|<0-100>`, optional `key=percentage_of_actors` and
  actors `user=`, `group=`, `project=` (comma-separated usernames, group paths, project paths): as GitLab,
  `true`/`false` with actors (un)gates those actors, without them turns the flag on/off for everyone, and a
  number sets the percentage of actors (`0` means `false`). Answers 201 with the flag;
- `DELETE /api/v4/features/:name`: forgets the flag (back to its default), 204.

Parameters come from the query string, a form body or a JSON body. 401 without a valid token, 403 for a
non-admin or a token without the `api` scope (`read_api` may GET), 400 for a bad parameter.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.auth import READ_SCOPES, principal_for, token_from_headers
from api.services import Services
from catalogue.flags import FLAG_DEFINITIONS, FLAGS
from core import flags
from core.access import Principal
from core.flags import FlagState, actor_id
from core.tables import Group, Project, User

__all__ = ["BadFlagChange", "apply_change", "feature_json", "features_routes"]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,254}$")
_TARGETS = (("user", "User"), ("group", "Group"), ("namespace", "Group"), ("project", "Project"))
_UNSUPPORTED = ("feature_group", "repository")


class BadFlagChange(ValueError):
    """A flag change that cannot be made; the message says why."""


def feature_json(name: str, state: FlagState | None) -> dict[str, object]:
    """A flag as GitLab's API shows it."""
    definition = FLAGS.get(name)
    current = state or FlagState(name, boolean=definition is not None and definition.default_enabled)
    return {
        "name": name,
        "state": current.state,
        "gates": current.gates(),
        "definition": definition.model_dump() if definition else None,
    }


async def apply_change(
    session: AsyncSession, name: str, value: str, *, key: str | None = None, targets: Mapping[str, str] | None = None
) -> FlagState | None:
    """Make one change with GitLab's semantics (see the module docstring); returns the flag's new state.
    Raises BadFlagChange. Flushes; the caller commits."""
    if not _NAME.match(name):
        raise BadFlagChange(f"invalid feature name {name!r}: lowercase letters, digits and '_'")
    actors = await _actors(session, targets or {})
    gate = _gate_value(value)
    if key not in (None, "", "percentage_of_actors"):
        raise BadFlagChange(f"key {key!r} is not supported; use percentage_of_actors")
    if isinstance(gate, bool):
        if actors:
            await (flags.add_actors if gate else flags.remove_actors)(session, name, actors)
        else:
            await (flags.enable if gate else flags.disable)(session, name)
    else:
        if actors:
            raise BadFlagChange("a percentage applies to all actors; give no user, group or project with it")
        if key != "percentage_of_actors":
            raise BadFlagChange("percentage_of_time is not supported; pass key=percentage_of_actors")
        await flags.set_percentage(session, name, gate)
    logger.info("feature flag %s set to %s (key %s, actors %s)", name, value, key, actors)
    return await flags.load_state(session, name)


def _gate_value(value: str) -> bool | float:
    text = str(value).strip().lower()
    if text == "true":
        return True
    if text in ("false", "0"):
        return False
    try:
        number = float(text)
    except ValueError:
        raise BadFlagChange(f"value must be true, false or a percentage, not {value!r}") from None
    if not 0 <= number <= 100:
        raise BadFlagChange(f"percentage must be between 0 and 100, not {value!r}")
    return number


async def _actors(session: AsyncSession, targets: Mapping[str, str]) -> list[str]:
    for name in _UNSUPPORTED:
        if targets.get(name):
            raise BadFlagChange(f"{name} gates are not supported; use user, group or project")
    found: list[str] = []
    for param, kind in _TARGETS:
        for ref in (part.strip() for part in str(targets.get(param) or "").split(",")):
            if ref:
                found.append(actor_id(kind, await _target_id(session, kind, ref)))
    return found


async def _target_id(session: AsyncSession, kind: str, ref: str) -> int:
    if "\x00" in ref or len(ref) > 1024:  # never sent to the database (PostgreSQL refuses NUL in text)
        raise BadFlagChange(f"{kind} {ref[:64]!r} not found")
    if kind == "User":
        found = await session.scalar(select(User.id).where(func.lower(User.username) == ref.lower()))
    elif kind == "Group":
        found = await session.scalar(select(Group.id).where(Group.full_path == ref))
    else:
        group_path, _, path = ref.rpartition("/")
        query = select(Project.id).join(Group, Group.id == Project.group_id)
        found = await session.scalar(query.where(Group.full_path == group_path, Project.path == path))
    if found is None:
        raise BadFlagChange(f"{kind} {ref!r} not found")
    return found


def _message(status: int, text: str) -> JSONResponse:
    return JSONResponse({"message": text}, status_code=status)


async def _admin(request: Request, *, write: bool) -> Principal | JSONResponse:
    services: Services = request.app.state.services
    principal = await principal_for(services, token_from_headers(request.headers))
    if principal is None:
        return _message(401, "401 Unauthorized")
    scoped = principal.has_scope("api") if write else bool(principal.scopes & READ_SCOPES)
    if not scoped:
        return JSONResponse(
            {
                "error": "insufficient_scope",
                "error_description": "The request requires higher privileges than provided by the access token.",
                "scope": "api",
            },
            status_code=403,
        )
    if not principal.admin:
        return _message(403, "403 Forbidden")
    return principal


async def _params(request: Request) -> dict[str, str]:
    params = dict(request.query_params)
    body = await request.body()
    if not body:
        return params
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(body)
        except ValueError:
            raise BadFlagChange("the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise BadFlagChange("the JSON body must be an object")
        params.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in data.items() if v is not None})
    else:
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params


async def _list(request: Request) -> Response:
    if isinstance(denied := await _admin(request, write=False), Response):
        return denied
    async with request.app.state.services.sessions() as session:
        states = await flags.load_states(session)
    return JSONResponse([feature_json(name, states[name]) for name in sorted(states)])


async def _definitions(request: Request) -> Response:
    if isinstance(denied := await _admin(request, write=False), Response):
        return denied
    return JSONResponse([definition.model_dump() for definition in FLAG_DEFINITIONS])


async def _set(request: Request) -> Response:
    if isinstance(denied := await _admin(request, write=True), Response):
        return denied
    services: Services = request.app.state.services
    name = request.path_params["name"]
    try:
        params = await _params(request)
        if not params.get("value"):
            raise BadFlagChange("value is missing")
        async with services.sessions() as session, session.begin():
            state = await apply_change(session, name, params["value"], key=params.get("key"), targets=params)
    except BadFlagChange as exc:
        return _message(400, f"400 Bad request - {exc}")
    services.flags.invalidate()
    return JSONResponse(feature_json(name, state), status_code=201)


async def _delete(request: Request) -> Response:
    if isinstance(denied := await _admin(request, write=True), Response):
        return denied
    services: Services = request.app.state.services
    async with services.sessions() as session, session.begin():
        await flags.delete_flag(session, request.path_params["name"])
    services.flags.invalidate()
    return Response(status_code=204)


def features_routes() -> list[Route]:
    return [
        Route("/api/v4/features", _list, methods=["GET"]),
        Route("/api/v4/features/definitions", _definitions, methods=["GET"]),
        Route("/api/v4/features/{name}", _set, methods=["POST"]),
        Route("/api/v4/features/{name}", _delete, methods=["DELETE"]),
    ]
