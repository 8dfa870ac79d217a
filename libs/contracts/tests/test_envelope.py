"""The envelope: CloudEvents attributes, the region extension, times with an offset."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from crm_contracts.envelope import CloudEvent, new_event
from crm_contracts.events.cases import CaseClosed
from crm_contracts.events.partner import Milestone, MilestoneReached
from crm_contracts.regions import KNOWN_REGIONS, case_number
from pydantic import ValidationError

MILESTONE = MilestoneReached(
    milestone_id="ms-1",
    project="SZ-LHY",
    milestone=Milestone.TOPPED_OUT,
    occurred_at=datetime(2026, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=8))),
)


def test_new_event_fills_id_time_and_serialises_the_payload():
    event = new_event(
        "crm.partner.project.milestone-reached.v1",
        source="/partners/pm",
        subject="ms-1",
        region="shenzhen",
        data=MILESTONE,
    )
    assert uuid.UUID(event.id).version == 4
    assert event.time.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - event.time) < timedelta(minutes=1)
    assert event.specversion == "1.0"
    assert event.datacontenttype == "application/json"
    assert event.data["occurred_at"] == "2026-03-01T09:00:00+08:00"
    assert event.data["milestone"] == "topped_out"


def test_new_event_keeps_a_given_id_and_time():
    when = datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=8)))
    event = new_event(
        "crm.partner.project.milestone-reached.v1",
        source="/partners/pm",
        subject="ms-1",
        region="beijing",
        data=MILESTONE,
        id="fixed-id",
        time=when,
    )
    assert (event.id, event.time) == ("fixed-id", when)
    assert '"time":"2026-03-01T09:30:00+08:00"' in event.model_dump_json()


def test_new_event_refuses_a_payload_of_another_type():
    with pytest.raises(TypeError, match="MilestoneReached"):
        new_event(
            "crm.partner.project.milestone-reached.v1",
            source="/crm/cases",
            subject="case-1",
            region="shenzhen",
            data=CaseClosed.model_construct(),
        )


def test_a_naive_time_is_refused():
    with pytest.raises(ValidationError, match="timezone"):
        new_event(
            "crm.partner.project.milestone-reached.v1",
            source="/partners/pm",
            subject="ms-1",
            region="shenzhen",
            data={},
            time=datetime(2026, 3, 1, 9, 30),
        )


@pytest.mark.parametrize("region", ["Shenzhen", "SZ", "hongkong", ""])
def test_the_region_must_be_a_known_lower_case_code(region: str):
    with pytest.raises(ValidationError, match="region"):
        new_event("t", source="/s", subject="x", region=region, data={})


def test_unknown_extension_attributes_are_kept():
    event = CloudEvent.model_validate(
        {
            "specversion": "1.0",
            "id": "1",
            "type": "t",
            "source": "/s",
            "time": "2026-03-01T09:30:00Z",
            "subject": "x",
            "region": "wuhan",
            "data": {},
            "partitionkey": "x",
        }
    )
    assert event.model_dump()["partitionkey"] == "x"


def test_every_region_has_a_distinct_case_prefix():
    prefixes = [info.case_prefix for info in KNOWN_REGIONS.values()]
    assert len(set(prefixes)) == len(prefixes) == 9
    assert KNOWN_REGIONS["shenzhen"] == ("SZ", "深圳", "Shenzhen")
    assert all(code == code.lower() for code in KNOWN_REGIONS)


def test_case_number_format():
    assert case_number("shenzhen", 2026, 123) == "SZ-2026-000123"
    with pytest.raises(ValueError, match="unknown region"):
        case_number("atlantis", 2026, 1)
