"""The `/admin` session (SPEC §14, issue 9): signing in sets a sealed, expiring session cookie (HttpOnly,
SameSite=Strict, Secure over TLS), never the raw token, and every request checks it again."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie

import httpx
import pytest

from access.admin.accounts import create_token, revoke_tokens
from api.app import create_app
from api.pages.admin import COOKIE, SESSION_S
from api.services import Services, open_services
from core.secrets import session_box
from core.settings import Settings


@pytest.fixture
async def app_services(settings: Settings, seeded: dict) -> AsyncIterator[tuple[object, Services]]:
    uncached = settings.model_copy(update={"auth_cache_s": 0})  # a revocation counts at once
    app = create_app(uncached)
    async with open_services(uncached) as services:
        app.state.services = services
        yield app, services


def client(app: object, scheme: str = "http") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"{scheme}://switchboard")  # type: ignore[arg-type]


async def admin_token(services: Services) -> str:
    async with services.sessions() as session, session.begin():
        return await create_token(session, "root", scopes="api", name="admin-page")


def session_cookie(response: httpx.Response) -> tuple[str, dict[str, str | bool]]:
    (header,) = response.headers.get_list("set-cookie")
    morsel = SimpleCookie(header)[COOKIE]
    return morsel.value, {k: morsel[k] for k in ("httponly", "samesite", "secure", "path", "max-age")}


async def test_signing_in_sets_a_sealed_expiring_cookie_and_never_the_token(app_services: tuple) -> None:
    app, services = app_services
    token = await admin_token(services)
    async with client(app) as http:
        response = await http.post("/admin", data={"token": token})
        assert response.status_code == 303
        value, flags = session_cookie(response)
        assert token not in value and flags == {"httponly": True, "samesite": "strict", "secure": "", "path": "/admin",
                                                "max-age": str(SESSION_S)}
        page = await http.get("/admin")  # the client sends the cookie back
        assert page.status_code == 200 and "Queue depth" in page.text


async def test_over_tls_the_cookie_is_secure(app_services: tuple) -> None:
    app, services = app_services
    async with client(app, "https") as http:
        _, flags = session_cookie(await http.post("/admin", data={"token": await admin_token(services)}))
    assert flags["secure"] is True


async def test_a_forged_cookie_opens_nothing(app_services: tuple, seeded: dict) -> None:
    app, _ = app_services
    async with client(app) as http:
        for forged in (seeded["users"]["root"]["token"], "gAAAAA-not-a-session"):
            http.cookies.set(COOKIE, forged, domain="switchboard", path="/admin")
            response = await http.get("/admin")
            assert response.status_code == 401 and "Queue depth" not in response.text


async def test_revoking_the_token_ends_the_session(app_services: tuple) -> None:
    app, services = app_services
    token = await admin_token(services)
    async with client(app) as http:
        await http.post("/admin", data={"token": token})
        assert (await http.get("/admin")).status_code == 200
        async with services.sessions() as session, session.begin():
            await revoke_tokens(session, "root", name="admin-page")
        response = await http.get("/admin")
        assert response.status_code == 401 and "Queue depth" not in response.text
        assert COOKIE not in http.cookies  # the dead session is cleared


def test_a_session_expires(settings: Settings) -> None:
    box = session_box(settings)
    sealed = box.encrypt("digest")
    now = time.time()
    assert box.open(sealed, max_age_s=SESSION_S, now=now) == "digest"
    assert box.open(sealed, max_age_s=SESSION_S, now=now + SESSION_S + 1) is None


def test_a_session_cannot_be_opened_as_a_stored_secret_or_the_reverse(settings: Settings) -> None:
    from core.secrets import secret_box

    assert secret_box(settings).decrypt(session_box(settings).encrypt("digest")) is None
    assert session_box(settings).open(secret_box(settings).encrypt("api token"), max_age_s=SESSION_S) is None
