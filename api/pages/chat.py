"""The chat page at `/chat` (SPEC §14, issue 12): a Duo Chat client for people, in the browser.

The page is static: `static/chat.html`, `static/chat.js` and `static/chat.css`, with the browser libraries
vendored under `static/vendor/` (see its README). Nothing is fetched from elsewhere and nothing is built at run
time. The script signs in with a personal access token kept in the tab's `sessionStorage` (or read once from a
`/chat#token=...` link), then talks to `/api/graphql` like any client: HTTP POST for queries and mutations, a
`graphql-transport-ws` websocket for `aiCompletionResponse`.

Every response of the page and of `/static` carries `X-Content-Type-Options: nosniff`; the page also a strict
Content-Security-Policy (scripts from this origin only, no inline script or style, no plugin, no framing), so
that even a sanitizer bug cannot run text from a user or a model as script.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from api.pages.assets import page, static_routes

__all__ = ["chat_routes", "CONTENT_SECURITY_POLICY"]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
)


async def _home(request: Request) -> Response:
    return RedirectResponse("/chat", status_code=307)


async def _page(request: Request) -> Response:
    return page("chat.html", CONTENT_SECURITY_POLICY)


def chat_routes() -> list[BaseRoute]:
    return [
        Route("/", _home, methods=["GET"]),
        Route("/chat", _page, methods=["GET"]),
        *static_routes(),
    ]
