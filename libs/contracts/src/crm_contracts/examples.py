"""One realistic payload per event type.

They appear as message examples in the AsyncAPI document, and the tests send each one
through `new_event` and `parse_event`, so every example is known to be valid.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from crm_contracts.envelope import CloudEvent, new_event
from crm_contracts.topics import PRODUCER_SOURCE

_CASE = {
    "case_id": "case-7f3a9c",
    "case_number": "SZ-2026-000123",
    "region": "shenzhen",
    "customer_id": "cust-100234",
    "contact_ids": ["contact-5b1e02"],
    "severity": "general",
    "category": "engineering_quality",
    "department": "engineering",
    "assignee": "eng-zhaolei",
    "sequence": 3,
    "occurred_at": "2026-03-01T10:05:00+08:00",
    "actor": "agent-liwei",
}

_SURVEY = {
    "survey_id": "survey-0c44d1",
    "customer_id": "cust-100234",
    "project": "SZ-LHY",
    "building": "3",
    "unit": "1202",
    "due_at": "2026-03-08T10:00:00+08:00",
}

_NOTIFICATION = {
    "notification_id": "notif-92ab11",
    "customer_id": "cust-100234",
    "channel": "sms",
    "template": "case.progress-reported",
    "language": "zh-CN",
    "cause_event_id": "2f1d7a52-3c0e-4c8e-9a7e-2d5f0f3e6b11",
    "case_id": "case-7f3a9c",
}

EXAMPLE_DATA: dict[str, dict[str, Any]] = {
    "crm.partner.customer.upserted.v1": {
        "customer_id": "cust-100234",
        "name": "王芳",
        "phones": ["13800138000"],
        "email": "wang.fang@example.com",
        "birthday": "1986-05-17",
        "preferred_language": "zh-CN",
        "consent": {"sms": True, "email": True, "letter": False},
        "units": [{"project": "SZ-LHY", "building": "3", "unit": "1202"}],
    },
    "crm.partner.sales.contract-signed.v1": {
        "contract_id": "contract-SZ-88120",
        "customer_id": "cust-100234",
        "project": "SZ-LHY",
        "project_name": "龙华苑",
        "building": "3",
        "unit": "1202",
        "signed_at": "2025-06-20T15:00:00+08:00",
        "specialist": {"name": "陈静", "phone": "13900139000"},
    },
    "crm.partner.project.milestone-reached.v1": {
        "milestone_id": "ms-SZ-LHY-3-topped",
        "project": "SZ-LHY",
        "project_name": "龙华苑",
        "building": "3",
        "milestone": "topped_out",
        "occurred_at": "2025-11-02T09:00:00+08:00",
    },
    "crm.partner.unit.delivered.v1": {
        "customer_id": "cust-100234",
        "project": "SZ-LHY",
        "building": "3",
        "unit": "1202",
        "delivered_at": "2026-01-10T10:00:00+08:00",
        "fit_out": "finished",
    },
    "crm.partner.unit.occupancy-changed.v1": {
        "customer_id": "cust-100234",
        "project": "SZ-LHY",
        "building": "3",
        "unit": "1202",
        "occupancy": "occupied",
        "changed_at": "2026-02-01T08:00:00+08:00",
    },
    "crm.partner.repair.work-order-completed.v1": {
        "work_order_id": "wo-551902",
        "customer_id": "cust-100234",
        "project": "SZ-LHY",
        "building": "3",
        "unit": "1202",
        "category": "leak",
        "completed_at": "2026-03-05T17:30:00+08:00",
        "case_id": "case-7f3a9c",
    },
    "crm.partner.hotline.call-recorded.v1": {
        "call_id": "call-20260301-0042",
        "caller_phone": "13800138000",
        "started_at": "2026-03-01T09:30:00+08:00",
        "duration_s": 312,
        "agent_id": "agent-liwei",
        "summary": "卫生间天花板漏水，已报修两次未解决，要求尽快处理",
        "recording_url": "https://telephony.example.com/recordings/call-20260301-0042",
    },
    "crm.partner.forum.post-published.v1": {
        "post_id": "post-77821",
        "author": "龙华苑业主",
        "title": "3栋电梯经常停运",
        "body": "最近一个月3栋电梯停了四次，物业没有任何通知。",
        "url": "https://forum.example.com/posts/77821",
        "published_at": "2026-03-01T21:14:00+08:00",
    },
    "crm.intake.contact.received.v1": {
        "contact_id": "contact-5b1e02",
        "channel": "hotline",
        "source_ref": "call-20260301-0042",
        "region": "shenzhen",
        "project": "SZ-LHY",
        "building": "3",
        "unit": "1202",
        "customer_id": "cust-100234",
        "customer_match": "exact",
        "kind_hint": "complaint",
        "subject": "卫生间天花板漏水",
        "body": "卫生间天花板漏水，已报修两次未解决，要求尽快处理",
        "attachments": [
            {
                "attachment_id": "att-31c9",
                "filename": "ceiling.jpg",
                "content_type": "image/jpeg",
                "size": 482113,
            }
        ],
        "received_at": "2026-03-01T09:30:00+08:00",
    },
    "crm.cases.case.opened.v1": {
        **_CASE,
        "status": "received",
        "contact_id": "contact-5b1e02",
        "channel": "hotline",
        "kind_hint": "complaint",
        "title": "卫生间天花板漏水",
        "project": "SZ-LHY",
        "building": "3",
        "unit": "1202",
        "received_at": "2026-03-01T09:30:00+08:00",
        "opened_at": "2026-03-01T09:31:00+08:00",
        "severity_proposal": {
            "severity": "general",
            "category": "engineering_quality",
            "reasons": ["keyword: 漏水"],
        },
    },
    "crm.cases.case.validated.v1": {
        **_CASE,
        "status": "validated",
        "outcome": "valid",
        "explanation": "A leak reported twice without repair: a valid complaint.",
    },
    "crm.cases.case.classified.v1": {
        **_CASE,
        "status": "classified",
        "procedure": "general_complaint",
        "previous_severity": "general",
    },
    "crm.cases.case.assigned.v1": {**_CASE, "status": "received", "source": "region-default"},
    "crm.cases.case.escalated.v1": {
        **_CASE,
        "status": "handling",
        "severity": "major",
        "reason": "third leak report in the building within a month",
        "escalated_to": "region_leadership",
    },
    "crm.cases.case.progress-reported.v1": {
        **_CASE,
        "status": "handling",
        "message_to_customer": "工程部已于今日上门查看，防水维修将于3月4日进行。",
        "first_reply": True,
    },
    "crm.cases.case.resolved.v1": {
        **_CASE,
        "status": "resolved",
        "summary": "Waterproofing of the bathroom above redone; ceiling repainted.",
    },
    "crm.cases.case.customer-confirmed.v1": {**_CASE, "status": "resolved", "accepted": True},
    "crm.cases.case.closed.v1": {
        **_CASE,
        "status": "closed",
        "outcome": "resolved",
        "checklist": {"customer_accepted": True, "department_approved": True},
    },
    "crm.cases.case.reopened.v1": {
        **_CASE,
        "status": "handling",
        "reason": "the leak came back after the first rain",
        "previous_status": "closed",
    },
    "crm.cases.case.sla-breached.v1": {
        **_CASE,
        "status": "classified",
        "clock": "first_reply",
        "due_at": "2026-03-02T09:31:00+08:00",
    },
    "crm.cases.case.lesson-recorded.v1": {
        **_CASE,
        "status": "lesson_recorded",
        "root_cause": "Waterproofing membrane not lapped at the floor drain",
        "responsible_department": "engineering",
        "improvement": "Floor-drain detail added to the pre-delivery inspection checklist",
    },
    "crm.cases.case.contact-attached.v1": {
        **_CASE,
        "status": "handling",
        "contact_id": "contact-5b1f77",
    },
    "crm.cases.case.assessed.v1": {
        **_CASE,
        "status": "assessed",
        "nature": "engineering defect",
        "influence": "one household",
    },
    "crm.cases.case.investigation-started.v1": {**_CASE, "status": "investigating"},
    "crm.cases.case.findings-recorded.v1": {
        **_CASE,
        "status": "investigating",
        "responsible_department": "engineering",
        "responsible_post": "waterproofing subcontractor supervisor",
        "root_cause": "membrane not lapped at the floor drain",
        "evidence_attachment_ids": ["att-31c9"],
    },
    "crm.cases.case.legal-opinion-recorded.v1": {**_CASE, "status": "handling"},
    "crm.cases.case.handling-started.v1": {
        **_CASE,
        "status": "handling",
        "plan": "Redo the waterproofing upstairs, then repaint the ceiling.",
    },
    "crm.cases.case.department-approved.v1": {**_CASE, "status": "resolved"},
    "crm.cases.case.waiting-for-customer.v1": {
        **_CASE,
        "status": "handling",
        "waiting_for_customer": True,
        "reason": "the owner is away until 10 March",
    },
    "crm.cases.case.customer-responded.v1": {**_CASE, "status": "handling"},
    "crm.cases.case.on-site-responded.v1": {
        **_CASE,
        "status": "handling",
        "severity": "crisis",
        "details": "Property manager and engineer on site at 14:10.",
    },
    "crm.cases.case.collective-linked.v1": {
        **_CASE,
        "status": "handling",
        "incident_id": "incident-1a2b",
    },
    "crm.cases.collective-incident.detected.v1": {
        "incident_id": "incident-1a2b",
        "region": "shenzhen",
        "project": "SZ-LHY",
        "building": "3",
        "category": "engineering_quality",
        "severity": "major",
        "customer_count": 6,
        "contact_ids": ["contact-5b1e02", "contact-5b1f77", "contact-5b2a10"],
        "case_ids": ["case-7f3a9c", "case-7f3b01"],
        "channels": ["hotline", "forum"],
        "mentions_media": False,
        "reasons": ["6 customers about engineering_quality in SZ-LHY within 24h"],
        "window_start": "2026-03-01T09:30:00+08:00",
        "window_end": "2026-03-02T09:30:00+08:00",
        "occurred_at": "2026-03-02T11:00:00+08:00",
        "actor": "system",
    },
    "crm.notifications.notification.sent.v1": {
        **_NOTIFICATION,
        "sent_at": "2026-03-01T16:00:05+08:00",
    },
    "crm.notifications.notification.failed.v1": {
        **_NOTIFICATION,
        "error": "sms provider: rate limited",
        "failed_at": "2026-03-01T16:00:05+08:00",
        "attempts": 2,
        "will_retry": True,
    },
    "crm.surveys.survey.scheduled.v1": {
        **_SURVEY,
        "kind": "case_return_visit",
        "case_id": "case-7f3a9c",
        "notice_at": "2026-03-06T10:00:00+08:00",
    },
    "crm.surveys.survey.excluded.v1": {
        **_SURVEY,
        "kind": "living_3_months",
        "reason": "renovating",
    },
    "crm.surveys.survey.completed.v1": {
        **_SURVEY,
        "kind": "case_return_visit",
        "case_id": "case-7f3a9c",
        "scores": {"overall": 5, "timeliness": 4, "attitude": 5},
        "nps": 9,
        "satisfied": True,
        "dissatisfied": False,
        "method": "phone",
        "completed_at": "2026-03-07T14:20:00+08:00",
    },
    "crm.surveys.survey.expired.v1": {
        **_SURVEY,
        "kind": "repair_return_visit",
        "work_order_id": "wo-551902",
        "expired_at": "2026-03-15T00:00:00+08:00",
    },
}

_AGGREGATE_ID_FIELDS = (
    "incident_id",
    "notification_id",
    "survey_id",
    "work_order_id",
    "case_id",
    "contact_id",
    "call_id",
    "post_id",
    "milestone_id",
    "contract_id",
    "customer_id",
)


def example_event(type_: str) -> CloudEvent:
    """The example payload of `type_` in a complete envelope, with a fixed id and time."""
    from crm_contracts.registry import spec_for

    data = EXAMPLE_DATA[type_]
    subject = next(data[name] for name in _AGGREGATE_ID_FIELDS if data.get(name))
    region = data.get("region", "shenzhen")
    return new_event(
        type_,
        source=PRODUCER_SOURCE[spec_for(type_).producer],
        subject=subject,
        region=region,
        data=data,
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:crm:example:{type_}")),
        time=datetime(2026, 3, 1, 10, 5, tzinfo=timezone(timedelta(hours=8))),
    )
