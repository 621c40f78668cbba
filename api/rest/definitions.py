"""`GET /v1/models/definitions`: the model catalogue for model selection, in the shape GitLab's AI gateway
serves (seed `namespace-model-selection.txt`): every model of `models.yml` by name and identifier, and every
feature setting of `feature_settings.yml` with its default, selectable and beta models and unit primitives.
No authentication, as in the gateway; the catalogue is public data.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from catalogue import Catalogue, get_catalogue

__all__ = ["definitions", "definitions_routes"]


def definitions(catalogue: Catalogue) -> dict[str, Any]:
    return {
        "models": [{"name": model.name, "identifier": model.identifier} for model in catalogue.models.values()],
        "unit_primitives": [
            {
                "feature_setting": setting.feature_setting,
                "default_model": setting.default_model,
                "selectable_models": list(setting.selectable_models),
                "beta_models": list(setting.beta_models),
                "unit_primitives": list(setting.unit_primitives),
            }
            for setting in catalogue.feature_settings.values()
        ],
    }


@functools.cache
def _body() -> bytes:
    return orjson.dumps(definitions(get_catalogue()))


async def _definitions(request: Request) -> Response:
    return Response(_body(), media_type="application/json", headers={"Cache-Control": "public, max-age=300"})


def definitions_routes() -> list[Route]:
    """Also answers GitLab's `/v1/models%2Fdefinitions`: the server decodes `%2F` before routing."""
    return [Route("/v1/models/definitions", _definitions, methods=["GET"])]
