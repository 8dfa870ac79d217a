"""Severity proposals: each trigger in Chinese and English, context, category, region edits."""

from __future__ import annotations

import pytest
from cases.domain.severity import (
    Category,
    Severity,
    SeverityContext,
    SeverityRules,
    propose_severity,
)

RULES = SeverityRules.default()


@pytest.mark.parametrize(
    ("subject", "body", "severity", "trigger"),
    [
        # casualties -> crisis
        ("电梯事故", "电梯突然下坠，一名业主受伤送医", Severity.CRISIS, "casualties"),
        ("工地事故", "工人死亡，业主非常恐慌", Severity.CRISIS, "casualties"),
        ("Accident", "A resident was injured by the gate", Severity.CRISIS, "casualties"),
        ("Accident", "Someone died on the site", Severity.CRISIS, "casualties"),
        # media exposure -> crisis
        ("交房延期", "再不解决我们就找媒体曝光", Severity.CRISIS, "media"),
        ("交房延期", "电视台记者明天来采访", Severity.CRISIS, "media"),
        ("交房延期", "这件事已经上了微博热搜", Severity.CRISIS, "media"),
        ("Delay", "I have contacted a journalist", Severity.CRISIS, "media"),
        ("Delay", "This will be all over the media", Severity.CRISIS, "media"),
        # safety hazards -> major
        ("厨房", "闻到很重的燃气泄漏味道", Severity.MAJOR, "safety"),
        ("插座", "卫生间插座漏电", Severity.MAJOR, "safety"),
        ("阳台", "楼上高空坠物很危险", Severity.MAJOR, "safety"),
        ("配电箱", "配电箱起火了", Severity.MAJOR, "safety"),
        ("墙体", "承重墙出现结构裂缝", Severity.MAJOR, "safety"),
        ("Kitchen", "There is a gas leak in the kitchen", Severity.MAJOR, "safety"),
        ("Socket", "My son got an electric shock from the socket", Severity.MAJOR, "safety"),
        ("Garage", "Small fire in the garage", Severity.MAJOR, "safety"),
        ("Wall", "Structural cracks on the load-bearing wall", Severity.MAJOR, "safety"),
        # lawyers and lawsuits -> major
        ("合同", "我已经委托律师，准备起诉", Severity.MAJOR, "legal"),
        ("合同", "我们会去法院", Severity.MAJOR, "legal"),
        ("Contract", "My lawyer will contact you", Severity.MAJOR, "legal"),
        ("Contract", "We will sue the developer", Severity.MAJOR, "legal"),
        ("Contract", "We are preparing a lawsuit", Severity.MAJOR, "legal"),
        # collective complaints -> major
        ("车位", "我们三十户业主联名投诉", Severity.MAJOR, "collective"),
        ("车位", "多户业主准备集体维权", Severity.MAJOR, "collective"),
        ("Parking", "This is a collective complaint from building 5", Severity.MAJOR, "collective"),
    ],
)
def test_each_trigger(subject, body, severity, trigger):
    proposal = propose_severity(subject, body, SeverityContext(), RULES)
    assert proposal.severity is severity
    assert any(r.startswith(trigger + ":") for r in proposal.reasons), proposal.reasons


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("卫生间渗水", "楼上渗水到我家"),
        ("Door", "The front door does not close properly, please fix it"),
        ("Issue", "Tissue box issue; the fireplace design is fine"),  # no sue, no fire
    ],
)
def test_general_otherwise(subject, body):
    proposal = propose_severity(subject, body, SeverityContext(), RULES)
    assert proposal.severity is Severity.GENERAL
    assert proposal.reasons == ()


def test_highest_trigger_wins_and_all_reasons_are_listed():
    proposal = propose_severity("漏电", "孩子触电受伤，我要找律师", None, RULES)
    assert proposal.severity is Severity.CRISIS
    triggers = {r.split(":")[0] for r in proposal.reasons}
    assert triggers == {"casualties", "safety", "legal"}


def test_context_counts_without_words():
    plain = ("车位", "车位划线不清楚")
    assert propose_severity(*plain, SeverityContext(collective=True)).severity is Severity.MAJOR
    assert propose_severity(*plain, SeverityContext(media=True)).severity is Severity.CRISIS
    proposal = propose_severity(*plain, SeverityContext(collective=True))
    assert "collective:context" in proposal.reasons


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("卫生间渗水，墙面开裂", Category.ENGINEERING_QUALITY),
        ("置业顾问承诺的价格和合同不一致", Category.SALES_SERVICE),
        ("热线打了三次没人接，态度很差", Category.CUSTOMER_SERVICE),
        ("物业保安不让车进，电梯也坏了", Category.PROPERTY_MANAGEMENT),
        ("户型设计不合理，采光太差", Category.DESIGN),
        ("The lift is broken and the parking is a mess", Category.PROPERTY_MANAGEMENT),
        ("Water leak through the window", Category.ENGINEERING_QUALITY),
        ("随便说说", Category.OTHER),
    ],
)
def test_category_guess(text, category):
    assert propose_severity(None, text).category is category


def test_repair_contact_defaults_to_engineering():
    proposal = propose_severity("随便", "说说", SeverityContext(kind_hint="repair"))
    assert proposal.category is Category.ENGINEERING_QUALITY


def test_region_can_edit_the_words():
    rules = RULES.merged(
        {
            "triggers": {
                "safety": {"add": ["甲醛超标"], "remove": ["fall"]},
                "media": ["记者"],  # a list replaces
                "pets": {"severity": "major", "add": ["恶犬伤人"]},
            },
            "categories": {"design": {"add": ["日照"]}},
        }
    )
    assert propose_severity("检测", "室内甲醛超标", None, rules).severity is Severity.MAJOR
    assert propose_severity("Balcony", "Risk of a fall", None, RULES).severity is Severity.MAJOR
    assert propose_severity("Balcony", "Risk of a fall", None, rules).severity is Severity.GENERAL
    assert propose_severity("交房", "我要找媒体", None, rules).severity is Severity.GENERAL
    assert propose_severity("交房", "记者来了", None, rules).severity is Severity.CRISIS
    assert propose_severity("小区", "小区恶犬伤人", None, rules).severity is Severity.MAJOR
    assert propose_severity(None, "日照不足", None, rules).category is Category.DESIGN
    # the defaults are untouched
    assert "fall" in RULES.triggers["safety"].keywords
    with pytest.raises(ValueError):
        RULES.merged({"wordz": {}})


def test_mentions_helper_for_media_flags():
    assert RULES.mentions("media", "标题", "准备找电视台") == ["电视台"]
    assert RULES.mentions("media", "nothing here") == []
