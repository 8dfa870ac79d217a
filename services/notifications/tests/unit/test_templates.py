import pytest
from notifications.domain.defaults import TEXTS, default_templates
from notifications.domain.templates import (
    PLACEHOLDERS,
    RenderFailed,
    Template,
    TemplateInvalid,
    check_template,
    render,
)


def test_every_trigger_template_has_both_languages_and_passes_its_own_checks():
    assert set(TEXTS) == set(PLACEHOLDERS)
    seen = set()
    for t in default_templates():
        check_template(t.template_id, t.language, t.channel, t.subject, t.body)
        seen.add((t.template_id, t.language))
    assert seen == {(tid, lang) for tid in PLACEHOLDERS for lang in ("zh-CN", "en")}


def test_milestone_notice_reads_as_the_industry_material_for_one_building_and_the_whole_project():
    t = next(t for t in default_templates()
             if (t.template_id, t.language, t.channel) == ("milestone.topped_out", "zh-CN", "sms"))
    _, body = render(t, {"project_name": "碧水湾", "building": "3", "centre_name": "深圳客户中心"})
    assert body == "项目进展信息:业主朋友您好!您购买的碧水湾3栋近日已封顶,请持续关注![深圳客户中心]"
    _, whole = render(t, {"project_name": "碧水湾", "building": "", "centre_name": "深圳客户中心"})
    assert "您购买的碧水湾近日已封顶" in whole


def test_welcome_names_the_customer_and_the_specialist():
    t = next(t for t in default_templates()
             if (t.template_id, t.language, t.channel) == ("sales.welcome", "zh-CN", "sms"))
    _, body = render(t, {"customer_name": "王", "company": "XX", "project_name": "碧水湾",
                         "specialist_name": "李娜", "specialist_phone": "13800000000"})
    assert body.startswith("王先生/女士:您好!我是XX碧水湾的客户专员李娜,感谢您选购了碧水湾项目")


def test_an_unknown_placeholder_is_refused_naming_it():
    with pytest.raises(TemplateInvalid) as info:
        check_template("case.acknowledged", "zh-CN", "sms", "", "您好 {{ case_number }} {{ phone_number }}")
    assert info.value.placeholder == "phone_number"
    assert info.value.field == "body"
    assert "phone_number" in str(info.value)


def test_a_template_that_does_not_parse_is_refused():
    with pytest.raises(TemplateInvalid) as info:
        check_template("case.acknowledged", "en", "email", "{{ case_number", "x")
    assert info.value.field == "subject"


def test_the_sandbox_does_not_reach_into_python_objects():
    t = Template("case.acknowledged", "en", "sms", 1, "", "{{ case_number.__class__.__mro__ }}")
    with pytest.raises(RenderFailed):
        render(t, {"case_number": "SZ-2026-000001"})


def test_unknown_language_or_channel_is_refused_by_field():
    with pytest.raises(TemplateInvalid) as info:
        check_template("case.acknowledged", "fr", "sms", "", "x")
    assert info.value.field == "language"
    with pytest.raises(TemplateInvalid) as info:
        check_template("case.acknowledged", "en", "fax", "", "x")
    assert info.value.field == "channel"
