"""The nine-step procedure: each severity end to end, and the transitions it refuses."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cases.adapters.documents import case_from_doc, case_to_doc
from cases.domain import events as ev
from cases.domain.procedure import (
    Case,
    CaseStatus,
    ChecklistIncomplete,
    DomainError,
    IllegalTransition,
    ReasonRequired,
    open_case,
)
from cases.domain.routing import Routing
from cases.domain.severity import SeverityContext, SeverityRules, propose_severity

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=SH)


def t(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def contact(**over):
    facts = {
        "contact_id": "ct-1",
        "region": "shenzhen",
        "customer_id": "cu-1",
        "channel": "hotline",
        "subject": "卫生间渗水",
        "body": "楼上卫生间渗水到我家天花板",
        "project": "Harbour View",
        "building": "3",
        "unit": "1203",
        "kind_hint": "complaint",
        "received_at": T0.isoformat(),
    }
    facts.update(over)
    return facts


def new_case(**over) -> Case:
    c = contact(**over)
    proposal = propose_severity(c["subject"], c["body"], SeverityContext(), SeverityRules())
    return open_case("case-1", "SZ-2026-000001", c, proposal, Routing(), T0)


def pulled(case: Case) -> list[tuple[str, dict]]:
    """The pending events as they go on the wire (the contract models, as JSON)."""
    return [(event_type, event.model_dump(mode="json")) for event_type, event in case.pull_events()]


def types_of(case: Case) -> list[str]:
    return [event_type for event_type, _ in case.pull_events()]


def run_to_handling(case: Case, severity: str, category: str = "engineering_quality") -> None:
    case.validate("valid", "已受理，我们会尽快处理", actor="agent-1", at=t(1))
    case.classify(severity, category, actor="agent-1", at=t(2), reason="confirmed by agent")
    case.assess("渗漏", "单户影响", actor="agent-1", at=t(3))
    case.start_investigation(actor="eng-1", at=t(4))
    case.record_findings(
        responsible_department="engineering",
        responsible_post="site engineer",
        responsible_person="Wang",
        root_cause="防水层施工缺陷",
        written_findings="卫生间防水层破损，导致渗水",
        evidence_attachment_ids=["att-1", "att-2"],
        actor="eng-1",
        at=t(5),
    )
    case.start_handling(actor="eng-1", at=t(6), plan="重做防水")
    case.report_progress("维修师傅明天上门", actor="agent-1", at=t(7))


def finish(case: Case) -> None:
    case.resolve("已重做防水，闭水试验合格", actor="eng-1", at=t(100))
    case.confirm_by_customer(True, actor="agent-1", at=t(200), comment="满意")
    case.approve_by_department(actor="eng-lead", at=t(201))
    case.close(actor="agent-1", at=t(202))
    case.record_lesson(
        root_cause="防水施工未闭水试验",
        responsible_department="engineering",
        improvement="交付前全部卫生间闭水试验48小时",
        actor="quality-1",
        at=t(300),
    )


# -- numbers -------------------------------------------------------------------------------


# -- opening -------------------------------------------------------------------------------


def test_open_case_records_contact_routes_and_emits_opened_and_assigned():
    case = new_case()
    assert case.status is CaseStatus.RECEIVED
    assert case.contact_ids == ["ct-1"]
    assert case.category == "engineering_quality"
    assert case.department == "engineering"
    assert case.timeline[0].action == "opened" and case.timeline[0].customer_visible
    events = pulled(case)
    assert [e for e, _ in events] == [ev.CASE_OPENED, ev.CASE_ASSIGNED]
    opened = events[0][1]
    for key in ("case_id", "case_number", "region", "customer_id", "contact_ids", "status"):
        assert key in opened
    assert opened["status"] == "received"
    assert opened["occurred_at"] == T0.isoformat()
    assert opened["actor"] == "system"
    assert opened["sequence"] == 1 and events[1][1]["sequence"] == 2
    # the complaint text is confidential: it is on the case, not in the event
    assert "body" not in opened and "subject" not in opened
    assert case.pending_events == []


def test_attach_contact_is_idempotent():
    case = new_case()
    case.pull_events()
    assert case.attach_contact("ct-2", at=t(5)) is True
    assert case.attach_contact("ct-2", at=t(6)) is False
    assert case.contact_ids == ["ct-1", "ct-2"]
    assert types_of(case) == [ev.CASE_CONTACT_ATTACHED]


# -- each severity end to end --------------------------------------------------------------


def test_general_procedure_end_to_end():
    case = new_case()
    run_to_handling(case, "general")
    finish(case)
    assert case.status is CaseStatus.LESSON_RECORDED
    assert case.closure is not None and not case.closure.forced
    assert all(case.closure.checklist.values())
    emitted = types_of(case)
    assert emitted == [
        ev.CASE_OPENED,
        ev.CASE_ASSIGNED,
        ev.CASE_VALIDATED,
        ev.CASE_CLASSIFIED,
        ev.CASE_ASSESSED,
        ev.CASE_INVESTIGATION_STARTED,
        ev.CASE_FINDINGS_RECORDED,
        ev.CASE_HANDLING_STARTED,
        ev.CASE_PROGRESS_REPORTED,
        ev.CASE_RESOLVED,
        ev.CASE_CUSTOMER_CONFIRMED,
        ev.CASE_DEPARTMENT_APPROVED,
        ev.CASE_CLOSED,
        ev.CASE_LESSON_RECORDED,
    ]
    assert ev.CASE_ESCALATED not in emitted
    actions = [e.action for e in case.timeline]
    assert actions[0] == "opened" and actions[-1] == "lesson_recorded"
    assert all(e.actor and e.at for e in case.timeline)


def test_major_case_needs_legal_opinion_before_resolution():
    case = new_case(subject="漏电", body="插座漏电，孩子差点触电")
    assert case.severity == "major"
    run_to_handling(case, "major")
    assert case.procedure == "major_complaint"
    with pytest.raises(IllegalTransition, match="legal department's opinion"):
        case.resolve("已更换插座", actor="eng-1", at=t(50))
    case.record_legal_opinion("责任在施工方，按合同赔偿", actor="legal-1", at=t(60))
    finish(case)
    assert case.status is CaseStatus.LESSON_RECORDED
    assert case.closure.checklist["legal_opinion"] is True
    assert ev.CASE_LEGAL_OPINION_RECORDED in types_of(case)


def test_crisis_escalates_at_once_and_starts_on_site_response():
    case = new_case(subject="高空坠物", body="阳台玻璃掉落砸伤路人，记者已经到现场")
    assert case.severity == "crisis"
    events = pulled(case)
    escalated = [p for e, p in events if e == ev.CASE_ESCALATED]
    assert len(escalated) == 1
    assert escalated[0]["reason"] == "crisis"
    assert escalated[0]["escalated_to"] == "region_leadership"
    run_to_handling(case, "crisis")
    # classifying it crisis again does not escalate twice
    assert ev.CASE_ESCALATED not in [e for e, _ in case.pending_events]
    case.record_on_site_response(actor="mgr-1", at=t(30), details="项目经理到场")
    case.record_legal_opinion("配合警方调查", actor="legal-1", at=t(40))
    finish(case)
    assert case.status is CaseStatus.LESSON_RECORDED
    assert case.procedure == "crisis_event"


def test_crisis_classified_later_escalates_then():
    case = new_case()
    case.pull_events()
    case.validate("valid", "已受理", actor="agent-1", at=t(1))
    case.classify("crisis", "engineering_quality", actor="agent-1", at=t(2))
    events = pulled(case)
    assert [e for e, _ in events] == [ev.CASE_VALIDATED, ev.CASE_CLASSIFIED, ev.CASE_ESCALATED]
    assert events[-1][1]["reason"] == "crisis"
    assert case.crisis_escalated_at == t(2)


# -- refusals ------------------------------------------------------------------------------


def test_forbidden_transitions_are_refused_with_a_clear_message():
    case = new_case()
    with pytest.raises(IllegalTransition) as err:
        case.resolve("done", actor="a", at=t(1))
    assert "resolve" in str(err.value) and "received" in str(err.value)
    assert err.value.status is CaseStatus.RECEIVED and err.value.action == "resolve"
    with pytest.raises(IllegalTransition):
        case.close(actor="a", at=t(1))
    with pytest.raises(IllegalTransition):
        case.classify("general", "other", actor="a", at=t(1))
    case.validate("valid", "ok", actor="a", at=t(1))
    with pytest.raises(IllegalTransition):
        case.validate("valid", "again", actor="a", at=t(2))
    with pytest.raises(IllegalTransition):
        case.start_investigation(actor="a", at=t(2))
    with pytest.raises(IllegalTransition):
        case.record_lesson(
            root_cause="x", responsible_department="y", improvement="z", actor="a", at=t(2)
        )
    assert case.status is CaseStatus.VALIDATED


def test_handling_needs_findings():
    case = new_case()
    case.validate("valid", "ok", actor="a", at=t(1))
    case.classify("general", "engineering_quality", actor="a", at=t(2))
    case.assess("n", "i", actor="a", at=t(3))
    case.start_investigation(actor="a", at=t(4))
    with pytest.raises(IllegalTransition, match="findings"):
        case.start_handling(actor="a", at=t(5))


def test_naive_times_are_refused():
    case = new_case()
    with pytest.raises(DomainError):
        case.validate("valid", "ok", actor="a", at=datetime(2026, 3, 2, 10))


@pytest.mark.parametrize("outcome", ["invalid", "consultation"])
def test_invalid_or_consultation_is_explained_and_closed(outcome):
    case = new_case()
    case.pull_events()
    case.validate(outcome, "此问题属于市政管辖，已告知联系方式", actor="agent-1", at=t(1))
    assert case.status is CaseStatus.CLOSED
    assert case.closure.outcome == outcome
    events = pulled(case)
    assert [e for e, _ in events] == [ev.CASE_VALIDATED, ev.CASE_CLOSED]
    assert events[0][1]["outcome"] == outcome
    assert events[0][1]["explanation"].startswith("此问题")
    assert case.timeline[-2].customer_visible
    with pytest.raises(IllegalTransition):
        case.record_lesson(
            root_cause="x", responsible_department="y", improvement="z", actor="a", at=t(2)
        )
    # reopened, it is screened again
    case.reopen("客户补充了材料", actor="sup-1", at=t(3))
    assert case.status is CaseStatus.RECEIVED and case.validity is None


def test_customer_not_accepting_reopens_to_handling():
    case = new_case()
    run_to_handling(case, "general")
    case.resolve("已维修", actor="eng-1", at=t(100))
    case.pull_events()
    case.confirm_by_customer(False, actor="agent-1", at=t(110), comment="仍然渗水")
    assert case.status is CaseStatus.HANDLING
    assert case.reopen_count == 1 and case.resolution is None
    events = pulled(case)
    assert [e for e, _ in events] == [ev.CASE_CUSTOMER_CONFIRMED, ev.CASE_REOPENED]
    assert events[0][1]["accepted"] is False
    assert events[1][1]["reason"] == "仍然渗水"
    assert events[1][1]["previous_status"] == "resolved"
    # and the second round can finish
    finish(case)
    assert case.status is CaseStatus.LESSON_RECORDED


def test_closure_checklist_refuses_an_incomplete_case():
    case = new_case()
    run_to_handling(case, "general")
    case.resolve("已维修", actor="eng-1", at=t(100))
    with pytest.raises(ChecklistIncomplete) as err:
        case.close(actor="agent-1", at=t(101))
    assert set(err.value.missing) == {"customer_accepted", "department_approved"}
    case.confirm_by_customer(True, actor="agent-1", at=t(102))
    with pytest.raises(ChecklistIncomplete) as err:
        case.close(actor="agent-1", at=t(103))
    assert err.value.missing == ["department_approved"]
    assert case.status is CaseStatus.RESOLVED
    case.approve_by_department(actor="lead", at=t(104))
    case.close(actor="agent-1", at=t(105))
    assert case.status is CaseStatus.CLOSED


def test_checklist_requires_a_progress_report():
    case = new_case()
    case.validate("valid", "ok", actor="a", at=t(1))
    case.classify("general", "engineering_quality", actor="a", at=t(2))
    case.assess("n", "i", actor="a", at=t(3))
    case.start_investigation(actor="a", at=t(4))
    case.record_findings(
        responsible_department="engineering",
        root_cause="rc",
        written_findings="wf",
        actor="a",
        at=t(5),
    )
    case.start_handling(actor="a", at=t(6))
    case.resolve("done", actor="a", at=t(7))
    case.confirm_by_customer(True, actor="a", at=t(8))
    case.approve_by_department(actor="b", at=t(9))
    with pytest.raises(ChecklistIncomplete) as err:
        case.close(actor="a", at=t(10))
    assert err.value.missing == ["customer_informed"]


def test_force_close_needs_a_reason():
    case = new_case()
    run_to_handling(case, "general")
    with pytest.raises(ReasonRequired):
        case.force_close("", actor="sup-1", at=t(50))
    with pytest.raises(ReasonRequired):
        case.force_close("   ", actor="sup-1", at=t(50))
    case.pull_events()
    case.force_close("客户失联三十天", actor="sup-1", at=t(50))
    assert case.status is CaseStatus.CLOSED
    assert case.closure.forced and case.closure.reason == "客户失联三十天"
    (event_type, payload), *_ = pulled(case)
    assert event_type == ev.CASE_CLOSED
    assert payload["forced"] is True and payload["reason"] == "客户失联三十天"
    assert payload["checklist"]["customer_accepted"] is False


def test_override_severity_is_audited_and_needs_a_reason():
    case = new_case()
    case.validate("valid", "ok", actor="a", at=t(1))
    case.classify("general", "engineering_quality", actor="a", at=t(2))
    case.pull_events()
    with pytest.raises(ReasonRequired):
        case.override_severity("major", reason="", actor="sup-1", at=t(3))
    case.override_severity("major", reason="发现承重墙开裂", actor="sup-1", at=t(3))
    assert case.severity == "major" and case.procedure == "major_complaint"
    entry = case.timeline[-1]
    assert entry.action == "severity_overridden" and entry.actor == "sup-1"
    assert entry.reason == "发现承重墙开裂" and entry.details == {"from": "general", "to": "major"}
    (event_type, payload), *_ = pulled(case)
    assert event_type == ev.CASE_CLASSIFIED
    assert payload["override"] is True and payload["previous_severity"] == "general"


def test_classifying_below_the_proposal_needs_a_reason():
    case = new_case(subject="律师函", body="我已请律师准备起诉")
    assert case.severity == "major"
    case.validate("valid", "ok", actor="a", at=t(1))
    with pytest.raises(DomainError, match="reason"):
        case.classify("general", "sales_service", actor="a", at=t(2))
    case.classify("general", "sales_service", actor="a", at=t(2), reason="客户只是咨询律师费用")
    assert case.severity == "general"


def test_reassign_across_departments_needs_reason_assign_within_does_not():
    case = new_case()
    case.assign("engineering", "eng-7", actor="lead", at=t(1))
    assert case.assignee == "eng-7"
    with pytest.raises(DomainError, match="reassignment"):
        case.assign("property", actor="agent", at=t(2))
    with pytest.raises(ReasonRequired):
        case.reassign("property", reason="", actor="sup", at=t(2))
    case.pull_events()
    case.reassign("property", "pm-1", reason="物业维修范围", actor="sup", at=t(3))
    (event_type, payload), *_ = pulled(case)
    assert event_type == ev.CASE_ASSIGNED
    assert payload["reassigned"] is True and payload["previous_department"] == "engineering"
    assert payload["department"] == "property" and payload["assignee"] == "pm-1"


def test_wait_for_customer_and_respond():
    case = new_case()
    case.pull_events()
    case.wait_for_customer("等待业主提供照片", actor="a", at=t(1))
    with pytest.raises(DomainError):
        case.wait_for_customer("again", actor="a", at=t(2))
    case.customer_responded(actor="a", at=t(3))
    with pytest.raises(DomainError):
        case.customer_responded(actor="a", at=t(4))
    events = pulled(case)
    assert [e for e, _ in events] == [ev.CASE_WAITING_FOR_CUSTOMER, ev.CASE_CUSTOMER_RESPONDED]
    assert events[0][1]["waiting_for_customer"] is True


def test_reopen_after_closure_and_reason_required():
    case = new_case()
    run_to_handling(case, "general")
    finish(case)
    with pytest.raises(ReasonRequired):
        case.reopen("", actor="sup", at=t(400))
    case.reopen("回访不满意 (score 2)", actor="system", at=t(400))
    assert case.status is CaseStatus.HANDLING
    assert case.closure is None and case.customer_accepted is None
    assert not case.department_approved


def test_sla_breach_emits_breach_and_escalates_to_supervisor():
    case = new_case()
    case.pull_events()
    case.record_sla_breach("first_reply", t(240), at=t(241))
    events = pulled(case)
    assert [e for e, _ in events] == [ev.CASE_SLA_BREACHED, ev.CASE_ESCALATED]
    assert events[0][1]["clock"] == "first_reply"
    assert events[0][1]["due_at"] == t(240).isoformat()
    assert events[1][1]["escalated_to"] == "supervisor"


def test_collective_link_raises_severity_and_escalates_crisis():
    case = new_case()
    case.pull_events()
    case.link_collective_incident("CI-1", "major", at=t(1))
    assert case.severity == "major" and case.collective_incident_id == "CI-1"
    case.link_collective_incident("CI-1", "general", at=t(2))  # never lowers
    assert case.severity == "major"
    case.link_collective_incident("CI-1", "crisis", at=t(3))
    emitted = types_of(case)
    assert emitted.count(ev.CASE_COLLECTIVE_LINKED) == 1
    assert emitted[-1] == ev.CASE_ESCALATED


def test_on_site_response_only_for_crisis():
    case = new_case()
    with pytest.raises(IllegalTransition):
        case.record_on_site_response(actor="a", at=t(1))


def test_allowed_actions_follow_status():
    case = new_case()
    assert "validate" in case.allowed_actions()
    assert "resolve" not in case.allowed_actions()


def test_round_trip_through_plain_data():
    case = new_case()
    run_to_handling(case, "major")
    case.record_legal_opinion("ok", actor="legal", at=t(20))
    case.wait_for_customer("photos", actor="a", at=t(21))
    doc = case_to_doc(case)
    assert "pending_events" not in doc

    def no_tuples(value):
        if isinstance(value, tuple):
            return False
        if isinstance(value, dict):
            return all(no_tuples(v) for v in value.values())
        if isinstance(value, list):
            return all(no_tuples(v) for v in value)
        return True

    assert no_tuples(doc)

    # as pymongo returns it: naive UTC datetimes
    def naive(value):
        if isinstance(value, datetime):
            return value.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
        if isinstance(value, dict):
            return {k: naive(v) for k, v in value.items()}
        if isinstance(value, list):
            return [naive(v) for v in value]
        return value

    back = case_from_doc(naive(doc))
    assert case_to_doc(back) == doc
    back.customer_responded(actor="a", at=t(30))
    back.resolve("fixed", actor="eng", at=t(31))
    assert back.status is CaseStatus.RESOLVED
    assert back.version == case.version + 2
