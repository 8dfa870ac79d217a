"""The published v1 HTTP shapes (docs/architecture.md, section 2) keep working: a client
written against them sends exactly these bodies and gets exactly these answers."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from crm_contracts import topics
from crm_runtime.testing import event_of_type, make_event, wait_for_messages

from .conftest import token

pytestmark = pytest.mark.stack
RECEIVED = "crm.intake.contact.received.v1"


def v1_contact(channel: str, **extra):
    """`{channel, region, subject, body}`: the four fields v1 requires, nothing else."""
    return {"channel": channel, "region": "shenzhen", "subject": "物业费", "body": "物业费每月几号交？", **extra}


@pytest.mark.parametrize("channel", ["hotline", "forum", "front_desk", "letter"])
async def test_the_minimal_v1_body_of_every_channel_is_accepted(stack, intake, channel):
    r = await intake.post("/v1/contacts", json=v1_contact(channel), headers=token())
    assert r.status_code == 202, r.text
    contact_id = r.json()["contact_id"]
    [seen] = await wait_for_messages(stack.bootstrap, topics.INTAKE_CONTACTS,
                                     event_of_type(RECEIVED, contact_id=contact_id), timeout=30)
    data = seen.json()["data"]
    assert data["channel"] == channel
    # v1 has no letter_form: a letter is recorded with the form unknown, for staff to fill in.
    assert data.get("letter_form") is None


async def test_the_full_v1_body_is_accepted_and_every_field_arrives(stack, intake):
    source_ref = f"L-{uuid.uuid4().hex[:8]}"
    body = v1_contact(
        "letter",
        customer={"customer_id": f"cust-{uuid.uuid4().hex[:8]}", "name": "刘洋", "phone": "13700001111"},
        project="碧水湾", building="3", unit="1201", source_ref=source_ref,
        received_at=datetime(2026, 3, 1, 9, 30, tzinfo=UTC).isoformat(),
    )
    r = await intake.post("/v1/contacts", content=json.dumps(body), headers={
        **token(), "Content-Type": "application/json"})
    assert r.status_code == 202, r.text
    assert set(r.json()) >= {"contact_id"}
    [seen] = await wait_for_messages(stack.bootstrap, topics.INTAKE_CONTACTS,
                                     event_of_type(RECEIVED, contact_id=r.json()["contact_id"]), timeout=30)
    data = seen.json()["data"]
    assert (data["project"], data["building"], data["unit"], data["source_ref"]) == ("碧水湾", "3", "1201", source_ref)
    assert data["received_at"].startswith("2026-03-01T09:30:00")
    assert data["customer_id"]  # a provisional customer for the unknown caller


async def test_an_idempotency_key_or_a_repeated_source_ref_returns_the_same_contact_id(stack, intake):
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await intake.post("/v1/contacts", json=v1_contact("front_desk"), headers={**token(), **key})
    again = await intake.post("/v1/contacts", json=v1_contact("front_desk"), headers={**token(), **key})
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json()["contact_id"] == again.json()["contact_id"]

    ref = {"source_ref": f"call-{uuid.uuid4().hex[:8]}"}
    first = await intake.post("/v1/contacts", json=v1_contact("hotline", **ref), headers=token())
    again = await intake.post("/v1/contacts", json=v1_contact("hotline", **ref), headers=token())
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json()["contact_id"] == again.json()["contact_id"]
    # ...and nothing new was created: one ContactReceived for the two requests.
    await wait_for_messages(stack.bootstrap, topics.INTAKE_CONTACTS,
                            event_of_type(RECEIVED, contact_id=first.json()["contact_id"]), count=1, timeout=30)
    with pytest.raises(AssertionError):
        await wait_for_messages(stack.bootstrap, topics.INTAKE_CONTACTS,
                                event_of_type(RECEIVED, contact_id=first.json()["contact_id"]), count=2, timeout=3)


def _unit_delivered() -> dict:
    event = make_event("crm.partner.unit.delivered.v1", {
        "customer_id": f"c-{uuid.uuid4().hex[:6]}", "project": "碧水湾", "building": "3", "unit": "1201",
        "delivered_at": "2026-03-01T10:00:00+08:00", "fit_out": "bare"})
    return json.loads(event.model_dump_json(exclude_none=True))


async def test_partner_events_accepts_one_cloudevent_or_an_array_of_them(stack, intake):
    one = _unit_delivered()
    r = await intake.post("/v1/partner-events", json=one, headers=token(roles=["partner"]))
    assert r.status_code == 202, r.text
    several = [_unit_delivered(), _unit_delivered()]
    r = await intake.post("/v1/partner-events", json=several, headers=token(roles=["partner"]))
    assert r.status_code == 202, r.text
    ids = {e["id"] for e in [one, *several]}
    seen = await wait_for_messages(stack.bootstrap, topics.PARTNER_UNITS, lambda s: s.json()["id"] in ids,
                                   count=3, timeout=30)
    assert {s.json()["id"] for s in seen} == ids
