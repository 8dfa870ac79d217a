# ruff: noqa: E501  (message texts read better unbroken)
"""The default templates, version 1 of each (template id x language x channel).

The subscription welcome and the milestone notice follow the industry material word for
word; the others are written in the same voice. SMS bodies carry no sign: the provider
prefixes the registered sign name (【客户中心】).
"""

from __future__ import annotations

from notifications.domain.templates import Template

_MILESTONE_ZH = {
    "topped_out": "已封顶", "frame_removed": "已落架", "landscaping_started": "园建已开始",
    "site_open_day": "将举办工地开放日", "delivery": "即将交付",
}
_MILESTONE_EN = {
    "topped_out": "has been topped out", "frame_removed": "has had its scaffolding removed",
    "landscaping_started": "has started landscaping", "site_open_day": "will hold a site open day",
    "delivery": "is about to be delivered",
}
_BUILDING_ZH = "{% if building %}{{ building }}栋{% endif %}"
_BUILDING_EN = "{% if building %}, building {{ building }},{% endif %}"

# template id -> {language: (subject, body)}
TEXTS: dict[str, dict[str, tuple[str, str]]] = {
    "case.acknowledged": {
        "zh-CN": ("投诉已受理 {{ case_number }}",
                  "{{ customer_name }}您好!您的投诉已受理,编号{{ case_number }},我们将尽快处理并及时告知进展。[{{ centre_name }}]"),
        "en": ("Complaint received: {{ case_number }}",
               "Dear {{ customer_name }}, we have received your complaint, number {{ case_number }}. "
               "We will handle it promptly and keep you informed. [{{ centre_name }}]"),
    },
    "case.progress": {
        "zh-CN": ("投诉进展 {{ case_number }}",
                  "{{ customer_name }}您好!您的投诉{{ case_number }}最新进展:{{ message }}[{{ centre_name }}]"),
        "en": ("Progress on {{ case_number }}",
               "Dear {{ customer_name }}, news on your complaint {{ case_number }}: {{ message }} [{{ centre_name }}]"),
    },
    "case.resolved": {
        "zh-CN": ("请确认处理结果 {{ case_number }}",
                  "{{ customer_name }}您好!您的投诉{{ case_number }}已处理:{{ summary }}请回复或致电确认处理结果是否满意。[{{ centre_name }}]"),
        "en": ("Please confirm the result of {{ case_number }}",
               "Dear {{ customer_name }}, your complaint {{ case_number }} has been handled: {{ summary }} "
               "Please reply or call us to confirm whether you are satisfied. [{{ centre_name }}]"),
    },
    "staff.case_assigned": {
        "zh-CN": ("新分派案件 {{ case_number }}", "案件{{ case_number }}已分派给{{ department }}:{{ title }}"),
        "en": ("Case assigned: {{ case_number }}", "Case {{ case_number }} is now owned by {{ department }}: {{ title }}"),
    },
    "staff.case_escalated": {
        "zh-CN": ("案件升级 {{ case_number }}", "案件{{ case_number }}已升级至{{ escalated_to }},原因:{{ reason }}"),
        "en": ("Case escalated: {{ case_number }}",
               "Case {{ case_number }} was escalated to {{ escalated_to }}. Reason: {{ reason }}"),
    },
    "staff.sla_breached": {
        "zh-CN": ("案件超时 {{ case_number }}", "案件{{ case_number }}的{{ clock }}时限({{ due_at }})已超时,请尽快处理。"),
        "en": ("Deadline missed: {{ case_number }}",
               "Case {{ case_number }} missed its {{ clock }} deadline ({{ due_at }}). Please act now."),
    },
    "staff.collective_incident": {
        "zh-CN": ("集体投诉预警 {{ project }}",
                  "预警:{{ project }}{% if building %}{{ building }}栋{% endif %}出现集体投诉,{{ customer_count }}位客户,"
                  "类别{{ category }},级别{{ severity }}。请立即启动危机处理流程。"),
        "en": ("Collective complaint: {{ project }}",
               "Warning: {{ customer_count }} customers of {{ project }}{% if building %}, building {{ building }}"
               "{% endif %} complain together ({{ category }}, {{ severity }}). Start the crisis procedure now."),
    },
    "sales.welcome": {
        "zh-CN": ("您的客户专员",
                  "{{ customer_name }}先生/女士:您好!我是{{ company }}{{ project_name }}的客户专员{{ specialist_name }},"
                  "感谢您选购了{{ project_name }}项目,若您对我们的服务有任何建议,欢迎您与我沟通;{{ specialist_phone }}"),
        "en": ("Your customer specialist",
               "Dear {{ customer_name }}, I am {{ specialist_name }}, your customer specialist at {{ company }} "
               "{{ project_name }}. Thank you for choosing {{ project_name }}; any suggestion about our service "
               "is welcome: {{ specialist_phone }}"),
    },
    **{f"milestone.{m}": {
        "zh-CN": ("项目进展信息",
                  "项目进展信息:业主朋友您好!您购买的{{ project_name }}" + _BUILDING_ZH + "近日" + _MILESTONE_ZH[m]
                  + ",请持续关注![{{ centre_name }}]"),
        "en": ("Project progress",
               "Project progress: dear owner, {{ project_name }}" + _BUILDING_EN + " " + _MILESTONE_EN[m]
               + ". Stay tuned! [{{ centre_name }}]"),
    } for m in _MILESTONE_ZH},
    "unit.move_in": {
        "zh-CN": ("入伙通知",
                  "{{ customer_name }}您好!恭喜您喜迁新居,{{ project_name }}{{ building }}栋{{ unit }}已交付。"
                  "入住验房指引及报修方式请咨询物业前台。[{{ centre_name }}]"),
        "en": ("Move-in notice",
               "Dear {{ customer_name }}, congratulations: {{ project_name }} building {{ building }}, unit {{ unit }} "
               "has been handed over. The property front desk has the inspection guide and how to report repairs. "
               "[{{ centre_name }}]"),
    },
    "survey.visit_notice": {
        "zh-CN": ("回访通知", "{{ customer_name }}您好!我们将于{{ visit_date }}前后对您进行回访,感谢您的支持。[{{ centre_name }}]"),
        "en": ("Return visit notice",
               "Dear {{ customer_name }}, we will visit or call you around {{ visit_date }}. Thank you. [{{ centre_name }}]"),
    },
    "care.birthday": {
        "zh-CN": ("生日快乐", "{{ customer_name }}您好!今天是您的生日,祝您生日快乐,阖家幸福!回复TD退订[{{ centre_name }}]"),
        "en": ("Happy birthday",
               "Dear {{ customer_name }}, happy birthday from all of us! Reply TD to unsubscribe. [{{ centre_name }}]"),
    },
    "care.holiday": {
        "zh-CN": ("节日问候", "{{ customer_name }}您好!{{ holiday_name }}将至,祝您节日快乐,阖家安康!回复TD退订[{{ centre_name }}]"),
        "en": ("Season's greetings",
               "Dear {{ customer_name }}, {{ holiday_name }} is coming: best wishes to you and your family! "
               "Reply TD to unsubscribe. [{{ centre_name }}]"),
    },
}

_CUSTOMER = ("sms", "email", "letter")


def channels_of(template_id: str) -> tuple[str, ...]:
    return ("staff",) if template_id.startswith("staff.") else _CUSTOMER


def default_templates() -> list[Template]:
    return [
        Template(template_id, language, channel, 1, "" if channel == "sms" else subject, body)
        for template_id, texts in TEXTS.items()
        for language, (subject, body) in texts.items()
        for channel in channels_of(template_id)
    ]
