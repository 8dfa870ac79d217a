"""Hostile input at intake's doors gets a problem+json 4xx naming the field, never a 500:
a forum timestamp too big for the clock, bodies nested thousands of levels deep, and
absurd values a partner's system could send."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from crm_runtime.testing import make_event
from intake.entrypoints.http import forum_signature

from .conftest import FORUM_SECRET, token

pytestmark = pytest.mark.stack
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module", autouse=True)
async def joined_before_shutdown(intake):
    """These tests only speak HTTP and end within seconds; an app stopped while its
    consumers are still joining their group takes longer to shut down than the test
    helper waits, so let them join first."""
    yield
    consumers = [getattr(s, "consumer", None) for s in intake.app.state.ctx.broker.subscribers]
    deadline = asyncio.get_running_loop().time() + 60
    while any(c is not None and hasattr(c, "assignment") and not c.assignment() for c in consumers):
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.5)


def call(**overrides) -> dict:
    data = {"call_id": f"call-{uuid.uuid4().hex[:8]}", "caller_phone": "13800018000",
            "started_at": "2026-03-01T09:30:00+08:00", "duration_s": 60, "summary": "a call"}
    data.update(overrides)
    return json.loads(make_event("crm.partner.hotline.call-recorded.v1", data).model_dump_json())


def assert_problem(response, status: int, field: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"][0]["field"] == field


@pytest.mark.parametrize("timestamp", ["9" * 400, "-" + "9" * 400, "1e400", "9" * 5000])
async def test_a_huge_forum_timestamp_is_refused_naming_the_header(intake, timestamp):
    body = b'{"post_id": "p"}'
    r = await intake.post("/v1/channels/forum/webhook", content=body, headers={
        "X-Forum-Timestamp": timestamp, "X-Forum-Signature": forum_signature(FORUM_SECRET, timestamp, body),
        "Content-Type": "application/json"})
    assert_problem(r, 401, "X-Forum-Timestamp")


@pytest.mark.parametrize("opener, closer", [('{"a":', "}"), ("[", "]")])
async def test_a_deeply_nested_partner_body_is_refused(intake, opener, closer):
    depth = 5000
    r = await intake.post("/v1/partner-events", content=(opener * depth + "1" + closer * depth).encode(),
                          headers={**token(roles=["partner"]), "Content-Type": "application/json"})
    assert_problem(r, 422, "body")


async def test_a_deeply_nested_field_of_a_partner_event_is_refused_by_name(intake):
    text = json.dumps(call(notes=0)).replace('"notes": 0', '"notes": ' + '{"a":' * 100 + "1" + "}" * 100)
    r = await intake.post("/v1/partner-events", content=text.encode(),
                          headers={**token(roles=["partner"]), "Content-Type": "application/json"})
    assert_problem(r, 422, "data.notes")


@pytest.mark.parametrize(
    ("data", "field"),
    [({"duration_s": 10**30}, "data.duration_s"), ({"caller_phone": "1"}, "data.caller_phone"),
     ({"started_at": "9999-01-01T00:00:00+08:00"}, "data.started_at")],
)
async def test_absurd_values_are_refused_at_the_partner_gateway(intake, data, field):
    r = await intake.post("/v1/partner-events", json=[call(), call(**data)], headers=token(roles=["partner"]))
    assert_problem(r, 422, f"[1].{field}")


async def test_a_deeply_nested_contact_body_is_refused(intake):
    depth = 5000
    r = await intake.post("/v1/contacts", content=('{"a":' * depth + "1" + "}" * depth).encode(),
                          headers={**token(), "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM
