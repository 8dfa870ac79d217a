"""Cases' events against the public contract: every step emits the model the registry
names for its type, the domain speaks the contract's vocabulary, and nothing a command
puts in an event is lost on the wire."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from cases.domain import events as ev
from cases.domain.case_closing import CaseClosing
from cases.domain.collective import ContactFact, detect_collective
from cases.domain.procedure import CaseStatus, Procedure, Validity
from cases.domain.severity import Category, Severity
from cases.domain.sla import ClockName
from cases.handlers import outgoing
from crm_contracts.events import cases as contract
from crm_contracts.registry import EVENT_TYPES

from .test_procedure import T0, finish, new_case, run_to_handling, t


def test_every_case_event_type_carries_the_registered_model():
    assert set(ev.MODELS) == {*ev.ALL_CASE_EVENT_TYPES, ev.COLLECTIVE_INCIDENT_DETECTED}
    for event_type, model in ev.MODELS.items():
        assert EVENT_TYPES[event_type].data_model is model, event_type


@pytest.mark.parametrize("domain, wire", [
    (CaseStatus, contract.CaseStatus), (Validity, contract.Validity), (Procedure, contract.Procedure),
    (Severity, contract.Severity), (Category, contract.CaseCategory),
])
def test_the_domain_speaks_the_contracts_vocabulary(domain, wire):
    assert {e.value for e in domain} == {e.value for e in wire}


def test_clock_names_and_close_outcomes_are_the_ones_the_contract_describes():
    described = contract.CaseSlaBreached.model_fields["clock"].description
    assert all(c.value in described for c in ClockName)
    case = new_case()
    case.validate("consultation", "已解答", actor="a", at=t(1))
    outcomes = {contract.CloseOutcome(case.closure.outcome)}
    assert outcomes == {contract.CloseOutcome.CONSULTATION}


def _a_life_of_every_step() -> list[tuple[str, contract.CaseEventBase]]:
    case = new_case(subject="高空坠物", body="阳台玻璃掉落砸伤路人，记者已经到现场")  # crisis
    case.attach_contact("ct-2", at=t(0))
    case.wait_for_customer("等照片", actor="a", at=t(0))
    case.customer_responded(actor="a", at=t(0))
    run_to_handling(case, "crisis")
    case.record_on_site_response(actor="mgr", at=t(8), details="到场")
    case.record_sla_breach("first_reply", t(9), at=t(10))
    case.link_collective_incident("CI-1", "crisis", at=t(11))
    case.reassign("property", "pm-1", reason="物业负责", actor="sup", at=t(12))
    case.override_severity("major", reason="已控制", actor="sup", at=t(13))
    case.record_legal_opinion("ok", actor="legal", at=t(14))
    finish(case)
    case.reopen("回访不满意", actor="system", at=t(400))
    return case.pull_events()


def test_a_life_through_every_step_emits_every_type_each_valid_on_the_wire():
    case = new_case()
    events = _a_life_of_every_step()
    assert {event_type for event_type, _ in events} == set(ev.ALL_CASE_EVENT_TYPES)
    for out in outgoing(case, events):  # new_event refuses a model not registered for the type
        wire = json.loads(out.event.model_dump_json())
        model = EVENT_TYPES[wire["type"]].data_model
        assert model.model_validate(wire["data"]).model_dump(mode="json") == wire["data"]
        assert wire["id"] == f"{case.case_id}:{wire['data']['sequence']}"
        assert wire["data"]["occurred_at"].endswith("+08:00")  # the offset is kept, as before


def test_a_field_the_model_does_not_know_is_refused_not_dropped():
    case = new_case()
    with pytest.raises(TypeError, match="sumary"):
        CaseClosing._emit(case, contract.CaseResolved, t(1), "a", sumary="typo")


def test_the_collective_incident_event_is_its_contract_model():
    facts = [ContactFact(f"ct-{i}", T0 + timedelta(minutes=i), "Harbour View", "engineering_quality",
                         customer_id=f"cu-{i}", channel="hotline") for i in range(5)]
    decision = detect_collective(facts[:4], facts[4])
    event_type, event = decision.event("shenzhen", T0)
    assert isinstance(event, EVENT_TYPES[event_type].data_model)
    assert event.customer_count == 5 and event.severity is contract.Severity.MAJOR


def test_the_body_of_the_complaint_never_reaches_an_event():
    for _, event in _a_life_of_every_step():
        text = event.model_dump_json()
        assert "阳台玻璃掉落" not in text and "subject" not in event.model_dump()

