"""Collective incidents: thresholds, distinct customers, window, crisis, channels, ids."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cases.domain.collective import (
    CollectiveRules,
    ContactFact,
    collective_key,
    detect_collective,
    query_key,
)
from cases.domain.events import COLLECTIVE_INCIDENT_DETECTED
from cases.domain.severity import Severity

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=SH)
RULES = CollectiveRules()  # 5 customers, crisis at 20, 24 h
CHANNELS = ("hotline", "forum", "front_desk", "letter")


def fact(i: int, *, minutes: int | None = None, customer: str | None = "same", **over):
    values = {
        "contact_id": f"ct-{i}",
        "received_at": T0 + timedelta(minutes=i if minutes is None else minutes),
        "project": "Harbour View",
        "category": "engineering_quality",
        "building": "3",
        "customer_id": f"cu-{i}" if customer == "same" else customer,
        "channel": CHANNELS[i % len(CHANNELS)],
        "case_id": f"case-{i}",
    }
    values.update(over)
    return ContactFact(**values)


def test_at_threshold_a_major_incident_across_channels():
    window = [fact(i) for i in range(4)]
    decision = detect_collective(window, fact(4), RULES)
    assert decision is not None
    assert decision.severity is Severity.MAJOR
    assert decision.customer_count == 5
    assert decision.new_level is True
    assert set(decision.channels) == {"hotline", "forum", "front_desk", "letter"}
    assert decision.contact_ids == tuple(f"ct-{i}" for i in range(5))
    assert decision.case_ids == tuple(f"case-{i}" for i in range(5))
    assert decision.key == collective_key("Harbour View", "3", "engineering_quality")
    assert decision.window_start == T0


def test_below_threshold_nothing():
    assert detect_collective([fact(i) for i in range(3)], fact(3), RULES) is None


def test_distinct_customers_only():
    window = [fact(i, customer="cu-1") for i in range(10)]
    assert detect_collective(window, fact(10, customer="cu-2"), RULES) is None
    # unknown callers are grouped but not counted, unless a reporter key tells them apart
    anonymous = [fact(i, customer=None) for i in range(10)]
    assert detect_collective(anonymous, fact(10), RULES) is None
    keyed = [fact(i, customer=None, reporter_key=f"phone-{i}") for i in range(4)]
    assert detect_collective(keyed, fact(4), RULES) is not None


def test_window_expiry():
    old = [fact(i, minutes=i) for i in range(4)]
    late = fact(4, minutes=24 * 60 + 10)  # past the 24 h window of all four
    assert detect_collective(old, late, RULES) is None
    within = fact(4, minutes=24 * 60 - 1)
    assert detect_collective(old, within, RULES) is not None


def test_out_of_order_contact_joins_a_later_window():
    later = [fact(i, minutes=60 + i) for i in range(4)]
    decision = detect_collective(later, fact(9, minutes=0), RULES)
    assert decision is not None and decision.window_start == T0


def test_crisis_threshold_and_media():
    window = [fact(i) for i in range(19)]
    decision = detect_collective(window, fact(19), RULES)
    assert decision.severity is Severity.CRISIS and decision.customer_count == 20
    assert decision.new_level is True
    again = detect_collective([*window, fact(19)], fact(20), RULES)
    assert again.severity is Severity.CRISIS and again.new_level is False
    assert again.incident_id == decision.incident_id

    media = [fact(i) for i in range(4)]
    decision = detect_collective(media, fact(4, mentions_media=True), RULES)
    assert decision.severity is Severity.CRISIS and "media" in decision.reasons
    # media below the customer threshold is not a collective incident (it is a crisis case)
    assert detect_collective(media[:2], fact(4, mentions_media=True), RULES) is None


def test_same_matter_only():
    others = [
        fact(0, project="Other Park"),
        fact(1, category="property_management"),
        fact(2, building="7"),
        fact(3),
    ]
    assert detect_collective(others, fact(4), RULES) is None
    # contacts that do not say the building count for the project
    no_building = [fact(i, building=None) for i in range(4)]
    decision = detect_collective(no_building, fact(4), RULES)
    assert decision is not None and decision.building == "3"
    # without any building the incident is project-wide
    decision = detect_collective(no_building, fact(4, building=None), RULES)
    assert decision.building is None
    assert decision.key == collective_key("Harbour View", None, "engineering_quality")


def test_deterministic_incident_id_and_escalation_flags():
    window = [fact(i) for i in range(4)]
    first = detect_collective(window, fact(4), RULES)
    same = detect_collective(list(reversed(window)), fact(4), RULES)
    assert first.incident_id == same.incident_id and first.incident_id.startswith("CI-")
    sixth = detect_collective([*window, fact(4)], fact(5), RULES)
    assert sixth.incident_id == first.incident_id
    assert sixth.new_level is False
    # a repeat contact from the same customer changes nothing
    repeat = detect_collective([*window, fact(4)], fact(6, customer="cu-1"), RULES)
    assert repeat.customer_count == 5 and repeat.new_level is False


def test_query_key_and_event():
    new = fact(4)
    assert query_key(new) == "Harbour View|*|engineering_quality"
    assert query_key(fact(1, project=None)) is None
    decision = detect_collective([fact(i) for i in range(4)], new, RULES)
    event_type, event = decision.event("shenzhen", T0 + timedelta(minutes=5))
    payload = event.model_dump(mode="json")
    assert event_type == COLLECTIVE_INCIDENT_DETECTED
    assert payload["incident_id"] == decision.incident_id
    assert payload["severity"] == "major" and payload["region"] == "shenzhen"
    assert payload["customer_count"] == 5 and len(payload["case_ids"]) == 5


def test_rules_validate():
    with pytest.raises(ValueError):
        CollectiveRules(min_customers=10, crisis_customers=5)
    small = CollectiveRules(min_customers=2, crisis_customers=3, window=timedelta(hours=1))
    assert detect_collective([fact(0)], fact(1), small).severity is Severity.MAJOR
