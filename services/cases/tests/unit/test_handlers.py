"""The handlers on in-memory fakes of their ports: what a contact becomes (a new case, a
further contact of an open one, work for staff), repeats, staff answering and opening
cases, collective linking, regions nobody configured, and writers racing one case."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from cases import handlers
from cases.domain.errors import DomainError
from cases.domain.routing import Routing
from crm_contracts.events.intake import ContactReceived
from pydantic import ValidationError

from .fakes import Clock, fake_deps

CASE = "crm.cases.case."


def contact(clock: Clock, **over) -> ContactReceived:
    contact_id = over.pop("contact_id", str(uuid.uuid4()))
    data = {"contact_id": contact_id, "channel": "hotline", "source_ref": f"call-{contact_id[:8]}",
            "region": "shenzhen", "project": "碧水湾", "building": "3", "unit": "1201",
            "customer_id": "cust-1", "customer_match": "exact", "kind_hint": "complaint",
            "subject": "卫生间漏水", "body": "卫生间漏水一个月了，报修三次没人来。", "received_at": clock.now}
    data.update(over)
    return ContactReceived.model_validate(data)


def count(deps, name: str, **labels: str) -> float:
    return deps.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def deps(clock):
    return fake_deps(clock)


async def test_a_complaint_opens_a_case_with_its_clock_and_is_counted(deps, clock):
    data = contact(clock)
    case_id = await handlers.on_contact_received(deps, data, "ev-1")
    assert case_id == handlers.case_id_for(data.contact_id)
    assert deps.cases.types(case_id) == [CASE + "opened.v1", CASE + "assigned.v1"]
    assert f"sla:{case_id}" in deps.timers.pending
    assert (await deps.contacts.get(data.contact_id))["case_id"] == case_id
    assert count(deps, "crm_cases_opened_total", severity="general") == 1
    assert deps.worklist.rows == {}


async def test_the_same_contact_delivered_twice_is_one_case(deps, clock):
    data = contact(clock)
    first = await handlers.on_contact_received(deps, data, "ev-1")
    second = await handlers.on_contact_received(deps, data, "ev-1")
    assert first == second and len(deps.cases.docs) == 1
    assert deps.cases.types().count(CASE + "opened.v1") == 1
    assert count(deps, "crm_cases_opened_total", severity="general") == 1


async def test_a_redelivery_after_a_crash_midway_opens_no_second_case(deps, clock):
    data = contact(clock)
    await handlers.on_contact_received(deps, data, "ev-1")
    await deps.contacts.change(data.contact_id, lambda doc: {"handled": False})  # died before the last write
    await handlers.on_contact_received(deps, data, "ev-1")
    assert len(deps.cases.docs) == 1 and deps.cases.types().count(CASE + "opened.v1") == 1


async def test_a_further_contact_about_the_same_open_matter_joins_the_case(deps, clock):
    first = await handlers.on_contact_received(deps, contact(clock), "ev-1")
    clock.advance(hours=1)
    again = contact(clock, channel="front_desk", subject="还是漏水", body="上次反映的卫生间漏水还没修好")
    joined = await handlers.on_contact_received(deps, again, "ev-2")
    assert joined == first and len(deps.cases.docs) == 1
    assert (await deps.cases.get(first)).contact_ids[-1] == again.contact_id
    assert deps.cases.types(first)[-1] == CASE + "contact-attached.v1"


async def test_another_matter_of_the_same_customer_opens_its_own_case(deps, clock):
    first = await handlers.on_contact_received(deps, contact(clock), "ev-1")
    other = contact(clock, subject="合同问题", body="购房合同的定金条款和销售说的不一样")
    second = await handlers.on_contact_received(deps, other, "ev-2")
    assert second not in (None, first) and len(deps.cases.docs) == 2


async def test_a_repeat_of_an_earlier_contact_joins_its_case_whatever_its_kind(deps, clock):
    first = contact(clock, customer_id=None, customer_match="unknown")
    case_id = await handlers.on_contact_received(deps, first, "ev-1")
    repeat = contact(clock, customer_id=None, customer_match="unknown", kind_hint="consultation",
                     duplicate_of=first.contact_id, subject="进度", body="请问处理到哪一步了？")
    assert await handlers.on_contact_received(deps, repeat, "ev-2") == case_id
    assert repeat.contact_id in (await deps.cases.get(case_id)).contact_ids


async def test_a_consultation_waits_for_staff_who_answer_it_once(deps, clock):
    data = contact(clock, kind_hint="consultation", subject="交房时间", body="请问什么时候交房？")
    assert await handlers.on_contact_received(deps, data, "ev-1") is None
    assert deps.cases.docs == {}
    [row] = await handlers.list_contacts(deps, regions=["shenzhen"], status=None, kind=None, after=None, limit=10)
    assert row["contact_id"] == data.contact_id and row["status"] == "unanswered" and row["kind"] == "consultation"

    answered = await handlers.answer_contact(deps, data.contact_id, "6月30日交房", actor="agent-1")
    assert answered["status"] == "answered" and answered["answer"]["by"] == "agent-1"
    await handlers.answer_contact(deps, data.contact_id, "6月30日交房", actor="agent-1")  # retried request
    assert count(deps, "crm_cases_contacts_answered_total", kind="consultation") == 1
    with pytest.raises(DomainError):
        await handlers.answer_contact(deps, data.contact_id, "另一个答复", actor="agent-2")
    assert await handlers.list_contacts(deps, regions=["shenzhen"], status="unanswered", kind=None,
                                        after=None, limit=10) == []


async def test_staff_open_a_case_from_a_suggestion_keeping_what_was_written(deps, clock):
    data = contact(clock, kind_hint="suggestion", subject="车库照明", body="地下车库灯坏了一半，建议更换。")
    await handlers.on_contact_received(deps, data, "ev-1")
    case_id = await handlers.open_case_for_contact(deps, data.contact_id, actor="agent-1")
    case = await deps.cases.get(case_id)
    assert (case.subject, case.body, case.kind_hint) == (data.subject, data.body, "suggestion")
    assert await handlers.open_case_for_contact(deps, data.contact_id, actor="agent-2") == case_id
    assert len(deps.cases.docs) == 1
    assert deps.worklist.rows[data.contact_id]["status"] == "case_opened"


async def test_a_contact_that_opened_a_case_itself_is_no_work_item(deps, clock):
    data = contact(clock)
    await handlers.on_contact_received(deps, data, "ev-1")
    with pytest.raises(DomainError):
        await handlers.answer_contact(deps, data.contact_id, "已处理", actor="agent-1")
    with pytest.raises(DomainError):
        await handlers.open_case_for_contact(deps, data.contact_id, actor="agent-1")
    with pytest.raises(handlers.ContactNotFound):
        await handlers.answer_contact(deps, "no-such-contact", "x", actor="agent-1")


async def test_a_gas_leak_hinted_as_a_consultation_with_no_confidence_is_a_crisis_case(deps, clock):
    data = contact(clock, kind_hint="consultation", kind_confidence=0.0, channel="front_desk",
                   subject="前台来访登记", body="业主说厨房燃气泄漏发生闪燃，她母亲被烧伤送医。")
    case_id = await handlers.on_contact_received(deps, data, "ev-1")
    assert case_id is not None
    case = await deps.cases.get(case_id)
    assert case.severity == "crisis" and case.kind_confidence == 0.0
    assert CASE + "escalated.v1" in deps.cases.types(case_id)
    assert count(deps, "crm_cases_opened_total", severity="crisis") == 1
    assert deps.worklist.rows == {}


async def test_an_unclassified_ordinary_contact_is_listed_as_unclassified(deps, clock):
    data = contact(clock, kind_hint="consultation", kind_confidence=0.0, subject="你好", body="想了解一下")
    assert await handlers.on_contact_received(deps, data, "ev-1") is None
    rows = await handlers.list_contacts(deps, regions=["shenzhen"], status=None, kind="unclassified",
                                        after=None, limit=10)
    assert [r["contact_id"] for r in rows] == [data.contact_id]


async def test_five_customers_about_one_matter_link_their_cases_and_raise_them(deps, clock):
    ids = []
    for i in range(5):
        data = contact(clock, customer_id=f"cust-{i}", project="金色家园", building="8",
                       subject="电梯经常故障", body="8栋电梯又坏了，物业维修不及时。")
        ids.append(await handlers.on_contact_received(deps, data, f"ev-{i}"))
        clock.advance(minutes=10)
    [incident] = deps.incidents.docs.values()
    assert incident["customer_count"] == 5 and sorted(incident["case_ids"]) == sorted(ids)
    assert [o.event.type for o in deps.incidents.published] == ["crm.cases.collective-incident.detected.v1"]
    for case_id in ids:
        case = await deps.cases.get(case_id)
        assert case.severity == "major" and case.collective_incident_id is not None


async def test_a_region_nobody_configured_opens_cases_on_the_defaults(clock):
    routed = fake_deps(clock, routing=Routing.from_config({"regions": {"shanghai": {"default": "sh-service"}}}))
    case_id = await handlers.on_contact_received(routed, contact(clock, region="wuhan"), "ev-1")
    case = await routed.cases.get(case_id)
    assert case.case_number.startswith("WH-") and case.department == "engineering"  # the category's default
    configured = await handlers.on_contact_received(routed, contact(clock, region="shanghai"), "ev-2")
    assert (await routed.cases.get(configured)).department == "sh-service"


def test_a_region_the_platform_does_not_serve_is_refused_before_any_handler(clock):
    with pytest.raises(ValidationError, match="region"):
        contact(clock, region="atlantis")


async def test_a_command_losing_to_another_writer_runs_again_on_fresh_state(deps, clock):
    case_id = await handlers.on_contact_received(deps, contact(clock), "ev-1")
    deps.cases.conflicts_to_raise = 2
    runs = []

    def validate(case):
        runs.append(case.status.value)
        case.validate("valid", "已受理", actor="agent-1", at=clock.now)

    case = await handlers.act_on_case(deps, case_id, validate)
    assert case.status.value == "validated" and len(runs) == 3
    assert deps.cases.types(case_id).count(CASE + "validated.v1") == 1


async def test_an_sla_breach_is_recorded_once_and_counted_by_clock(deps, clock):
    case_id = await handlers.on_contact_received(deps, contact(clock), "ev-1")
    _kind, due, payload = deps.timers.pending[f"sla:{case_id}"]
    clock.now = due + timedelta(minutes=1)
    await handlers.on_sla_timer(deps, {"payload": payload})
    await handlers.on_sla_timer(deps, {"payload": payload})  # fired twice (two replicas, a restart)
    assert deps.cases.types(case_id).count(CASE + "sla-breached.v1") == 1
    assert count(deps, "crm_cases_sla_breaches_total", clock="first_reply") == 1
    await handlers.on_sla_timer(deps, {"payload": {"case_id": "gone"}})  # a case that no longer exists


async def test_a_dissatisfied_repair_visit_opens_a_case_once_and_a_satisfied_one_none(deps, clock):
    from crm_contracts.events.surveys import SurveyCompleted

    def visit(survey_id: str, score: int) -> SurveyCompleted:
        return SurveyCompleted.model_validate({
            "survey_id": survey_id, "kind": "repair_return_visit", "customer_id": "cust-1",
            "work_order_id": "wo-9", "project": "碧水湾", "building": "3", "unit": "1201",
            "due_at": clock.now, "scores": {"overall": score}, "satisfied": score >= 4,
            "dissatisfied": score <= 2, "completed_at": clock.now, "comment": "师傅修完还是漏"})

    await handlers.on_survey_completed(deps, visit("sv-ok", 5), "shenzhen")
    assert deps.cases.docs == {}
    await handlers.on_survey_completed(deps, visit("sv-bad", 2), "shenzhen")
    await handlers.on_survey_completed(deps, visit("sv-bad", 2), "shenzhen")  # delivered again
    assert len(deps.cases.docs) == 1
    case = await deps.cases.get(handlers.case_id_for("survey:sv-bad"))
    assert case.region == "shenzhen" and case.customer_id == "cust-1"
    assert "维修回访不满意" in case.subject


async def test_a_call_on_new_years_morning_in_china_is_numbered_in_the_new_year(deps, clock):
    # 00:30 on 1 January in Shenzhen is still 31 December in UTC: the number carries 2027.
    data = contact(clock, received_at="2027-01-01T00:30:00+08:00")
    case = await deps.cases.get(await handlers.on_contact_received(deps, data, "ev-1"))
    assert case.case_number.startswith("SZ-2027-")
