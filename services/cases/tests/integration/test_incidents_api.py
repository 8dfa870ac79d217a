"""Collective incidents for staff: five owners about one lift make an incident that the
region's staff find in the list and open with every case it groups; other regions' staff
cannot, and an unknown incident is a 404."""

from __future__ import annotations

import uuid

import pytest
from crm_runtime.testing import eventually

from .conftest import send_contact, token

pytestmark = pytest.mark.stack


async def test_an_incident_is_listed_for_its_region_and_shows_the_cases_it_groups(stack, cases):
    project = f"翠湖苑{uuid.uuid4().hex[:4]}"
    for channel in ["hotline", "forum", "front_desk", "hotline", "letter"]:
        await send_contact(stack, region="shanghai", project=project, building="2", channel=channel,
                           subject="电梯经常故障", body="2栋电梯又坏了，物业维修不及时，老人上下楼很困难。")
    headers = token(regions=["shanghai"])

    async def listed() -> dict | None:
        r = await cases.get("/v1/incidents", params={"region": "shanghai"}, headers=headers)
        assert r.status_code == 200, r.text
        found = [i for i in r.json()["items"] if i["project"] == project]
        return found[0] if found and found[0]["case_count"] == 5 else None

    summary = await eventually(listed, timeout=40)
    assert summary["severity"] == "major" and summary["customer_count"] == 5

    async def all_grouped() -> dict | None:
        r = await cases.get(f"/v1/incidents/{summary['incident_id']}", headers=headers)
        assert r.status_code == 200, r.text
        return r.json() if len(r.json()["cases"]) == 5 else None

    incident = await eventually(all_grouped, timeout=30)
    assert incident["project"] == project and incident["region"] == "shanghai"
    assert all(c["region"] == "shanghai" and c["case_number"] and c["is_open"] for c in incident["cases"])
    assert len({c["case_id"] for c in incident["cases"]}) == 5

    elsewhere = token(regions=["beijing"])
    assert (await cases.get(f"/v1/incidents/{summary['incident_id']}", headers=elsewhere)).status_code == 403
    theirs = await cases.get("/v1/incidents", headers=elsewhere)
    assert all(i["region"] == "beijing" for i in theirs.json()["items"])
    assert (await cases.get("/v1/incidents", params={"region": "shanghai"}, headers=elsewhere)).status_code == 403
    missing = await cases.get("/v1/incidents/CI-nothing", headers=headers)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    bad = await cases.get("/v1/incidents", params={"month": "2026-13"}, headers=headers)
    assert bad.status_code == 422 and "month" in bad.text
