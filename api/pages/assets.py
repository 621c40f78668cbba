"""The pages' files (`api/pages/static/`): served under `/static`, and the pages themselves with their headers.

Scripts, styles and the vendored libraries (`static/vendor/`, see its README) are revalidated on every load
(ETag) and never sniffed. A page is sent with its own Content-Security-Policy and the headers every page
carries (no sniffing, no referrer, no framing, revalidated).
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["STATIC_DIR", "page", "static_routes"]

STATIC_DIR = Path(__file__).parent / "static"


class _StaticFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def static_routes() -> list[BaseRoute]:
    """`/static/...`: the pages' own scripts and styles and `vendor/`."""
    return [Mount("/static", app=_StaticFiles(directory=STATIC_DIR), name="static")]


def page(name: str, content_security_policy: str) -> Response:
    """The HTML page `static/<name>` with its policy."""
    return FileResponse(STATIC_DIR / name, media_type="text/html; charset=utf-8", headers={
        "Content-Security-Policy": content_security_policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-cache",
    })
