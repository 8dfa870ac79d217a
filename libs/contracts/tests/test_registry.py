"""The registry and `parse_event`: every type round-trips, every bad input is explained."""

from __future__ import annotations

import json
from typing import Any

import pytest
from crm_contracts import topics
from crm_contracts.envelope import new_event
from crm_contracts.events.cases import CaseOpened
from crm_contracts.events.intake import ContactReceived
from crm_contracts.examples import EXAMPLE_DATA, example_event
from crm_contracts.registry import (
    EVENT_TYPES,
    TYPE_BY_MODEL,
    ContractError,
    event_type_of,
    events_consumed_by,
    parse_event,
    spec_for,
)

# The event types first published with v1, which partners code against: this list is the
# specification (docs/architecture.md, section 2).
DOCUMENTED_TYPES = [
    "crm.partner.customer.upserted.v1",
    "crm.partner.sales.contract-signed.v1",
    "crm.partner.project.milestone-reached.v1",
    "crm.partner.unit.delivered.v1",
    "crm.partner.unit.occupancy-changed.v1",
    "crm.partner.repair.work-order-completed.v1",
    "crm.partner.hotline.call-recorded.v1",
    "crm.partner.forum.post-published.v1",
    "crm.intake.contact.received.v1",
    "crm.cases.case.opened.v1",
    "crm.cases.case.validated.v1",
    "crm.cases.case.classified.v1",
    "crm.cases.case.assigned.v1",
    "crm.cases.case.escalated.v1",
    "crm.cases.case.progress-reported.v1",
    "crm.cases.case.resolved.v1",
    "crm.cases.case.customer-confirmed.v1",
    "crm.cases.case.closed.v1",
    "crm.cases.case.reopened.v1",
    "crm.cases.case.sla-breached.v1",
    "crm.cases.case.lesson-recorded.v1",
    "crm.cases.collective-incident.detected.v1",
    "crm.notifications.notification.sent.v1",
    "crm.notifications.notification.failed.v1",
    "crm.surveys.survey.scheduled.v1",
    "crm.surveys.survey.excluded.v1",
    "crm.surveys.survey.completed.v1",
    "crm.surveys.survey.expired.v1",
]


# Additions to v1 beyond the document: the procedure steps it does not name.
ADDED_CASE_TYPES = [
    f"crm.cases.case.{step}.v1"
    for step in (
        "contact-attached",
        "assessed",
        "investigation-started",
        "findings-recorded",
        "legal-opinion-recorded",
        "handling-started",
        "department-approved",
        "waiting-for-customer",
        "customer-responded",
        "on-site-responded",
        "collective-linked",
    )
]


def test_every_documented_type_is_registered():
    assert sorted(EVENT_TYPES) == sorted(DOCUMENTED_TYPES + ADDED_CASE_TYPES)


def test_every_topic_carries_at_least_one_type():
    used = {spec.topic for spec in EVENT_TYPES.values()}
    assert set(topics.PARTNER_TOPICS + topics.PLATFORM_TOPICS) == used


def test_types_live_on_their_producers_topic():
    for spec in EVENT_TYPES.values():
        producer = spec.type.split(".")[1]
        assert spec.topic.split(".")[1] == producer, spec.type
        assert spec.producer == (topics.PARTNERS if producer == "partner" else producer)


def test_class_names_follow_the_type():
    assert TYPE_BY_MODEL[CaseOpened] == "crm.cases.case.opened.v1"
    assert event_type_of(ContactReceived) == "crm.intake.contact.received.v1"
    assert len(TYPE_BY_MODEL) == len(EVENT_TYPES)
    with pytest.raises(KeyError, match="dict"):
        event_type_of(dict)  # type: ignore[arg-type]


def test_who_consumes_what():
    def consumed(service: str) -> set[str]:
        return {spec.type for spec in events_consumed_by(service)}

    assert consumed("intake") == {
        "crm.partner.customer.upserted.v1",
        "crm.partner.unit.delivered.v1",
        "crm.partner.unit.occupancy-changed.v1",
        "crm.partner.hotline.call-recorded.v1",
        "crm.partner.forum.post-published.v1",
    }
    assert "crm.intake.contact.received.v1" in consumed("cases")
    assert "crm.surveys.survey.completed.v1" in consumed("cases")
    assert "crm.partner.repair.work-order-completed.v1" in consumed("cases")
    assert "crm.cases.case.closed.v1" in consumed("notifications")
    assert "crm.partner.project.milestone-reached.v1" in consumed("notifications")
    assert "crm.partner.sales.contract-signed.v1" in consumed("surveys")
    assert consumed("reporting") == set(EVENT_TYPES)


@pytest.mark.parametrize("type_", sorted(EXAMPLE_DATA))
def test_each_type_round_trips_through_json(type_: str):
    spec = spec_for(type_)
    payload = spec.data_model.model_validate(EXAMPLE_DATA[type_])
    event = new_event(type_, source="/tests", subject="agg-1", region="shenzhen", data=payload)

    for wire in (event.model_dump_json(), event.model_dump_json(exclude_none=True).encode()):
        parsed, data = parse_event(wire)
        assert parsed == event
        assert type(data) is spec.data_model
        assert data == payload


@pytest.mark.parametrize("type_", sorted(EXAMPLE_DATA))
def test_each_example_event_is_valid(type_: str):
    event, data = parse_event(example_event(type_).model_dump(mode="json"))
    assert event.type == type_
    assert isinstance(data, spec_for(type_).data_model)


def _contact_event(**changes: Any) -> dict[str, Any]:
    event = example_event("crm.intake.contact.received.v1").model_dump(mode="json")
    event.update(changes)
    return event


def _error(raw: Any) -> ContractError:
    with pytest.raises(ContractError) as caught:
        parse_event(raw)
    return caught.value


def test_not_json():
    error = _error(b"{not json")
    assert "not JSON" in str(error)


def test_not_utf8():
    assert "UTF-8" in str(_error(b"\xff\xfe"))


@pytest.mark.parametrize(
    ("raw", "kind"), [("[]", "an array"), ('"x"', "a string"), ("3", "a number")]
)
def test_not_an_object(raw: str, kind: str):
    assert f"must be a JSON object (a structured-mode CloudEvent), got {kind}" in str(_error(raw))


def test_missing_region():
    event = _contact_event()
    del event["region"]
    error = _error(event)
    assert str(error) == "region: Field required"
    assert error.field == "region"


def test_unknown_region():
    error = _error(_contact_event(region="hongkong"))
    assert str(error).startswith("region: unknown region 'hongkong'")
    assert error.field == "region"


def test_wrong_specversion():
    error = _error(_contact_event(specversion="0.3"))
    assert str(error) == "specversion: Input should be '1.0'"


def test_unknown_type():
    error = _error(_contact_event(type="crm.intake.contact.lost.v1"))
    assert str(error) == "type: unknown event type 'crm.intake.contact.lost.v1'"
    assert error.field == "type"


def test_naive_event_time():
    assert str(_error(_contact_event(time="2026-03-01T09:30:00"))) == (
        "time: Input should have timezone info"
    )


def test_bad_data_names_the_field():
    event = _contact_event()
    event["data"]["channel"] = "wechat"
    error = _error(json.dumps(event))
    assert str(error) == (
        "data.channel: Input should be 'hotline', 'forum', 'front_desk' or 'letter'"
    )
    assert error.field == "data.channel"


def test_nested_data_errors_name_the_item():
    event = _contact_event()
    event["data"]["attachments"][0]["size"] = -1
    error = _error(event)
    assert error.field == "data.attachments[0].size"


def test_every_problem_is_listed():
    event = _contact_event()
    del event["data"]["contact_id"]
    event["data"]["received_at"] = "2026-03-01T09:30:00"
    message = str(_error(event))
    assert "data.contact_id: Field required" in message
    assert "data.received_at: Input should have timezone info" in message


def test_data_must_be_an_object():
    error = _error(_contact_event(data="hello"))
    assert error.field == "data"


def test_unknown_fields_are_ignored():
    event = _contact_event(traceparent_hint="x")
    event["data"]["sentiment"] = "angry"
    parsed, data = parse_event(event)
    assert not hasattr(data, "sentiment")
    assert parsed.model_dump()["traceparent_hint"] == "x"


def test_contract_error_is_a_value_error():
    assert issubclass(ContractError, ValueError)
