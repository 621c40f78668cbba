"""The `/admin` status page in a real headless browser (Debian's chromium through playwright): an
administrator signs in with a token and sees the last hour's queue depth, throughput and error ratio as
charts, apdex per feature and the models in use, from real traffic, and the failed requests with their
reason; the page reloads itself unless paused, and Sign out ends the session; screenshots are kept with the
logs."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import httpx
import pytest

from tests._client import GraphQLSocket, post
from tests._stack import Stack

# Operations do not depend on the database backend: the SQLite stack only, to keep the suite fast.
pytestmark = [pytest.mark.timeout(60), pytest.mark.sqlite_stack]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAS_CHROMIUM = Path(CHROMIUM).exists()
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ACTION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors } }"


async def traffic(stack: Stack, count: int) -> None:
    socket = await GraphQLSocket.connect(stack.ws_url, stack.token("alice"))
    ops = []
    for _ in range(count):
        sub = f"sub-{uuid.uuid4()}"
        op = await socket.subscribe({"userId": stack.gid("alice"), "aiAction": "CHAT", "clientSubscriptionId": sub}, settle_s=0)
        ops.append((op, sub))
    await asyncio.sleep(0.3)
    for index, (_op, sub) in enumerate(ops):
        await post(stack.url, stack.token("alice"), ACTION, {"input": {"chat": {"content": f"status {index}"}, "clientSubscriptionId": sub}})
    for op, _sub in ops:
        await socket.until_final(op)
    await socket.close()


async def wait_for_counts(stack: Stack) -> str:
    """The workers flush their per-minute counters every few seconds."""
    headers = {"Authorization": f"Bearer {stack.token('root')}"}
    async with httpx.AsyncClient(timeout=5) as http:
        for _ in range(100):
            page = (await http.get(f"{stack.url}/admin", headers=headers)).text
            if "no answers in the last hour" not in page:
                return page
            await asyncio.sleep(0.2)
    raise AssertionError("the status page shows no traffic")


async def test_the_status_page_needs_an_admin_token(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        anonymous = await http.get(f"{stack.url}/admin")
        assert anonymous.status_code == 401 and 'name="token"' in anonymous.text
        alice = await http.get(f"{stack.url}/admin", headers={"Authorization": f"Bearer {stack.token('alice')}"})
        assert alice.status_code == 403 and "Queue depth" not in alice.text
        wrong = await http.post(f"{stack.url}/admin", data={"token": stack.token("alice")})
        assert wrong.status_code == 403 and "set-cookie" not in wrong.headers


async def test_the_status_page_renders_real_data_in_chromium(stack: Stack) -> None:
    if not HAS_CHROMIUM:
        pytest.skip("Debian's chromium is not installed and could not be (`make test` installs it when run as root)")
    from playwright.async_api import async_playwright

    await traffic(stack, 6)
    await wait_for_counts(stack)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 760})
            await page.goto(f"{stack.url}/admin")
            await page.fill("input[name=token]", stack.token("root"))
            await page.click("button[type=submit]")
            await page.wait_for_selector("#apdex")
            assert await page.title() == "Switchboard status"
            for card in ("#queue", "#throughput", "#errors"):
                assert await page.locator(f"{card} svg").count() == 1, card
            assert int(await page.inner_text("#throughput .big")) >= 6
            assert "chat" in await page.inner_text("#apdex table")
            assert "/" in await page.inner_text("#models table")  # provider/model
            assert "1 live" in (await page.text_content("#workers h2") or "")
            assert "Model and prompt migrations" in await page.inner_text("#migrations caption")
            await page.screenshot(path=str(stack.logs / "admin.png"), full_page=True)
        finally:
            await browser.close()
    assert (stack.logs / "admin.png").stat().st_size > 10_000


async def failing_request(stack: Stack, secret: str) -> str:
    """A chat request whose model answers 429 on every try (the mock's scripted error): its retries run out
    and it ends in an error. Its request id. (Not a 500: the failures would count against the mock model's
    circuit breaker, which this stack's other tests share; a 429 counts neither way.)"""
    socket = await GraphQLSocket.connect(stack.ws_url, stack.token("alice"))
    sub = f"sub-{uuid.uuid4()}"
    op = await socket.subscribe({"userId": stack.gid("alice"), "aiAction": "CHAT", "clientSubscriptionId": sub}, settle_s=0.3)
    result = await post(stack.url, stack.token("alice"), ACTION,
                        {"input": {"chat": {"content": f'{secret} <response error="429">x</response>'}, "clientSubscriptionId": sub}})
    final = (await socket.until_final(op, timeout=30))[-1]
    await socket.close()
    assert final["errors"] == ["Maximum number of retries (3) exceeded."], final
    return result["data"]["aiAction"]["requestId"]


async def test_the_status_page_reloads_itself_unless_paused(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {stack.token('root')}"}
    async with httpx.AsyncClient(timeout=5) as http:
        live = (await http.get(f"{stack.url}/admin", headers=headers)).text
        paused = (await http.get(f"{stack.url}/admin?refresh=0", headers=headers)).text
    assert '<meta http-equiv="refresh" content="10">' in live and 'href="/admin?refresh=0">pause</a>' in live
    assert 'http-equiv="refresh"' not in paused and 'href="/admin">resume</a>' in paused
    assert "<script" not in live  # the page stays script-free


async def test_a_failed_request_is_listed_with_its_reason(stack: Stack) -> None:
    request_id = await failing_request(stack, "secret-failing-question")
    async with httpx.AsyncClient(timeout=5) as http:
        page = (await http.get(f"{stack.url}/admin", headers={"Authorization": f"Bearer {stack.token('root')}"})).text
    failures = page[page.index('id="failures"'):]
    row = next(row for row in failures.split("<tr>") if request_id in row)
    assert "ProviderRateLimited (429)" in row and "Maximum number of retries (3) exceeded." in row
    assert "<td>chat</td>" in row and "<td>mock</td>" in row and '<td class="n">4</td>' in row  # 1 try + 3 retries
    assert "secret-failing-question" not in page


async def test_signing_out_ends_the_session_in_chromium(stack: Stack) -> None:
    if not HAS_CHROMIUM:
        pytest.skip("Debian's chromium is not installed and could not be (`make test` installs it when run as root)")
    from playwright.async_api import async_playwright

    request_id = await failing_request(stack, "another-secret")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            context = await browser.new_context(viewport={"width": 1200, "height": 900})
            page = await context.new_page()
            await page.goto(f"{stack.url}/admin?refresh=0")
            await page.fill("input[name=token]", stack.token("root"))
            await page.click("button[type=submit]")
            await page.wait_for_selector("#failures")
            row = page.locator("#failures tr", has_text=request_id)
            assert "ProviderRateLimited (429)" in await row.inner_text()
            assert await page.locator("meta[http-equiv=refresh]").count() == 1  # signed in: /admin, refreshing
            await page.screenshot(path=str(stack.logs / "admin-failures.png"), full_page=True)
            assert [c["name"] for c in await context.cookies()] == ["switchboard_admin_session"]

            await page.click("#sign-out")
            await page.wait_for_selector("input[name=token]")
            assert await context.cookies() == []
            await page.goto(f"{stack.url}/admin")  # the next visit asks for a token again
            assert await page.locator("input[name=token]").count() == 1 and await page.locator("#failures").count() == 0
        finally:
            await browser.close()
    assert (stack.logs / "admin-failures.png").stat().st_size > 10_000
