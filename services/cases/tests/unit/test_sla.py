"""SLA clocks: targets per severity and region, holidays, pauses, and what events do."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cases.adapters.documents import clock_from_doc, clock_to_doc
from cases.domain import events as ev
from cases.domain.calendar import BusinessCalendar
from cases.domain.procedure import open_case, settle
from cases.domain.routing import Routing
from cases.domain.severity import Category, Severity, SeverityProposal
from cases.domain.sla import (
    SlaPolicies,
    SlaTarget,
    Unit,
    clocks_to_fire,
    is_breached,
    next_due,
    pause,
    resume,
    should_fire,
    start_clock,
    stop,
)

SH = ZoneInfo("Asia/Shanghai")
CAL = BusinessCalendar()
POLICIES = SlaPolicies()


def at(y, m, d, hh=0, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=SH)


def test_default_policies():
    general = POLICIES.policy_for("shenzhen", "general")
    assert general.first_reply == SlaTarget(4, Unit.WORKING_HOURS)
    assert general.progress_update == SlaTarget(2, Unit.WORKING_DAYS)
    assert general.resolution == SlaTarget(5, Unit.WORKING_DAYS)
    assert general.on_site is None
    crisis = POLICIES.policy_for("shenzhen", Severity.CRISIS)
    assert crisis.on_site == SlaTarget(2, Unit.CALENDAR_HOURS)
    assert crisis.first_reply == SlaTarget(1, Unit.CALENDAR_HOURS)


def test_region_overrides():
    policies = SlaPolicies.from_config(
        {
            "defaults": {"general": {"first_reply": "3wh"}},
            "regions": {"beijing": {"major": {"resolution": "2wd", "on_site": "4h"}}},
        }
    )
    assert policies.policy_for("shenzhen", "general").first_reply == SlaTarget(
        3, Unit.WORKING_HOURS
    )
    bj = policies.policy_for("beijing", "major")
    assert bj.resolution == SlaTarget(2, Unit.WORKING_DAYS)
    assert bj.on_site == SlaTarget(4, Unit.CALENDAR_HOURS)
    assert bj.first_reply == SlaTarget(2, Unit.WORKING_HOURS)  # untouched
    assert policies.policy_for("shenzhen", "major").resolution == SlaTarget(3, Unit.WORKING_DAYS)
    with pytest.raises(ValueError):
        SlaTarget.parse("4 weeks")
    with pytest.raises(ValueError):
        SlaPolicies.from_config({"defaults": {"general": {"reply": "1h"}}})


def test_clock_over_the_national_day_holiday():
    general = POLICIES.policy_for("shenzhen", "general")
    start = at(2025, 9, 30, 16)
    reply = start_clock("first_reply", start, general, CAL)
    assert reply.due_at == at(2025, 10, 9, 11)
    # 5 working days = 45 working hours: Sep 30 (2) + Oct 9 (9) + Oct 10 (9)
    # + make-up Saturday Oct 11 (9) + Mon Oct 13 (9) + 7 h on Tue Oct 14
    resolution = start_clock("resolution", start, general, CAL)
    assert resolution.due_at == at(2025, 10, 14, 16)


def test_clock_due_on_a_make_up_saturday():
    general = POLICIES.policy_for("shenzhen", "general")
    clock = start_clock("first_reply", at(2025, 10, 10, 16), general, CAL)
    assert clock.due_at == at(2025, 10, 11, 11)
    assert not is_breached(clock, at(2025, 10, 11, 10, 59))
    assert is_breached(clock, at(2025, 10, 11, 11))


def test_crisis_on_site_clock_is_calendar_time():
    crisis = POLICIES.policy_for("shenzhen", "crisis")
    clock = start_clock("on_site", at(2025, 10, 1, 22), crisis, CAL)  # holiday, at night
    assert clock.due_at == at(2025, 10, 2, 0)
    # its resolution still counts working days
    assert start_clock("resolution", at(2025, 10, 1, 22), crisis, CAL).due_at == at(
        2025, 10, 10, 18
    )


def test_pause_and_resume_push_the_due_time_by_the_paused_working_time():
    general = POLICIES.policy_for("shenzhen", "general")
    clock = start_clock("first_reply", at(2025, 10, 13, 9), general, CAL)  # Monday
    assert clock.due_at == at(2025, 10, 13, 13)
    paused = pause(clock, at(2025, 10, 13, 10))
    assert paused.paused and not paused.active
    assert not is_breached(paused, at(2025, 10, 20, 9))  # a paused clock does not breach
    assert pause(paused, at(2025, 10, 13, 11)) is paused  # idempotent
    resumed = resume(paused, at(2025, 10, 14, 10), CAL)  # paused 9 working hours
    assert resumed.paused_total == timedelta(hours=9)
    assert resumed.due_at == at(2025, 10, 14, 13)  # 3 h left, counted from the resume
    assert resumed.active


def test_pause_over_a_holiday_costs_no_working_time():
    general = POLICIES.policy_for("shenzhen", "general")
    clock = start_clock("first_reply", at(2025, 9, 30, 16), general, CAL)
    resumed = resume(pause(clock, at(2025, 9, 30, 17)), at(2025, 10, 9, 9), CAL)
    assert resumed.paused_total == timedelta(hours=1)
    assert resumed.due_at == at(2025, 10, 9, 12)  # 3 h were left at the pause


def test_calendar_clock_pause_pushes_by_elapsed_time():
    crisis = POLICIES.policy_for("shenzhen", "crisis")
    clock = start_clock("first_reply", at(2025, 10, 2, 10), crisis, CAL)
    resumed = resume(pause(clock, at(2025, 10, 2, 10, 30)), at(2025, 10, 2, 12), CAL)
    assert resumed.due_at == at(2025, 10, 2, 12, 30)


def test_stop_and_breach_semantics():
    general = POLICIES.policy_for("shenzhen", "general")
    clock = start_clock("first_reply", at(2025, 10, 13, 9), general, CAL)
    on_time = stop(clock, at(2025, 10, 13, 12))
    assert not is_breached(on_time, at(2025, 10, 20))
    assert not should_fire(on_time, at(2025, 10, 20))
    late = stop(clock, at(2025, 10, 13, 14))
    assert is_breached(late, at(2025, 10, 13, 14))
    assert should_fire(clock, at(2025, 10, 13, 13))
    assert not should_fire(clock, at(2025, 10, 13, 12, 59))


def test_clock_round_trip_as_stored():
    general = POLICIES.policy_for("shenzhen", "general")
    clock = pause(
        start_clock("resolution", at(2025, 10, 13, 9), general, CAL), at(2025, 10, 13, 10)
    )
    doc = clock_to_doc(clock)
    naive = {
        k: (v.astimezone(ZoneInfo("UTC")).replace(tzinfo=None) if isinstance(v, datetime) else v)
        for k, v in doc.items()
    }
    assert clock_from_doc(naive) == clock


# -- events drive the clocks ---------------------------------------------------------------


def _case(severity: Severity, opened: datetime):
    proposal = SeverityProposal(severity, (), Category.ENGINEERING_QUALITY)
    c = {"contact_id": "ct-1", "region": "shenzhen", "customer_id": "cu-1", "channel": "hotline"}
    return open_case("case-1", "SZ-2026-000001", c, proposal, Routing(), opened)


def _sync(case):
    settle(case, POLICIES, CAL)
    return case.clocks


def test_opened_starts_first_reply_and_resolution():
    case = _case(Severity.GENERAL, at(2025, 9, 30, 16))
    clocks = _sync(case)
    assert set(clocks) == {"first_reply", "resolution"}
    assert next_due(clocks) == at(2025, 10, 9, 11)
    assert [c.name for c in clocks_to_fire(clocks, at(2025, 10, 9, 12))] == ["first_reply"]


def test_progress_report_stops_first_reply_and_starts_progress_updates():
    case = _case(Severity.GENERAL, at(2025, 10, 13, 9))
    _sync(case)
    case.report_progress("已派工程师", actor="a", at=at(2025, 10, 13, 10))
    clocks = _sync(case)
    assert clocks["first_reply"].stopped and not is_breached(
        clocks["first_reply"], at(2025, 10, 20)
    )
    assert clocks["progress_update"].due_at == at(2025, 10, 15, 10)  # 2 working days
    case.report_progress("材料已到", actor="a", at=at(2025, 10, 14, 10))
    assert _sync(case)["progress_update"].due_at == at(2025, 10, 16, 10)  # restarted


def test_only_progress_reports_count_as_replies():
    case = _case(Severity.GENERAL, at(2025, 10, 13, 9))
    _sync(case)
    case.validate("valid", "已受理", actor="a", at=at(2025, 10, 13, 9, 30))
    case.escalate("VIP", actor="a", at=at(2025, 10, 13, 9, 40))
    case.assign("engineering", "e1", actor="a", at=at(2025, 10, 13, 9, 50))
    clocks = _sync(case)
    assert clocks["first_reply"].active


def test_crisis_starts_on_site_and_resolution_stops_clocks():
    case = _case(Severity.CRISIS, at(2025, 10, 2, 22))
    clocks = _sync(case)
    assert set(clocks) == {"first_reply", "resolution", "on_site"}
    assert clocks["on_site"].due_at == at(2025, 10, 3, 0)
    case.record_on_site_response(actor="mgr", at=at(2025, 10, 2, 23))
    assert _sync(case)["on_site"].stopped


def test_classification_retargets_running_clocks():
    case = _case(Severity.GENERAL, at(2025, 10, 13, 9))
    assert _sync(case)["first_reply"].due_at == at(2025, 10, 13, 13)
    case.validate("valid", "ok", actor="a", at=at(2025, 10, 13, 9, 5))
    case.classify("major", "engineering_quality", actor="a", at=at(2025, 10, 13, 9, 10))
    clocks = _sync(case)
    assert clocks["first_reply"].due_at == at(2025, 10, 13, 11)  # 2 working hours from opening
    assert clocks["resolution"].due_at == at(2025, 10, 15, 18)  # 3 working days


def test_waiting_for_customer_pauses_everything_and_resume_pushes():
    case = _case(Severity.GENERAL, at(2025, 10, 13, 9))
    _sync(case)
    case.wait_for_customer("等待照片", actor="a", at=at(2025, 10, 13, 10))
    clocks = _sync(case)
    assert all(c.paused for c in clocks.values())
    assert next_due(clocks) is None
    case.customer_responded(actor="a", at=at(2025, 10, 14, 10))
    clocks = _sync(case)
    assert clocks["first_reply"].due_at == at(2025, 10, 14, 13)
    assert not any(c.paused for c in clocks.values())


def test_breach_marks_the_clock_so_it_fires_once():
    case = _case(Severity.GENERAL, at(2025, 10, 13, 9))
    clocks = _sync(case)
    now = at(2025, 10, 13, 13, 1)
    (due,) = clocks_to_fire(clocks, now)
    case.record_sla_breach(due.name, due.due_at, at=now)
    clocks = _sync(case)
    assert clocks["first_reply"].breached
    assert clocks_to_fire(clocks, now) == []
    # a late reply still stops it, and it stays a breach
    case.report_progress("抱歉久等", actor="a", at=at(2025, 10, 13, 14))
    clocks = _sync(case)
    assert clocks["first_reply"].stopped and is_breached(clocks["first_reply"], now)


def test_resolve_stops_resolution_and_progress_close_stops_all_reopen_restarts():
    case = _case(Severity.GENERAL, at(2025, 10, 13, 9))
    _sync(case)
    case.report_progress("在处理", actor="a", at=at(2025, 10, 13, 10))
    case.force_close("客户撤诉", actor="sup", at=at(2025, 10, 13, 11))
    clocks = _sync(case)
    assert all(c.stopped for c in clocks.values())
    case.reopen("客户再次来电", actor="sup", at=at(2025, 10, 14, 9))
    clocks = _sync(case)
    assert not clocks["resolution"].stopped
    assert clocks["resolution"].started_at == at(2025, 10, 14, 9)
    assert clocks["first_reply"].stopped


def test_events_carry_what_apply_events_needs():
    case = _case(Severity.MAJOR, at(2025, 10, 13, 9))
    for _, event in case.pull_events():
        payload = event.model_dump(mode="json")
        assert payload["region"] == "shenzhen" and payload["severity"] == "major"
        assert datetime.fromisoformat(payload["occurred_at"]) == at(2025, 10, 13, 9)
    assert ev.CASE_OPENED.startswith("crm.cases.case.")
