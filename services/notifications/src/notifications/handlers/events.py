"""Delivery events, built with the contract models at the producer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_contracts import topics
from crm_contracts.envelope import new_event
from crm_contracts.events.notifications import NotificationFailed, NotificationSent
from crm_runtime.outbox import OutgoingEvent

SOURCE = "/crm/notifications"
SENT = "crm.notifications.notification.sent.v1"
FAILED = "crm.notifications.notification.failed.v1"


def _base(doc: dict[str, Any]) -> dict[str, Any]:
    return {"notification_id": doc["_id"], "customer_id": doc.get("customer_id"),
            "staff_recipient": doc.get("staff_recipient"), "channel": doc["channel"],
            "template": doc["template_id"], "language": doc["language"],
            "cause_event_id": doc["cause_event_id"], "case_id": doc.get("case_id"),
            "survey_id": doc.get("survey_id")}


def sent(doc: dict[str, Any], at: datetime) -> list[OutgoingEvent]:
    data = NotificationSent(**_base(doc), sent_at=at)
    return [OutgoingEvent(topics.NOTIFICATIONS_DELIVERIES, new_event(
        SENT, source=SOURCE, subject=doc["_id"], region=doc["region"], data=data, id=f"{doc['_id']}:sent", time=at))]


def failed(doc: dict[str, Any], error: str, at: datetime, *, attempts: int = 1,
           will_retry: bool = False) -> list[OutgoingEvent]:
    data = NotificationFailed(**_base(doc), error=error, failed_at=at, attempts=max(1, attempts),
                              will_retry=will_retry)
    return [OutgoingEvent(topics.NOTIFICATIONS_DELIVERIES, new_event(
        FAILED, source=SOURCE, subject=doc["_id"], region=doc["region"], data=data,
        id=f"{doc['_id']}:failed:{max(1, attempts)}", time=at))]
