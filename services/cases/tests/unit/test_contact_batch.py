"""The batch rules: contacts of one batch are decided in order, as one at a time would be."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cases.domain.collective import CollectiveRules, ContactFact
from cases.domain.contact_batch import Arrival, Route, detect_in_batch, route_contacts
from cases.domain.contacts import OpenCaseSummary
from cases.domain.severity import Category

Q = Category.ENGINEERING_QUALITY


def new_id(contact_id: str) -> str:
    return f"case-of-{contact_id}"


def route(arrivals, stored_case_of=None, open_cases_of=None):
    return route_contacts(arrivals, stored_case_of=stored_case_of or {}, open_cases_of=open_cases_of or {},
                          new_case_id=new_id)


def test_a_customers_second_complaint_in_the_batch_joins_the_case_the_first_opened():
    routes = route([Arrival("c1", "shenzhen", Q, True, customer_id="u1", project="p"),
                    Arrival("c2", "shenzhen", Q, True, customer_id="u1", project="p"),
                    Arrival("c3", "shenzhen", Q, True, customer_id="u2", project="p")])
    assert routes == [Route("c1", "case-of-c1", True), Route("c2", "case-of-c1"), Route("c3", "case-of-c3", True)]


def test_another_matter_or_region_of_the_same_customer_opens_its_own_case():
    routes = route([Arrival("c1", "shenzhen", Q, True, customer_id="u1", project="p"),
                    Arrival("c2", "shenzhen", Category.PROPERTY_MANAGEMENT, True, customer_id="u1", project="p"),
                    Arrival("c3", "beijing", Q, True, customer_id="u1", project="p")])
    assert [r.opens_new for r in routes] == [True, True, True]


def test_a_repeat_follows_its_original_in_the_batch_or_stored_and_a_consultation_waits():
    routes = route([Arrival("c1", "shenzhen", Q, True, customer_id="u1"),
                    Arrival("c2", "shenzhen", Q, False, duplicate_of="c1"),
                    Arrival("c3", "shenzhen", Q, False, duplicate_of="old"),
                    Arrival("c4", "shenzhen", Q, False, customer_id="u1")],
                   stored_case_of={"old": "case-old"})
    assert routes == [Route("c1", "case-of-c1", True), Route("c2", "case-of-c1"), Route("c3", "case-old"),
                      Route("c4", None)]


def test_a_stored_open_case_of_the_customer_is_joined_first():
    stored = {"u1": [OpenCaseSummary("case-stored", Q, "p", "shenzhen")]}
    routes = route([Arrival("c1", "shenzhen", Q, True, customer_id="u1", project="p")], open_cases_of=stored)
    assert routes == [Route("c1", "case-stored")]


def fact(n: int, at: datetime, **over) -> ContactFact:
    values = {"contact_id": f"c{n}", "received_at": at, "project": "p", "category": "engineering_quality",
              "building": "7", "customer_id": f"u{n}", "case_id": f"case-{n}"}
    values.update(over)
    return ContactFact(**values)


def test_collective_detection_sees_the_stored_facts_and_the_batch_so_far():
    at = datetime(2026, 3, 2, 2, tzinfo=UTC)
    rules = CollectiveRules(min_customers=3, crisis_customers=5)
    stored = [fact(1, at - timedelta(hours=2))]
    batch = [fact(2, at), fact(3, at + timedelta(minutes=1)), fact(4, at + timedelta(minutes=2)),
             fact(5, at, project="other")]
    decisions = detect_in_batch(stored, batch, rules)
    assert [f.contact_id for f, _ in decisions] == ["c3", "c4"]  # the third owner makes it
    (_, first), (_, second) = decisions
    assert first.new_level and first.case_ids == ("case-1", "case-2", "case-3")
    assert not second.new_level and second.incident_id == first.incident_id and second.customer_count == 4


def test_a_fact_outside_the_window_is_not_counted():
    at = datetime(2026, 3, 2, 2, tzinfo=UTC)
    rules = CollectiveRules(min_customers=2, crisis_customers=5, window=timedelta(hours=1))
    assert detect_in_batch([fact(1, at - timedelta(hours=3))], [fact(2, at)], rules) == []
