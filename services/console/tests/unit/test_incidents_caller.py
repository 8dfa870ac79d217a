"""The incidents pages and the front desk's caller recognition over fake services: an
incident shows every case it groups, closed ones too; the caller is recognised, unknown,
or the lookup is said to be unavailable — never a broken page."""

from __future__ import annotations

import httpx
import pytest
from console.bootstrap import build_services, create_app
from console.settings import ConsoleSettings

from .test_pages import SECRET, client_for, sign_in

INCIDENT = {
    "incident_id": "CI-abc", "region": "shenzhen", "project": "翠湖苑", "building": "2",
    "category": "engineering_quality", "severity": "major", "customer_count": 6, "channels": ["hotline", "forum"],
    "window_start": "2026-12-01T01:00:00+00:00", "window_end": "2026-12-02T01:00:00+00:00",
    "cases": [
        {"case_id": "c1", "case_number": "SZ-2026-000101", "status": "handling", "severity": "major",
         "category": "engineering_quality", "subject": "电梯故障", "sla_due_at": "2030-01-01T00:00:00+00:00",
         "is_open": True},
        {"case_id": "c2", "case_number": "SZ-2026-000102", "status": "closed", "severity": "major",
         "category": "engineering_quality", "subject": "电梯故障", "sla_due_at": None, "is_open": False},
    ],
}


def handler(request: httpx.Request) -> httpx.Response:
    path, phone = request.url.path, request.url.params.get("phone")
    if path == "/v1/incidents":
        summary = {k: v for k, v in INCIDENT.items() if k != "cases"} | {"case_count": 2}
        return httpx.Response(200, json={"items": [summary]})
    if path == "/v1/incidents/CI-abc":
        return httpx.Response(200, json=INCIDENT)
    if path == "/v1/customers/lookup" and phone == "13912345678":
        return httpx.Response(200, json={"customer_id": "cust-9", "name": "陈明", "names": ["陈明"],
                                         "phones": ["13912345678"],
                                         "units": [{"project": "翠湖苑", "building": "5", "unit": "802"}]})
    if path == "/v1/customers/lookup" and phone == "13700000000":
        return httpx.Response(404, json={"title": "Not found", "status": 404,
                                         "errors": [{"field": "phone", "message": "No customer"}]})
    if path == "/v1/customers/lookup":
        raise httpx.ConnectError("refused", request=request)
    return httpx.Response(404, json={"title": "Not found", "status": 404})


@pytest.fixture
async def client():
    settings = ConsoleSettings(CRM_JWT_SECRET=SECRET, CRM_DEV_MODE=True)
    app = create_app(settings, services=build_services(settings, httpx.MockTransport(handler)))
    async with await client_for(app) as c:
        await sign_in(c)
        yield c


async def test_an_incident_page_lists_every_case_it_groups_open_and_closed(client):
    listed = await client.get("/incidents")
    assert listed.status_code == 200 and 'href="/incidents/CI-abc"' in listed.text and "翠湖苑" in listed.text
    page = await client.get("/incidents/CI-abc")
    assert page.status_code == 200
    assert "SZ-2026-000101" in page.text and "SZ-2026-000102" in page.text
    assert "共 2 个工单，其中 1 个未结案" in page.text
    missing = await client.get("/incidents/CI-none")
    assert missing.status_code == 404


async def test_the_caller_is_recognised_unknown_or_the_lookup_unavailable(client):
    found = await client.get("/desk/caller", params={"phone": "139 1234 5678", "region": "shenzhen"})
    assert 'data-testid="caller-found"' in found.text and "陈*" in found.text and "cust-9" in found.text
    assert "翠湖苑 5-802" in found.text and "陈明" not in found.text
    unknown = await client.get("/desk/caller", params={"phone": "13700000000", "region": "shenzhen"})
    assert 'data-testid="caller-unknown"' in unknown.text
    down = await client.get("/desk/caller", params={"phone": "13600000000", "region": "shenzhen"})
    assert down.status_code == 200 and 'data-testid="caller-unavailable"' in down.text
