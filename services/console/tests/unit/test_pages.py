"""The console's pages over fake services (httpx.MockTransport): sign-in and its cookie,
sessions that expire, one language per user, the queue's SLA marks, escaping, readiness."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from console.bootstrap import build_services, create_app
from console.entrypoints.web import SESSION_COOKIE
from console.settings import ConsoleSettings
from crm_runtime.auth import issue_token

SECRET = "console-unit-tests-secret-of-32-bytes-or-more"
NOW = datetime.now(UTC)


def fake_services(calls: list[httpx.Request], *, up: bool = True) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if not up:
            raise httpx.ConnectError("refused", request=request)
        path = request.url.path
        if path == "/health/live":
            return httpx.Response(200, json={"status": "ok"})
        if path == "/v1/cases":
            late = (NOW - timedelta(days=3)).isoformat()
            return httpx.Response(200, json={"items": [
                {"case_id": "c1", "case_number": "SZ-2026-000001", "status": "received", "severity": "major",
                 "category": "engineering_quality", "subject": "<script>alert(1)</script>", "sla_due_at": late,
                 "region": "shenzhen"}], "next_cursor": None})
        if path == "/v1/cases/c1/force-close":
            return httpx.Response(403, json={"title": "Forbidden", "status": 403,
                                             "detail": "This action needs one of the roles: supervisor."})
        return httpx.Response(404, json={"title": "Not found", "status": 404})

    return httpx.MockTransport(handle)


def app_with(calls: list[httpx.Request], *, dev_mode: bool = True, up: bool = True):
    settings = ConsoleSettings(CRM_JWT_SECRET=SECRET, CRM_DEV_MODE=dev_mode)
    return create_app(settings, services=build_services(settings, fake_services(calls, up=up)))


@pytest.fixture
def calls() -> list[httpx.Request]:
    return []


async def client_for(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console")


async def sign_in(client: httpx.AsyncClient, role: str = "agent", regions=("shenzhen",)) -> httpx.Response:
    return await client.post("/signin/dev", data={"name": "li", "role": role, "regions": list(regions),
                                                  "next": "/queue"})


async def test_dev_sign_in_sets_an_http_only_session_and_the_token_reaches_the_services(calls):
    async with await client_for(app_with(calls)) as client:
        answer = await sign_in(client)
        assert answer.status_code == 303 and answer.headers["location"] == "/queue"
        cookie = answer.headers["set-cookie"]
        assert SESSION_COOKIE in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
        page = await client.get("/queue")
        assert page.status_code == 200
    sent = next(r for r in calls if r.url.path == "/v1/cases")
    assert sent.headers["authorization"].startswith("Bearer ey")


async def test_the_queue_marks_a_breached_clock_and_escapes_what_customers_wrote(calls):
    async with await client_for(app_with(calls)) as client:
        await sign_in(client)
        page = (await client.get("/queue?sla_due=breached")).text
    assert 'class="breached"' in page and "已超时" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    sent = next(r for r in calls if r.url.path == "/v1/cases")
    assert "sla_due_before" in sent.url.params


async def test_outside_development_mode_there_is_no_dev_sign_in(calls):
    async with await client_for(app_with(calls, dev_mode=False)) as client:
        assert (await sign_in(client)).status_code == 404
        assert "开发环境登录" not in (await client.get("/signin")).text


async def test_an_expired_session_goes_back_to_sign_in_and_htmx_is_told_to_redirect(calls):
    expired = issue_token(SECRET, sub="li", roles=["agent"], regions=["shenzhen"], ttl_s=-10)
    async with await client_for(app_with(calls)) as client:
        client.cookies.set(SESSION_COOKIE, expired)
        page = await client.get("/queue?status=received")
        assert page.status_code == 303 and page.headers["location"] == "/signin?next=/queue%3Fstatus%3Dreceived"
        partial = await client.get("/queue/rows", headers={"HX-Request": "true"})
        assert partial.headers["HX-Redirect"].startswith("/signin")


async def test_a_forced_action_is_refused_by_the_service_and_told_in_english(calls):
    async with await client_for(app_with(calls)) as client:
        await sign_in(client)
        await client.post("/language", data={"lang": "en", "next": "/queue"})
        # The case page itself is not in the fake: only the refusal matters here.
        answer = await client.post("/cases/c1/act/force-close", data={"reason": "x"},
                                   headers={"HX-Request": "true"})
    assert answer.status_code == 200  # htmx swaps the form with the message
    assert "Your role or regions do not allow this" in answer.text


async def test_each_user_keeps_their_own_language(calls):
    async with await client_for(app_with(calls)) as client:
        await sign_in(client)
        await client.post("/language", data={"lang": "en", "next": "/queue"})
        assert "Case queue" in (await client.get("/queue")).text
        client.cookies.delete(SESSION_COOKIE)
        answer = await client.post("/signin/dev", data={"name": "wang", "role": "agent", "regions": ["shenzhen"]})
        client.cookies.set(SESSION_COOKIE, answer.cookies[SESSION_COOKIE])
        assert "工单队列" in (await client.get("/queue", headers={"Accept-Language": "zh-CN"})).text


async def test_a_next_target_off_this_site_is_ignored(calls):
    async with await client_for(app_with(calls)) as client:
        answer = await client.post("/signin/dev", data={"name": "li", "role": "agent", "regions": ["shenzhen"],
                                                        "next": "//evil.example/"})
        assert answer.headers["location"] == "/"


async def test_ready_only_while_intake_and_cases_answer(calls):
    async with await client_for(app_with(calls, up=False)) as client:
        ready = await client.get("/health/ready")
        assert ready.status_code == 503 and json.loads(ready.text)["checks"] == {"intake": "down", "cases": "down"}
        assert (await client.get("/health/live")).status_code == 200
        assert "console_sign_ins_total" in (await client.get("/metrics")).text
    async with await client_for(app_with(calls)) as client:
        assert (await client.get("/health/ready")).status_code == 200
