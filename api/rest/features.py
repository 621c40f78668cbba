"""GitLab's Features REST API (`/api/v4/features`), admin only, over `access.flags`.

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
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from access import flags
from access.admin.flag_changes import BadFlagChange, apply_change, feature_json
from access.tokens import Principal, auth_failed
from api.auth import READ_SCOPES, principal_for, token_from_headers
from api.services import Services
from catalogue.flags import FLAGS

__all__ = ["features_routes"]

logger = logging.getLogger(__name__)

def _message(status: int, text: str) -> JSONResponse:
    return JSONResponse({"message": text}, status_code=status)


async def _admin(request: Request, *, write: bool) -> Principal | JSONResponse:
    services: Services = request.app.state.services
    token = token_from_headers(request.headers)
    principal = await principal_for(services, token)
    if principal is None:
        auth_failed("missing_token" if token is None else "invalid_token", transport="rest")
        return _message(401, "401 Unauthorized")
    scoped = principal.has_scope("api") if write else bool(principal.scopes & READ_SCOPES)
    if not scoped:
        auth_failed("insufficient_scope", user_id=principal.user_id, transport="rest")
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
    return JSONResponse([definition.model_dump() for definition in FLAGS.values()])


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
