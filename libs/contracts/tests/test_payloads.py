"""Rules inside the payloads: times with an offset, scales, consistency between fields."""

from __future__ import annotations

from typing import Any

import pytest
from crm_contracts.examples import EXAMPLE_DATA
from crm_contracts.registry import EVENT_TYPES, spec_for
from pydantic import AwareDatetime, BaseModel, ValidationError


def _payload(type_: str, **changes: Any) -> BaseModel:
    return spec_for(type_).data_model.model_validate({**EXAMPLE_DATA[type_], **changes})


def _datetime_fields(model: type[BaseModel]) -> list[str]:
    return [
        name
        for name, field in model.model_fields.items()
        if AwareDatetime in (field.annotation, *getattr(field.annotation, "__args__", ()))
    ]


@pytest.mark.parametrize("type_", sorted(EVENT_TYPES))
def test_naive_timestamps_are_refused(type_: str):
    fields = _datetime_fields(spec_for(type_).data_model)
    if type_ == "crm.partner.customer.upserted.v1":
        assert not fields  # a whole record, as of the envelope's time
    for name in fields:
        with pytest.raises(ValidationError, match="timezone"):
            _payload(type_, **{name: "2026-03-01T09:30:00"})


def test_every_timestamp_field_is_aware():
    """No payload field may be a plain datetime: times without offset are ambiguous."""
    from datetime import datetime

    for spec in EVENT_TYPES.values():
        for name, field in spec.data_model.model_fields.items():
            args = (field.annotation, *getattr(field.annotation, "__args__", ()))
            assert datetime not in args, f"{spec.type}: {name} is a naive-capable datetime"


@pytest.mark.parametrize("score", [0, 6, -1])
def test_scores_are_on_the_1_to_5_scale(score: int):
    with pytest.raises(ValidationError, match=r"scores\.overall"):
        _payload("crm.surveys.survey.completed.v1", scores={"overall": score})


@pytest.mark.parametrize("nps", [-1, 11])
def test_nps_is_0_to_10(nps: int):
    with pytest.raises(ValidationError, match="nps"):
        _payload("crm.surveys.survey.completed.v1", nps=nps)


def test_nps_bounds_are_allowed():
    assert _payload("crm.surveys.survey.completed.v1", nps=0).nps == 0  # type: ignore[attr-defined]
    assert _payload("crm.surveys.survey.completed.v1", nps=10).nps == 10  # type: ignore[attr-defined]


def test_a_survey_is_not_both_satisfied_and_dissatisfied():
    with pytest.raises(ValidationError, match="both"):
        _payload("crm.surveys.survey.completed.v1", satisfied=True, dissatisfied=True)


@pytest.mark.parametrize(
    ("kind", "needed"),
    [
        ("case_return_visit", "case_id"),
        ("repair_return_visit", "work_order_id"),
        ("sales_return_visit", "contract_id"),
    ],
)
def test_a_return_visit_names_what_it_follows(kind: str, needed: str):
    with pytest.raises(ValidationError, match=needed):
        _payload("crm.surveys.survey.scheduled.v1", kind=kind, case_id=None)
    payload = _payload("crm.surveys.survey.scheduled.v1", kind=kind, **{needed: "x-1"})
    assert getattr(payload, needed) == "x-1"


def test_a_notification_has_a_recipient():
    with pytest.raises(ValidationError, match="recipient"):
        _payload("crm.notifications.notification.sent.v1", customer_id=None)
    staff = _payload(
        "crm.notifications.notification.sent.v1",
        customer_id=None,
        staff_recipient="sup-1",
        channel="staff",
    )
    assert staff.staff_recipient == "sup-1"  # type: ignore[attr-defined]


def test_a_recognised_contact_names_its_customer():
    with pytest.raises(ValidationError, match="customer_id"):
        _payload("crm.intake.contact.received.v1", customer_id=None, customer_match="probable")
    unknown = _payload("crm.intake.contact.received.v1", customer_id=None, customer_match="unknown")
    assert unknown.customer_id is None  # type: ignore[attr-defined]


def test_letter_form_only_for_letters():
    with pytest.raises(ValidationError, match="letter_form"):
        _payload("crm.intake.contact.received.v1", channel="hotline", letter_form="fax")
    letter = _payload("crm.intake.contact.received.v1", channel="letter", letter_form="fax")
    assert letter.letter_form == "fax"  # type: ignore[attr-defined]


@pytest.mark.parametrize("number", ["SZ-2026-123", "sz-2026-000123", "2026-000123"])
def test_case_numbers_are_human_readable(number: str):
    with pytest.raises(ValidationError, match="case_number"):
        _payload("crm.cases.case.opened.v1", case_number=number)


@pytest.mark.parametrize(
    ("type_", "field", "value"),
    [
        ("crm.partner.project.milestone-reached.v1", "milestone", "roof_party"),
        ("crm.partner.unit.delivered.v1", "fit_out", "luxury"),
        ("crm.partner.unit.occupancy-changed.v1", "occupancy", "sold"),
        ("crm.partner.repair.work-order-completed.v1", "category", "roof"),
        ("crm.intake.contact.received.v1", "kind_hint", "threat"),
        ("crm.intake.contact.received.v1", "customer_match", "maybe"),
        ("crm.cases.case.classified.v1", "severity", "urgent"),
        ("crm.cases.case.validated.v1", "outcome", "maybe"),
        ("crm.cases.case.closed.v1", "outcome", "done"),
        ("crm.cases.case.opened.v1", "status", "pending"),
        ("crm.cases.case.opened.v1", "category", "amenities"),
        ("crm.notifications.notification.sent.v1", "channel", "wechat"),
        ("crm.notifications.notification.sent.v1", "language", "fr"),
        ("crm.surveys.survey.excluded.v1", "kind", "weekly"),
        ("crm.partner.customer.upserted.v1", "preferred_language", "zh"),
    ],
)
def test_enumerations_refuse_unknown_values(type_: str, field: str, value: str):
    with pytest.raises(ValidationError, match=field):
        _payload(type_, **{field: value})


@pytest.mark.parametrize(
    ("type_", "field"),
    [
        ("crm.intake.contact.received.v1", "contact_id"),
        ("crm.cases.case.opened.v1", "case_id"),
        ("crm.surveys.survey.completed.v1", "survey_id"),
        ("crm.partner.hotline.call-recorded.v1", "call_id"),
        ("crm.notifications.notification.failed.v1", "cause_event_id"),
    ],
)
def test_ids_are_never_empty(type_: str, field: str):
    with pytest.raises(ValidationError, match=field):
        _payload(type_, **{field: ""})


PERSONAL_FIELDS = {"phone", "phones", "email", "name", "address", "caller_phone", "author_phone"}


def test_platform_events_carry_ids_not_personal_data():
    """PIPL: erasure must reach Kafka, so platform events name customers by id. The one
    exception, ContactReceived.reply_to, only exists for a caller nobody knows yet."""
    for spec in EVENT_TYPES.values():
        if spec.topic.startswith("crm.partner."):
            continue
        assert not PERSONAL_FIELDS & set(spec.data_model.model_fields), spec.type
