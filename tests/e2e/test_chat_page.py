"""The `/chat` page in a real headless browser (Debian's chromium through playwright) against the real stack
(web process, worker, mock model): sign-in (form and demo link), streamed Markdown answers, Stop, history after
a reload, new chats, hostile input, a 360 px screen, the keyboard alone, tool progress and sources, slash-command
completion, and resuming after the websocket drops. Screenshots are kept with the stack's logs (`chat-*.png`).

One browser for the module; each test opens its own context (its own sessionStorage, so its own sign-in).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._client import GraphQLSocket
from tests._stack import Stack

pytestmark = [pytest.mark.timeout(120), pytest.mark.sqlite_stack]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed and could not be (`make test` installs it when run as root)",
                allow_module_level=True)

from playwright.sync_api import Browser, Page, WebSocketRoute, expect, sync_playwright  # noqa: E402

expect.set_options(timeout=30_000)  # a loaded 2-core host; every wait ends as soon as its condition holds


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class Watch:
    """What a page must never do: open a dialog, log a CSP violation, or throw."""

    def __init__(self, page: Page) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


def open_page(browser: Browser, width: int = 1100, height: int = 800) -> tuple[Page, Watch]:
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    return page, Watch(page)


def sign_in(page: Page, stack: Stack, user: str = "alice") -> None:
    """The demo link: /chat#token=..."""
    page.goto(f"{stack.url}/chat#token={stack.token(user)}")
    expect(page.locator("#who")).to_contain_text(f"@{user}")
    expect(page.locator("#connection")).to_have_text("Connected")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")


def ask(page: Page, text: str) -> Any:
    """Send `text` with the button; the locator of its answer."""
    answers = page.locator("article.message.assistant")
    before = answers.count()
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_role("button", name="Send").click()
    expect(answers).to_have_count(before + 1)
    return answers.nth(before)


def shot(page: Page, stack: Stack, name: str) -> None:
    page.screenshot(path=str(stack.logs / f"chat-{name}.png"), full_page=True)


def scripted(words: int, delay_ms: int, prefix: str = "word") -> tuple[str, str]:
    answer = " ".join(f"{prefix}{i}" for i in range(1, words + 1))
    return f'<response chunk_delay_ms="{delay_ms}">{answer}</response>', answer


def test_home_redirects_and_the_page_is_locked_down(stack: Stack) -> None:
    with httpx.Client(timeout=10) as http:
        home = http.get(f"{stack.url}/", follow_redirects=False)
        assert home.status_code in (302, 307) and home.headers["location"] == "/chat"
        page = http.get(f"{stack.url}/chat")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "default-src 'none'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in page.text and re.search(r"\son\w+\s*=", page.text) is None  # no inline script
        for asset in ("/static/chat.js", "/static/chat.css", "/static/vendor/dompurify/purify.min.js",
                      "/static/vendor/markdown-it/markdown-it.min.js", "/static/vendor/graphql-ws/graphql-ws.min.js"):
            response = http.get(f"{stack.url}{asset}")
            assert response.status_code == 200, asset
            assert response.headers["x-content-type-options"] == "nosniff", asset
        assert http.get(f"{stack.url}/static/../chat.py").status_code == 404


def test_sign_in_with_the_form_and_sign_out(browser: Browser, stack: Stack) -> None:
    page, watch = open_page(browser)
    page.goto(f"{stack.url}/chat")
    page.get_by_label("Access token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    page.get_by_label("Access token").fill(stack.token("bob"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#who")).to_contain_text("@bob")
    assert page.evaluate("sessionStorage.getItem('switchboard.chat.token')") == stack.token("bob")
    expect(page.get_by_label("Message", exact=True)).to_be_focused()
    shot(page, stack, "signed-in")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Access token")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('switchboard.chat.token')") is None
    assert watch.errors == [] and watch.dialogs == []


def test_the_demo_link_signs_in_and_leaves_no_token_in_the_address_bar(browser: Browser, stack: Stack) -> None:
    page, watch = open_page(browser)
    sign_in(page, stack)
    assert "token" not in page.url and page.url.endswith("/chat")
    page.reload()  # the tab keeps its sign-in
    expect(page.locator("#who")).to_contain_text("@alice")
    assert watch.errors == []
    page.go_back()  # the entry with the token was replaced, not kept in the history
    assert "token" not in page.url


def test_an_answer_streams_as_markdown_then_the_final_replaces_it_and_a_reload_keeps_the_thread(
    browser: Browser, stack: Stack
) -> None:
    page, watch = open_page(browser)
    sign_in(page, stack)
    page.get_by_role("button", name="New chat").click()
    question, text = scripted(12, 150)
    answer = ask(page, f"Stream please {uuid.uuid4().hex[:6]} {question}")
    body = answer.locator(".body")
    # streaming is observable: part of the answer shown while the final has not come
    expect(answer).to_have_attribute("data-state", "streaming")
    expect(body).to_contain_text("word2")
    assert "word12" not in body.inner_text() and answer.get_attribute("aria-busy") == "true"
    expect(answer).to_have_attribute("data-state", "final")
    expect(body).to_have_text(text)
    expect(answer).to_have_attribute("data-stream-complete", "true")  # the chunks added up to the final
    assert answer.get_attribute("aria-busy") is None
    expect(page.locator("#messages")).to_have_attribute("aria-live", "polite")
    title = page.locator("#thread-list [aria-current=true]")
    expect(title).to_contain_text("Stream please")
    # feedback on the answer
    answer.get_by_role("button", name="Helpful", exact=True).click()
    expect(answer.locator(".feedback-status")).to_have_text("Thanks for the feedback")
    shot(page, stack, "streamed")

    page.reload()
    expect(page.locator("#who")).to_contain_text("@alice")
    again = page.locator("article.message.assistant").last
    expect(again.locator(".body")).to_have_text(text)
    expect(page.locator(".message.user").last).to_contain_text("Stream please")
    expect(page.locator("#thread-list [aria-current=true]")).to_contain_text("Stream please")
    expect(again.locator(".feedback-status")).to_have_text("Feedback sent")  # hasFeedback from the history
    assert watch.errors == [] and watch.dialogs == []


def test_stop_ends_the_answer_marked_stopped_with_what_was_streamed(browser: Browser, stack: Stack) -> None:
    page, watch = open_page(browser)
    sign_in(page, stack)
    question, _ = scripted(40, 200)
    answer = ask(page, question)
    expect(answer.locator(".body")).to_contain_text("word3")
    page.get_by_role("button", name="Stop").click()
    expect(answer).to_have_attribute("data-cancelled", "true")
    expect(answer.locator(".cancelled")).to_have_text("Stopped")
    kept = answer.locator(".body").inner_text()
    assert kept.startswith("word1 word2 word3") and "word40" not in kept
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    shot(page, stack, "stopped")
    assert watch.errors == []


def test_new_chat_starts_a_thread_and_threads_can_be_switched_and_deleted(browser: Browser, stack: Stack) -> None:
    page, watch = open_page(browser)
    sign_in(page, stack)
    threads = page.locator("#thread-list li")
    page.get_by_role("button", name="New chat").click()
    expect(page.locator("#conversation-title")).to_have_text("New conversation")
    expect(page.locator("#messages .message")).to_have_count(0)
    before = threads.count()
    first = f"first thread {uuid.uuid4().hex[:6]}"
    expect(ask(page, first)).to_have_attribute("data-state", "final")
    expect(threads).to_have_count(before + 1)
    page.get_by_role("button", name="New chat").click()
    second = f"second thread {uuid.uuid4().hex[:6]}"
    expect(ask(page, second)).to_have_attribute("data-state", "final")
    expect(threads).to_have_count(before + 2)
    expect(page.locator("#messages .message.user")).to_have_count(1)

    page.locator("#thread-list .open", has_text=first).click()  # switch: the first thread's history
    expect(page.locator("#messages .message.user")).to_have_text([first])
    expect(page.locator("#messages article .body")).to_have_text([f"echo: {first}"])
    page.get_by_role("button", name=f"Delete conversation: {first}").click()
    expect(threads).to_have_count(before + 1)
    expect(page.locator("#conversation-title")).to_have_text("New conversation")
    assert watch.errors == []


HOSTILE_QUESTION = (
    '<img src=x onerror="window.__pwned=1;alert(1)"> <script>window.__pwned=2</script> '
    "[click me](javascript:window.__pwned=3) <a href=\"javascript:alert(4)\">raw link</a>"
)
HOSTILE_ANSWER = (
    "<response><img src=x onerror=window.__pwned=5> <b onmouseover=window.__pwned=6>bold</b> "
    "[model link](javascript:window.__pwned=7) [ok](/chat) <script>window.__pwned=8</script></response>"
)


def test_hostile_input_and_hostile_answers_never_run(browser: Browser, stack: Stack) -> None:
    page, watch = open_page(browser)
    sign_in(page, stack)
    page.get_by_role("button", name="New chat").click()
    echoed = ask(page, HOSTILE_QUESTION)  # the mock echoes the question: the answer holds it too
    expect(echoed).to_have_attribute("data-state", "final")
    scripted_answer = ask(page, HOSTILE_ANSWER)
    expect(scripted_answer).to_have_attribute("data-state", "final")
    expect(scripted_answer.locator(".body")).to_contain_text("bold")
    page.reload()  # the same from the history (contentHtml from aiMessages) and in the thread list
    expect(page.locator("article.message.assistant")).to_have_count(2)
    expect(page.locator("#thread-list [aria-current=true]")).to_contain_text("<img src=x")  # a title is text
    expect(page.locator(".message.user").first).to_contain_text("<script>window.__pwned=2</script>")
    for link in page.locator("#messages a").all():
        link.hover()
        href = link.get_attribute("href")
        assert href is None or href.startswith(("http://", "https://", "/")), href
    page.locator("#messages article").get_by_text("model link").first.click()  # text, or a link stripped of its URL
    page.locator("#messages article").get_by_text("bold").first.hover()
    dom = page.evaluate("""() => ({
        pwned: window.__pwned === undefined ? null : window.__pwned,
        scripts: document.querySelectorAll('#messages script, #thread-list script').length,
        handlers: [...document.querySelectorAll('#messages *, #thread-list *')]
            .filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
        jsLinks: [...document.querySelectorAll('a[href]')].filter(a => /^\\s*javascript:/i.test(a.getAttribute('href'))).length,
    })""")
    assert dom == {"pwned": None, "scripts": 0, "handlers": 0, "jsLinks": 0}
    assert watch.dialogs == [] and watch.errors == []
    shot(page, stack, "hostile")


def test_a_360_px_screen_has_no_horizontal_scroll(browser: Browser, stack: Stack) -> None:
    page, watch = open_page(browser, width=360, height=740)
    page.goto(f"{stack.url}/chat")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    sign_in(page, stack)
    long_word = "x" * 300
    answer = ask(page, f"A long line {long_word} and code:\n\n```\n{'y = 1; ' * 60}\n```")
    expect(answer).to_have_attribute("data-state", "final")
    for role, name in (("button", "Send"), ("button", "New chat")):
        expect(page.get_by_role(role, name=name)).to_be_visible()
    expect(page.get_by_label("Message", exact=True)).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert page.evaluate("document.body.scrollWidth") <= 360
    shot(page, stack, "360px")
    assert watch.errors == []


def test_the_keyboard_alone_is_enough(browser: Browser, stack: Stack) -> None:
    page, watch = open_page(browser)
    page.goto(f"{stack.url}/chat")
    expect(page.get_by_label("Access token")).to_be_focused()
    page.keyboard.type(stack.token("alice"))
    page.keyboard.press("Enter")
    expect(page.locator("#who")).to_contain_text("@alice")
    page.evaluate("document.activeElement.blur()")
    for _ in range(40):  # Tab through the controls in order until the message box has the focus
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id")
        if focused == "message":
            break
        if page.evaluate("document.activeElement === document.body"):
            continue  # between the page and the browser's own controls
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        what = page.evaluate("document.activeElement.outerHTML.slice(0, 120)")
        assert outline != "none", f"no visible focus on {what}"
    assert page.evaluate("document.activeElement.id") == "message"
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    assert page.get_by_label("Message", exact=True).input_value() == "first line\nsecond line"
    answers = page.locator("article.message.assistant")
    before = answers.count()
    page.keyboard.press("Enter")
    expect(answers).to_have_count(before + 1)
    expect(answers.nth(before).locator(".body")).to_contain_text("echo: first line")
    expect(page.get_by_label("Message", exact=True)).to_have_value("")
    assert watch.errors == []


def test_tool_progress_and_the_source_link(browser: Browser, stack: Stack) -> None:
    page, watch = open_page(browser)
    sign_in(page, stack)
    answer = ask(page, '<response><tool_call name="issue_reader">{"reference": "gitlab-duo/test#1"}</tool_call></response>')
    expect(answer).to_have_attribute("data-state", "final")
    expect(answer.locator(".tools")).to_contain_text("Reading issue gitlab-duo/test#1")
    expect(answer.locator(".tools")).to_contain_text("finished")
    source = answer.locator(".sources a")
    expect(source).to_have_count(1)
    assert re.search(r"/gitlab-duo/test/-/issues/1$", source.get_attribute("href") or "")
    shot(page, stack, "tools")
    assert watch.errors == []


def test_slash_command_completion(browser: Browser, stack: Stack) -> None:
    page, watch = open_page(browser)
    sign_in(page, stack)
    box = page.get_by_label("Message", exact=True)
    box.focus()
    page.keyboard.type("/")
    listbox = page.get_by_role("listbox", name="Slash commands")
    expect(listbox).to_be_visible()
    expect(box).to_have_attribute("aria-expanded", "true")
    options = listbox.get_by_role("option")
    assert options.count() >= 4
    expect(options.first).to_have_attribute("aria-selected", "true")
    page.keyboard.press("ArrowDown")
    expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    assert box.get_attribute("aria-activedescendant") == "command-1"
    page.keyboard.type("ex")  # "/ex": only /explain
    expect(options).to_have_count(1)
    expect(options.first).to_contain_text("/explain")
    page.keyboard.press("Tab")
    expect(box).to_have_value("/explain ")  # takes input: not sent
    expect(listbox).to_be_hidden()
    box.fill("")
    page.keyboard.type("/he")
    expect(options).to_have_count(1)
    answers = page.locator("article.message.assistant")
    before = answers.count()
    page.keyboard.press("Enter")  # /help is sent at once
    expect(answers).to_have_count(before + 1)
    expect(answers.nth(before).locator(".body")).to_contain_text("/explain")
    shot(page, stack, "help")
    assert watch.errors == []


async def _wait_for_final(stack: Stack, request_id: str) -> None:
    """The answer's final, from the broadcast route (every tab of alice's), replayed from the start."""
    socket = await GraphQLSocket.connect(stack.ws_url, stack.token("alice"))
    try:
        op = await socket.subscribe({"userId": stack.gid("alice"), "aiAction": "CHAT", "after": "0-0"}, settle_s=0)
        while True:
            message = await socket.message(op, timeout=30)
            if message["requestId"] == request_id and message["chunkId"] is None and message["role"] == "ASSISTANT":
                return
    finally:
        await socket.close()


def test_the_stream_resumes_after_the_websocket_drops_with_no_gap_and_no_duplicate(browser: Browser, stack: Stack) -> None:
    page, watch = open_page(browser)
    sockets: list[WebSocketRoute] = []
    hold = {"on": False}

    def route(ws: WebSocketRoute) -> None:
        if hold["on"]:  # the network is down: refused until the test lets it back
            ws.close(code=4000, reason="offline")
            return
        ws.connect_to_server()
        sockets.append(ws)

    page.route_web_socket(re.compile(r".*/api/graphql$"), route)
    sign_in(page, stack)
    question, text = scripted(16, 150)
    answer = ask(page, question)
    expect(answer.locator(".body")).to_contain_text("word2")
    request_id = answer.get_attribute("data-request-id") or ""
    hold["on"] = True
    sockets[-1].close(code=4000, reason="dropped")  # the page's side closes; the server's with it
    expect(page.locator("#connection")).to_have_text("Reconnecting…")
    streamed = answer.locator(".body").inner_text()
    assert "word16" not in streamed
    # the rest of the answer is published while the page is offline
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _wait_for_final(stack, request_id)).result()
    expect(answer).to_have_attribute("data-state", "streaming")  # the page has not seen the end
    hold["on"] = False
    expect(page.locator("#connection")).to_have_text("Connected")
    expect(answer).to_have_attribute("data-state", "final")
    expect(answer.locator(".body")).to_have_text(text)
    expect(answer).to_have_attribute("data-stream-complete", "true")  # chunks 1..16 with no gap
    assert answer.get_attribute("data-chunks") == "16"
    expect(page.locator(f'article[data-request-id="{request_id}"]')).to_have_count(1)
    assert len(sockets) == 2
    assert watch.errors == []


def test_the_resource_picker_lists_what_the_user_can_read_and_the_chat_talks_about_it(browser: Browser, stack: Stack) -> None:
    page, watch = open_page(browser)
    sign_in(page, stack, "mallory")  # no membership: nothing to pick
    expect(page.locator("#resource option")).to_have_count(1)
    page.close()
    page, watch = open_page(browser)
    sign_in(page, stack)
    picker = page.get_by_label("About")
    # nothing + every seeded issue (confidential included), merge request, epic and vulnerability: all but the project
    readable = [gid for gid in stack.seed["resources"].values() if not gid.startswith("gid://gitlab/Project/")]
    expect(picker.locator("option")).to_have_count(1 + len(readable))
    picker.select_option(stack.seed["resources"]["issue"])
    box = page.get_by_label("Message", exact=True)
    box.focus()
    page.keyboard.type("/su")  # the commands follow the picked resource
    expect(page.get_by_role("listbox").get_by_role("option")).to_contain_text(["/summarize_comments"])
    box.fill("")
    answer = ask(page, '<response><tool_call name="issue_reader">{"reference": "current"}</tool_call></response>')
    expect(answer).to_have_attribute("data-state", "final")
    expect(answer.locator(".tools")).to_contain_text("Reading the current issue")
    assert re.search(r"/gitlab-duo/test/-/issues/1$", answer.locator(".sources a").get_attribute("href") or "")
    assert watch.errors == []
