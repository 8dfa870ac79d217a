"""What becomes of a contact: the severity rules outrank intake's kind hint, a hint given
with confidence 0 is shown as unclassified, and a workable contact is answered once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cases.domain.contacts import (
    OpenCaseSummary,
    WorkItem,
    WorkStatus,
    case_to_join,
    opens_case,
    shown_kind,
)
from cases.domain.errors import DomainError
from cases.domain.severity import Category, Severity, SeverityContext, propose_severity

AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize("subject, body", [
    ("前台来访登记", "业主来前台说家里厨房燃气泄漏，点火时发生闪燃，她母亲被烧伤已送医院。"),
    ("Front desk visit", "A gas leak in her kitchen caused a flash fire; her mother was burned and taken to hospital."),
])
def test_a_danger_to_people_opens_a_crisis_case_whatever_the_hint(subject, body):
    proposal = propose_severity(subject, body, SeverityContext(kind_hint="consultation"))
    assert proposal.severity is Severity.CRISIS
    assert opens_case("consultation", proposal)
    assert opens_case("praise", proposal)


def test_a_major_hazard_opens_a_case_and_an_ordinary_question_does_not():
    hazard = propose_severity("咨询", "楼道里有漏电的插座，孩子差点触电")
    assert hazard.severity is Severity.MAJOR and opens_case("consultation", hazard)
    question = propose_severity("交房时间", "请问8栋什么时候交房？")
    assert question.severity is Severity.GENERAL
    assert not opens_case("consultation", question) and not opens_case("suggestion", question)
    assert opens_case("complaint", question) and opens_case("repair", question)


def test_a_hint_given_with_confidence_zero_is_shown_as_unclassified():
    assert shown_kind("consultation", 0.0) == "unclassified"
    assert shown_kind("consultation", 0.4) == "consultation"
    assert shown_kind("praise", None) == "praise"  # an older intake that sends no confidence


def test_a_further_contact_joins_the_open_case_about_the_same_matter():
    open_cases = [OpenCaseSummary("c-lift", Category.PROPERTY_MANAGEMENT, "Harbour View"),
                  OpenCaseSummary("c-leak", Category.ENGINEERING_QUALITY, "Harbour View")]
    assert case_to_join(open_cases, category=Category.ENGINEERING_QUALITY, project="Harbour View") == "c-leak"
    assert case_to_join(open_cases, category=Category.ENGINEERING_QUALITY, project=None) == "c-leak"
    assert case_to_join(open_cases, category=Category.ENGINEERING_QUALITY, project="Sea Breeze") is None
    assert case_to_join(open_cases, category=Category.DESIGN, project="Harbour View") is None
    in_shenzhen = [OpenCaseSummary("c-sz", Category.ENGINEERING_QUALITY, "Harbour View", "shenzhen")]
    assert case_to_join(in_shenzhen, category=Category.ENGINEERING_QUALITY, project=None, region="shenzhen") == "c-sz"
    assert case_to_join(in_shenzhen, category=Category.ENGINEERING_QUALITY, project=None, region="wuhan") is None


def test_a_workable_contact_is_answered_once_and_then_may_still_become_a_case():
    item = WorkItem("ct-1", "shenzhen")
    answered = item.answered(" 6月30日交房 ", by="agent-1", at=AT)
    assert answered.status is WorkStatus.ANSWERED and answered.answer.text == "6月30日交房"
    assert answered.answered("6月30日交房", by="agent-2", at=AT) is answered  # a retried request
    with pytest.raises(DomainError) as refused:
        answered.answered("另一个答复", by="agent-2", at=AT)
    assert refused.value.field == "status"
    with pytest.raises(DomainError) as empty:
        item.answered("  ", by="agent-1", at=AT)
    assert empty.value.field == "answer"
    opened = answered.case_opened("case-1")
    assert opened.status is WorkStatus.CASE_OPENED and opened.case_id == "case-1"
    assert opened.case_opened("case-1") == opened
    with pytest.raises(DomainError):
        opened.answered("太晚了", by="agent-1", at=AT)
    with pytest.raises(DomainError):
        opened.case_opened("case-2")
