"""Production sign-in through an OpenID Connect provider (a fake one): the state is
checked, the code is exchanged for the access token, and that token becomes the session."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import httpx
from console.bootstrap import build_services, create_app
from console.entrypoints.web import SESSION_COOKIE
from console.settings import ConsoleSettings
from crm_runtime.auth import issue_token

SECRET = "console-oidc-tests-secret-of-32-bytes-at-least"
ISSUER = "https://idp.example"


def provider(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"authorization_endpoint": f"{ISSUER}/authorize",
                                             "token_endpoint": f"{ISSUER}/token"})
        if request.url.path == "/token" and b"code=good" in request.content:
            token = issue_token(SECRET, sub="sup-wang", roles=["supervisor"], regions=["shanghai"])
            return httpx.Response(200, json={"access_token": token, "token_type": "Bearer"})
        return httpx.Response(400, json={"error": "invalid_grant"})

    return httpx.MockTransport(handle)


def app_and_seen() -> tuple[object, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    settings = ConsoleSettings(CRM_JWT_SECRET=SECRET, CRM_DEV_MODE=False, CRM_CONSOLE_OIDC_ISSUER=ISSUER,
                               CRM_CONSOLE_OIDC_CLIENT_ID="console", CRM_CONSOLE_OIDC_CLIENT_SECRET="s3cret")
    services = build_services(settings, httpx.MockTransport(lambda r: httpx.Response(200, json={"items": []})))
    return create_app(settings, services=services, oidc_transport=provider(seen)), seen


async def test_sign_in_at_the_provider_keeps_its_access_token_as_the_session():
    app, seen = app_and_seen()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as client:
        assert "/auth/login" in (await client.get("/signin")).text
        login = await client.get("/auth/login", params={"next": "/queue"})
        target = urlparse(login.headers["location"])
        query = parse_qs(target.query)
        assert target.path == "/authorize" and query["client_id"] == ["console"]
        state = query["state"][0]
        back = await client.get("/auth/callback", params={"code": "good", "state": state})
        assert back.status_code == 303 and back.headers["location"] == "/queue"
        assert SESSION_COOKIE in back.headers["set-cookie"] and "HttpOnly" in back.headers["set-cookie"]
        page = await client.get("/queue")
        assert page.status_code == 200 and "sup-wang" in page.text
    token_call = next(r for r in seen if r.url.path == "/token")
    assert token_call.headers["authorization"].startswith("Basic ")


async def test_a_wrong_state_or_a_refused_code_stores_nothing():
    app, _ = app_and_seen()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as client:
        await client.get("/auth/login")
        forged = await client.get("/auth/callback", params={"code": "good", "state": "not-the-one"})
        assert forged.headers["location"] == "/signin" and SESSION_COOKIE not in forged.headers.get("set-cookie", "")
        state = parse_qs(urlparse((await client.get("/auth/login")).headers["location"]).query)["state"][0]
        refused = await client.get("/auth/callback", params={"code": "bad", "state": state})
        assert refused.headers["location"] == "/signin"
        assert (await client.get("/queue")).status_code == 303
