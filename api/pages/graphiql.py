"""GraphiQL at `GET /api/graphql` in a browser (SPEC §14), served entirely by this process.

`SwitchboardGraphQL.render_graphql_ide` answers with `static/graphiql.html`; the page loads React,
ReactDOM and GraphiQL 3's UMD build (which bundles graphql-ws for subscriptions) from `/static/vendor/`
(see its README) and its own `static/graphiql.js`, and nothing from another origin. The script opens the
editor with working examples (a chat `aiAction` with a `clientSubscriptionId`, the matching
`aiCompletionResponse` subscription, `currentUser`). A link `/api/graphql#token=<token>` (the banner's; a
fragment never reaches the server or its logs) fills the headers editor with `{"Authorization": "Bearer
<token>"}` and is then removed from the address bar; GraphiQL sends the headers editor's content with every
HTTP request and as the websocket's `connection_init` payload. The token is kept in the tab's
`sessionStorage` (with GraphiQL's tabs), never in `localStorage`.

The Content-Security-Policy allows scripts, styles, fonts and connections of this origin only. GraphiQL
needs neither `eval` nor inline script, but two exceptions stay, for this page alone: `style-src
'unsafe-inline'` (its dialogs and popovers set `style` attributes: the settings dialog is refused
without it) and `data:` fonts and images (its stylesheet embeds its fonts and lint icons).
"""

from __future__ import annotations

from starlette.responses import Response

from api.pages.assets import page

__all__ = ["GRAPHIQL_CONTENT_SECURITY_POLICY", "graphiql_page"]

GRAPHIQL_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; font-src 'self' data:; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "object-src 'none'"
)


def graphiql_page() -> Response:
    """The GraphiQL page (strawberry's view calls this for a browser's GET)."""
    return page("graphiql.html", GRAPHIQL_CONTENT_SECURITY_POLICY)
