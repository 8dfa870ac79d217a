from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from crm_contracts.events import cases as c
from crm_contracts.events import partner as p
from crm_contracts.events import surveys as s
from notifications.domain import triggers as t
from notifications.domain.gate import MessageClass

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
CASE = dict(case_id="case-1", case_number="SZ-2026-000001", region="shenzhen", customer_id="cust-1",
            status="received", occurred_at=NOW)


def test_a_complaint_is_acknowledged_once_per_case_whether_opened_or_validated_as_one():
    opened = t.on_case_opened("e1", c.CaseOpened(**CASE, channel="hotline", kind_hint="complaint"))
    validated = t.on_case_validated("e2", c.CaseValidated(**{**CASE, "status": "validated"}, outcome="valid"))
    assert [i.template_id for i in opened + validated] == ["case.acknowledged"] * 2
    assert opened[0].cause_key == validated[0].cause_key == "ack:case-1"
    assert opened[0].params["case_number"] == "SZ-2026-000001"
    assert opened[0].audience == t.Customer("cust-1") and opened[0].message_class is MessageClass.SERVICE


def test_no_acknowledgement_for_a_consultation_an_invalid_complaint_or_an_unknown_caller():
    assert t.on_case_opened("e", c.CaseOpened(**CASE, channel="hotline", kind_hint="consultation")) == []
    assert t.on_case_validated("e", c.CaseValidated(**CASE, outcome="invalid", explanation="x")) == []
    assert t.on_case_opened("e", c.CaseOpened(**{**CASE, "customer_id": None}, channel="hotline")) == []


def test_progress_and_resolution_carry_what_the_customer_is_told():
    [progress] = t.on_progress_reported("e3", c.CaseProgressReported(**CASE, message_to_customer="师傅明天上门"))
    [resolved] = t.on_case_resolved("e4", c.CaseResolved(**CASE, summary="已更换防水层"))
    assert (progress.template_id, progress.params["message"], progress.cause_key) == ("case.progress", "师傅明天上门", "e3")
    assert (resolved.template_id, resolved.params["summary"]) == ("case.resolved", "已更换防水层")


def test_staff_notifications_go_to_the_assignee_or_the_regions_supervisors():
    [assigned] = t.on_case_assigned("e5", c.CaseAssigned(**CASE, department="engineering", assignee="agent-7"))
    assert assigned.audience == t.Staff("agent-7") and assigned.channels == (("staff",),)
    [to_dept] = t.on_case_assigned("e6", c.CaseAssigned(**CASE, department="engineering"))
    assert to_dept.audience == t.Staff("dept:engineering@shenzhen")
    escalated = t.on_case_escalated("e7", c.CaseEscalated(**CASE, reason="major"), {"shenzhen": ["sup-1", "sup-2"]})
    assert [i.audience for i in escalated] == [t.Staff("sup-1"), t.Staff("sup-2")]
    breached = t.on_sla_breached("e8", c.CaseSlaBreached(**{**CASE, "assignee": "agent-7"}, clock="first_reply",
                                                         due_at=NOW), {})
    assert [i.audience for i in breached] == [t.Staff("agent-7"), t.Staff("role:supervisor@shenzhen")]
    incident = t.on_collective_incident("e9", c.CollectiveIncidentDetected(
        incident_id="i1", region="shenzhen", project="碧水湾", category="engineering_quality", severity="crisis",
        customer_count=12, window_start=NOW, window_end=NOW, occurred_at=NOW), {})
    assert incident[0].params["customer_count"] == "12" and incident[0].message_class is MessageClass.STAFF


def test_milestone_goes_to_owners_of_the_building_the_next_day_and_by_letter_only_on_open_day_and_delivery():
    occurred = datetime(2026, 12, 1, 15, 0, tzinfo=TZ)
    [topped] = t.on_milestone("m1", "shenzhen", p.MilestoneReached(
        milestone_id="m1", project="p1", project_name="碧水湾", building="3", milestone="topped_out",
        occurred_at=occurred), TZ)
    assert topped.audience == t.Owners("p1", "3")
    assert topped.channels == (("sms", "email"),)
    assert topped.not_before == datetime(2026, 12, 2, 0, 0, tzinfo=TZ)
    assert topped.message_class is MessageClass.NOTICE
    for milestone in ("site_open_day", "delivery"):
        [i] = t.on_milestone("m2", "shenzhen", p.MilestoneReached(
            milestone_id="m2", project="p1", milestone=milestone, occurred_at=occurred), TZ)
        assert ("letter",) in i.channels and i.audience == t.Owners("p1", None)
    for milestone in ("frame_removed", "landscaping_started"):
        [i] = t.on_milestone("m3", "shenzhen", p.MilestoneReached(
            milestone_id="m3", project="p1", milestone=milestone, occurred_at=occurred), TZ)
        assert ("letter",) not in i.channels


def test_welcome_expires_a_week_after_signing_and_needs_a_specialist():
    signed = NOW - timedelta(days=2)
    [welcome] = t.on_contract_signed("e10", "shenzhen", p.ContractSigned(
        contract_id="k1", customer_id="cust-1", project="p1", building="3", unit="1201", signed_at=signed,
        specialist={"name": "李娜", "phone": "13800000000"}))
    assert welcome.expires_at == signed + timedelta(days=7)
    assert welcome.params["specialist_name"] == "李娜"
    assert t.on_contract_signed("e11", "shenzhen", p.ContractSigned(
        contract_id="k1", customer_id="cust-1", project="p1", building="3", unit="1201", signed_at=signed)) == []


def test_visit_notice_goes_at_notice_at_or_a_week_ahead():
    due = datetime(2026, 12, 20, 2, 0, tzinfo=UTC)
    base = dict(survey_id="s1", kind="living_3_months", customer_id="cust-1", due_at=due)
    [i] = t.on_survey_scheduled("e12", "shenzhen", s.SurveyScheduled(**base), TZ)
    assert i.not_before == due - timedelta(days=7) and i.survey_id == "s1"
    [j] = t.on_survey_scheduled("e13", "shenzhen", s.SurveyScheduled(**base, notice_at=NOW), TZ)
    assert j.not_before == NOW and j.params["visit_date"] == "2026-12-20"


def test_unit_delivered_sends_the_move_in_notice():
    [i] = t.on_unit_delivered("e14", "shenzhen", p.UnitDelivered(
        customer_id="cust-1", project="p1", building="3", unit="1201", delivered_at=NOW, fit_out="bare"))
    assert (i.template_id, i.params["unit"]) == ("unit.move_in", "1201")


def test_birthday_greeting_is_marketing_and_leap_day_birthdays_are_greeted_on_28_february():
    from datetime import date
    i = t.birthday_greeting("cust-1", "shenzhen", date(2026, 12, 1), TZ)
    assert i.message_class is MessageClass.MARKETING and i.cause_key == "birthday:cust-1:2026-12-01"
    assert t.is_birthday(date(1980, 2, 29), date(2027, 2, 28))
    assert not t.is_birthday(date(1980, 2, 29), date(2028, 2, 28))
    assert t.is_birthday(date(1980, 12, 1), date(2026, 12, 1))


def _greeted_in(year: int) -> dict[date, t.HolidayBreak]:
    days = (date(year, 1, 1) + timedelta(days=n) for n in range(365))
    return {d: b for d in days for b in t.holiday_breaks_greeted_on(d)}


def test_holiday_greetings_go_on_the_last_working_day_before_each_major_holiday_break():
    greeted = _greeted_in(2026)
    # The Spring Festival break starts on Sunday 15 February; Saturday 14th is a make-up
    # working day (调休), so that is when the greeting goes.
    assert {d: (b.first_day, b.names) for d, b in greeted.items()} == {
        date(2026, 2, 14): (date(2026, 2, 15), ("Spring Festival",)),
        date(2026, 6, 18): (date(2026, 6, 19), ("Dragon Boat Festival",)),
        date(2026, 9, 24): (date(2026, 9, 25), ("Mid-autumn Festival",)),
        date(2026, 9, 30): (date(2026, 10, 1), ("National Day",)),
        date(2026, 12, 31): (date(2027, 1, 1), ("New Year's Day",)),
    }
    # No greeting for Tomb-sweeping Day or Labour Day.
    assert not [d for d in greeted if d.month in (4, 5)]


def test_mid_autumn_inside_the_national_day_break_is_one_greeting_naming_both():
    [brk] = [b for b in _greeted_in(2025).values() if b.first_day.month == 10]
    assert brk.first_day == date(2025, 10, 1) and brk.names == ("National Day", "Mid-autumn Festival")
    intent = t.holiday_greeting("shenzhen", brk, TZ)
    assert intent.params["holiday_name"] == "国庆节、中秋节"
    assert intent.params["holiday_name_en"] == "National Day and the Mid-Autumn Festival"


def test_a_holiday_greeting_is_marketing_to_every_owner_of_the_region_and_expires_when_the_break_begins():
    brk = t.holiday_breaks_greeted_on(date(2026, 9, 30))[0]
    intent = t.holiday_greeting("shenzhen", brk, TZ)
    assert intent.message_class is MessageClass.MARKETING and intent.template_id == "care.holiday"
    assert intent.audience == t.Owners(None, None) and intent.region == "shenzhen"
    assert intent.expires_at == datetime(2026, 10, 1, tzinfo=TZ)
    assert intent.cause_key == "holiday:shenzhen:2026-10-01"
