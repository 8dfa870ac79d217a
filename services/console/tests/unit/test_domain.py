"""The console's pure rules: both languages complete, masking, SLA time left in working
hours, which buttons a role sees, and problems told in the user's language."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

from console.domain import actions
from console.domain.i18n import Translator, pick_language
from console.domain.labels import LABELS
from console.domain.masking import mask_phone, shown_phone
from console.domain.problems import tell
from console.domain.sla import clock_view, working_minutes

SRC = Path(str(files("console")))


def test_every_text_has_both_languages_and_every_key_used_exists():
    assert all(zh.strip() and en.strip() for zh, en in LABELS.values())
    used = set()
    for path in [*SRC.rglob("*.html"), *SRC.rglob("*.py")]:
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z_.]+)["']""", path.read_text()))
        used |= set(re.findall(r"""error = "(signin\.[a-z_]+)\"""", path.read_text()))
    assert used, "the scan found the templates"
    missing = sorted(k for k in used if k not in LABELS)
    assert missing == []


def test_every_action_has_a_label_and_its_fields_too():
    for route, action in actions.ACTIONS.items():
        assert f"action.{route}" in LABELS
        for f in action.fields:
            assert f"field.{f.name}" in LABELS, (route, f.name)


def test_language_choice_then_browser_then_chinese():
    assert pick_language("en", "zh-CN,zh") == "en"
    assert pick_language(None, "en-US,en;q=0.9") == "en"
    assert pick_language(None, "zh-TW") == "zh-CN"
    assert pick_language("fr", "fr-FR") == "zh-CN"


def test_dates_are_shown_in_china_time_in_each_language():
    moment = datetime(2026, 3, 1, 1, 30, tzinfo=UTC)  # 09:30 in Beijing
    assert Translator("zh-CN").datetime(moment) == "2026年3月1日 09:30"
    assert Translator("en").datetime(moment.isoformat()) == "1 Mar 2026, 09:30"
    assert Translator("en").number(1234567) == "1,234,567"


def test_a_phone_is_masked_except_for_the_roles_that_call_back():
    assert mask_phone("138-1234-5678") == "138****5678"
    assert shown_phone("13812345678", {"auditor"}) == "138****5678"
    assert shown_phone("13812345678", {"agent"}) == "13812345678"


def test_working_time_left_skips_nights_weekends_and_holidays():
    friday_5pm = datetime(2026, 3, 6, 9, tzinfo=UTC)  # 17:00 in Beijing, a Friday
    monday_10am = datetime(2026, 3, 9, 2, tzinfo=UTC)
    assert working_minutes(friday_5pm, monday_10am) == 120
    # National Day week 2026: 1-7 October are off.
    before, after = datetime(2026, 9, 30, 9, tzinfo=UTC), datetime(2026, 10, 8, 2, tzinfo=UTC)
    assert working_minutes(before, after) == 120


def test_a_clock_past_its_due_time_is_breached_by_the_working_time_late():
    now = datetime(2026, 3, 9, 3, tzinfo=UTC)  # Monday 11:00
    view = clock_view({"name": "first_reply", "due_at": "2026-03-09T09:30:00+08:00",
                       "target": {"value": 4, "unit": "working_hours"}}, now)
    assert (view.state, view.minutes) == ("breached", 90)
    met = clock_view({"name": "first_reply", "due_at": "2026-03-09T09:30:00+08:00",
                      "stopped_at": "2026-03-09T09:00:00+08:00"}, now)
    assert met.state == "met"


def test_an_agent_sees_no_supervisor_button_and_an_auditor_none():
    allowed = ["assign", "reassign", "report_progress", "force_close", "record_findings"]
    agent = {a.route for a in actions.actions_for(allowed, {"agent"})}
    assert agent == {"assign", "findings", "progress"}
    supervisor = {a.route for a in actions.actions_for(allowed, {"supervisor"})}
    assert {"reassign", "force-close"} <= supervisor
    assert actions.actions_for(allowed, {"auditor"}) == []


def test_a_form_leaves_blank_optional_fields_out_but_sends_blank_required_ones():
    body = actions.form_body(actions.ACTIONS["assign"], {"department": " engineering ", "assignee": ""})
    assert body == {"department": "engineering"}
    assert actions.form_body(actions.ACTIONS["validate"], {"outcome": "valid"}) == {"outcome": "valid",
                                                                                  "explanation": ""}
    assert actions.form_body(actions.ACTIONS["customer-confirmation"], {"accepted": "false"})["accepted"] is False


def test_a_problem_is_told_in_the_users_language_naming_the_field():
    problem = {"title": "Invalid request", "status": 422, "detail": "explanation: too short",
               "errors": [{"field": "explanation", "message": "too short", "type": "string_too_short"}]}
    told = tell(422, problem, Translator("zh-CN"))
    assert told.headline == "请检查填写的内容"
    assert [m.text for m in told.messages] == ["请填写「说明（告知客户）」"]
    assert told.fields == {"explanation"}
    closing = tell(409, {"title": "Closure checklist incomplete", "field": "status",
                         "missing": ["customer_accepted"]}, Translator("en"))
    assert closing.headline == "This cannot be done at this step"
    assert [m.text for m in closing.messages] == ["Not done yet: Customer accepted"]
