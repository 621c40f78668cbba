"""GraphiQL at `/api/graphql` in a real headless browser (Debian's chromium through playwright), with every
origin but the server's blocked: it loads from the server's own files, opens with the chat example, takes
the token of a `#token=` link into its headers editor (and out of the address bar), and runs the example
mutation over HTTP and its subscription over a websocket authenticated by `connection_init`. A screenshot
is kept with the stack's logs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from api.pages.graphiql import GRAPHIQL_CONTENT_SECURITY_POLICY
from tests._stack import Stack

pytestmark = [pytest.mark.timeout(90), pytest.mark.sqlite_stack]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAS_CHROMIUM = Path(CHROMIUM).exists()
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
UUID = re.compile(r'"requestId": "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}"')

# The value of a GraphiQL editor (CodeMirror 5 keeps its instance on the wrapper element).
_EDITOR = "selector => Array.from(document.querySelectorAll(selector), e => e.CodeMirror.getValue())"


async def test_a_browser_gets_the_local_graphiql_page_with_a_strict_policy(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        page = await http.get(f"{stack.url}/api/graphql", headers={"Accept": "text/html"})
        script = await http.get(f"{stack.url}/static/vendor/graphiql/graphiql.min.js")
    assert page.status_code == 200 and page.headers["content-security-policy"] == GRAPHIQL_CONTENT_SECURITY_POLICY
    assert "unsafe-eval" not in GRAPHIQL_CONTENT_SECURITY_POLICY and "http" not in GRAPHIQL_CONTENT_SECURITY_POLICY
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)  # every asset from this origin
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert script.headers["x-content-type-options"] == "nosniff"


async def test_graphiql_runs_the_chat_example_offline_with_the_linked_token(stack: Stack) -> None:
    if not HAS_CHROMIUM:
        pytest.skip("Debian's chromium is not installed and could not be (`make test` installs it when run as root)")
    from playwright.async_api import Route, async_playwright
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    server = urlsplit(stack.url).netloc
    elsewhere: list[str] = []  # requests for any other origin (blocked)
    requested: list[str] = []
    policy_violations: list[str] = []

    async def only_the_server(route: Route) -> None:
        if urlsplit(route.request.url).netloc == server:
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort()

    token = stack.token("alice")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            await page.route("**/*", only_the_server)
            page.on("request", lambda request: requested.append(request.url))
            page.on("websocket", lambda socket: requested.append(socket.url))
            page.on("console", lambda message: policy_violations.append(message.text)
                    if "Content Security Policy" in message.text else None)
            await page.goto(f"{stack.url}/api/graphql#token={token}")
            await page.wait_for_selector(".graphiql-query-editor .CodeMirror")
            assert await page.title() == "Switchboard GraphiQL"

            # the link's fragment is gone from the address bar; its token is in the headers editor
            assert page.url == f"{stack.url}/api/graphql"
            editors = await page.evaluate(_EDITOR, ".graphiql-editor-tool .CodeMirror")
            assert {"Authorization": f"Bearer {token}"} in [json.loads(value) for value in editors if value.strip()]

            # the example: a chat aiAction with a clientSubscriptionId, and the matching subscription
            query = (await page.evaluate(_EDITOR, ".graphiql-query-editor .CodeMirror"))[0]
            assert "mutation AskDuoChat" in query and "aiAction(" in query and "clientSubscriptionId" in query
            assert "# 1. Run this mutation" in query
            await page.click(".graphiql-execute-button")
            await page.wait_for_function(
                "() => /\"requestId\": \"[0-9a-f-]{36}\"/.test(document.querySelector('.result-window .CodeMirror').CodeMirror.getValue())")
            result = (await page.evaluate(_EDITOR, ".result-window .CodeMirror"))[0]
            assert UUID.search(result) and '"errors": []' in result
            request_id = json.loads(result)["data"]["aiAction"]["requestId"]

            # the subscription tab replays that answer over a websocket (the token in connection_init)
            await page.click(".graphiql-tab:has-text('ChatAnswers') .graphiql-tab-button")
            assert "aiCompletionResponse(" in (await page.evaluate(_EDITOR, ".graphiql-query-editor .CodeMirror"))[0]
            final_shown = "() => document.querySelector('.result-window .CodeMirror').CodeMirror.getValue().includes('\"chunkId\": null')"
            await page.click(".graphiql-execute-button")
            try:
                await page.wait_for_function(final_shown)
            except PlaywrightTimeout:  # seen once in a full CI run, never alone: say what GraphiQL showed, then
                shown = (await page.evaluate(_EDITOR, ".result-window .CodeMirror"))[0]  # subscribe once more
                print(f"graphiql: no final after 30 s; the result pane showed: {shown[:2000]}")
                await page.click(".graphiql-execute-button")  # a second subscription replays from "0-0" again
                await page.wait_for_function(final_shown)
            final = json.loads((await page.evaluate(_EDITOR, ".result-window .CodeMirror"))[0])["data"]["aiCompletionResponse"]
            assert final["requestId"] == request_id and final["content"] == "echo: What can you do?"
            await page.screenshot(path=str(stack.logs / "graphiql.png"), full_page=True)

            # the schema's documentation and completion (introspection over HTTP); the settings dialog
            await page.click(".graphiql-execute-button")  # stops the subscription
            await page.click(".graphiql-tab:has-text('WhoAmI') .graphiql-tab-button")
            await page.click("button[aria-label='Show Documentation Explorer']")
            await page.wait_for_selector(".graphiql-doc-explorer >> text=Root Types")
            await page.click(".graphiql-query-editor .CodeMirror")
            await page.keyboard.press("Control+End")
            await page.keyboard.type("query More { aiF")
            await page.wait_for_selector(".CodeMirror-hints >> text=aiFeatures")
            await page.keyboard.press("Escape")
            await page.click("button[aria-label='Open settings dialog']")
            await page.wait_for_selector(".graphiql-dialog >> text=Persist headers")
        finally:
            await browser.close()
    assert elsewhere == [] and all(urlsplit(url).netloc == server for url in requested), elsewhere or requested
    assert any(url.startswith(f"ws://{server}/api/graphql") for url in requested)  # the subscription's socket
    assert policy_violations == [], "\n".join(sorted(set(v[:200] for v in policy_violations)))
    assert (stack.logs / "graphiql.png").stat().st_size > 10_000
