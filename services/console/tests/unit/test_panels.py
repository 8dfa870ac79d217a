"""The screens over the other services, against fakes shaped as those services answer:
contacts without a case (cases), return visits (surveys), a customer's messages
(notifications), KPIs (reporting) — and the marked empty panel while one is not there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from console.bootstrap import build_services, create_app
from console.settings import ConsoleSettings

SECRET = "console-unit-tests-secret-of-32-bytes-or-more"

ROUTES: dict[tuple[str, str], Any] = {
    ("GET", "/v1/contacts"): {"items": [{"contact_id": "k1", "kind": "consultation", "channel": "hotline",
                                         "subject": "交房时间咨询", "status": "unanswered",
                                         "received_at": "2026-03-02T10:00:00+08:00"}], "next_cursor": None},
    ("GET", "/v1/contacts/k1"): {"contact_id": "k1", "kind": "consultation", "status": "unanswered",
                                 "subject": "交房时间咨询", "body": "请问几号交房？", "channel": "hotline"},
    ("POST", "/v1/contacts/k1/answer"): (422, {"title": "Invalid request", "status": 422, "errors": [
        {"field": "answer", "message": "too short", "type": "string_too_short"}]}),
    ("POST", "/v1/contacts/k1/open-case"): {"case_id": "c9"},
    ("GET", "/v1/worklist"): {"items": [{"survey_id": "s1", "kind": "complaint_return", "customer_id": "cu1",
                                         "due_at": "2026-03-01T10:00:00+08:00", "urgency": "overdue"}]},
    ("GET", "/v1/customers/cu1/messages"): {"customer_id": "cu1", "messages": [
        {"message_id": "m1", "channel": "sms", "status": "delivered", "to": "138****5678",
         "sent_at": "2026-03-02T09:00:00+08:00", "subject": None}]},
    ("GET", "/v1/kpis"): {"region": "shenzhen", "month": "2026-03", "kpis": [
        {"kpi": "reply_timeliness", "name": {"zh-CN": "答复及时率", "en": "Reply timeliness"}, "value": 0.9,
         "unit": "ratio", "target": 0.95, "comparison": ">=", "met": False},
        {"kpi": "cases_opened", "name": {"zh-CN": "投诉量", "en": "Cases opened"}, "value": 12, "unit": "count",
         "target": None, "comparison": None, "met": None}]},
}


def transport(sent: list[httpx.Request], down: frozenset[str] = frozenset()) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.url.port and str(request.url.port)[-1] in down:
            raise httpx.ConnectError("refused", request=request)
        found = ROUTES.get((request.method, request.url.path))
        if found is None:
            return httpx.Response(404, json={"title": "Not found", "status": 404})
        status, body = found if isinstance(found, tuple) else (200, found)
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handle)


@asynccontextmanager
async def signed_in(sent: list[httpx.Request], down: frozenset[str] = frozenset(),
                    lang: str = "zh-CN") -> AsyncIterator[httpx.AsyncClient]:
    settings = ConsoleSettings(CRM_JWT_SECRET=SECRET, CRM_DEV_MODE=True)
    app = create_app(settings, services=build_services(settings, transport(sent, down)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as client:
        await client.post("/signin/dev", data={"name": "li", "role": "agent", "regions": ["shenzhen"]})
        if lang != "zh-CN":
            await client.post("/language", data={"lang": lang})
        yield client


async def test_a_consultation_is_listed_refused_when_blank_and_opened_as_a_case():
    sent: list[httpx.Request] = []
    async with signed_in(sent) as client:
        listing = (await client.get("/consultations")).text
        assert "交房时间咨询" in listing and "待答复" in listing
        refused = await client.post("/consultations/k1/answer", data={"answer": " "})
        assert refused.status_code == 422 and "请填写「答复」" in refused.text
        opened = await client.post("/consultations/k1/open-case")
        assert opened.headers["location"] == "/cases/c9"
    assert any(r.url.path == "/v1/contacts" and r.url.params.get("status") == "unanswered" for r in sent)


async def test_return_visits_messages_and_kpis_from_their_services():
    sent: list[httpx.Request] = []
    async with signed_in(sent, lang="en") as client:
        visits = (await client.get("/returns")).text
        assert "Overdue" in visits and "/returns/s1" in visits
        messages = (await client.get("/customers/cu1/messages")).text
        assert "Delivered" in messages and "138****5678" in messages
        kpis = (await client.get("/kpis?month=2026-03")).text
        assert "Reply timeliness" in kpis and "90.0 %" in kpis and "95.0 %" in kpis
        assert 'class="breached" data-kpi="reply_timeliness"' in kpis
    assert any(r.url.path == "/v1/worklist" and r.url.params["region"] == "shenzhen" for r in sent)


async def test_a_service_not_there_yet_shows_a_marked_empty_panel():
    sent: list[httpx.Request] = []
    # Ports 8003/8004/8005 (notifications, surveys, reporting) refuse connections.
    async with signed_in(sent, down=frozenset("345")) as client:
        for path in ("/returns", "/kpis"):
            page = await client.get(path)
            assert page.status_code == 200 and 'data-testid="panel-missing"' in page.text
        assert 'data-testid="messages-missing"' in (await client.get("/customers/cu1/messages")).text


async def test_the_caller_lookup_says_it_is_not_available_while_intake_has_no_lookup():
    sent: list[httpx.Request] = []
    async with signed_in(sent) as client:
        short = (await client.get("/desk/caller", params={"phone": "138"})).text
        assert "caller-unavailable" not in short  # nothing asked for three digits
        typed = (await client.get("/desk/caller", params={"phone": "138 1234 5678", "region": "shenzhen"})).text
        assert 'data-testid="caller-unavailable"' in typed
    asked = [r for r in sent if r.url.path == "/v1/customers/lookup"]
    assert len(asked) == 1 and asked[0].url.params["phone"] == "13812345678"


async def test_a_visit_recorded_for_a_survey_that_does_not_exist_is_told_not_a_failure():
    sent: list[httpx.Request] = []
    ROUTES[("POST", "/v1/surveys/nope/answers")] = (404, {"title": "Not found", "status": 404,
                                                          "detail": "No survey nope."})
    async with signed_in(sent) as client:
        page = await client.post("/returns/nope", data={"mode": "phone", "q_overall": "5"})
        assert page.status_code == 404 and "未找到" in page.text
        # A control character from a forged link stays inside the survey id's segment.
        odd = await client.post("/returns/%01x%3F", data={"mode": "phone"})
        assert odd.status_code == 404
    del ROUTES[("POST", "/v1/surveys/nope/answers")]
    assert any(r.url.raw_path == b"/v1/surveys/%01x%3F/answers" for r in sent)
