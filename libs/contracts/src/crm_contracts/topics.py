"""Every Kafka topic of the platform, in one place.

Partners publish to the `crm.partner.*` topics; each service produces to its own
topic; `crm.dlq.<service>` holds what a service could not process.
"""

from __future__ import annotations

# Inbound, published by integration partners (or through intake's partner gateway).
PARTNER_CUSTOMERS = "crm.partner.customers.v1"
PARTNER_SALES = "crm.partner.sales.v1"
PARTNER_PROJECTS = "crm.partner.projects.v1"
PARTNER_UNITS = "crm.partner.units.v1"
PARTNER_REPAIRS = "crm.partner.repairs.v1"
PARTNER_HOTLINE = "crm.partner.hotline.v1"
PARTNER_FORUM = "crm.partner.forum.v1"

# Produced by the platform.
INTAKE_CONTACTS = "crm.intake.contacts.v1"
CASES_CASES = "crm.cases.cases.v1"
NOTIFICATIONS_DELIVERIES = "crm.notifications.deliveries.v1"
SURVEYS_SURVEYS = "crm.surveys.surveys.v1"

PARTNER_TOPICS = (
    PARTNER_CUSTOMERS,
    PARTNER_SALES,
    PARTNER_PROJECTS,
    PARTNER_UNITS,
    PARTNER_REPAIRS,
    PARTNER_HOTLINE,
    PARTNER_FORUM,
)
PLATFORM_TOPICS = (INTAKE_CONTACTS, CASES_CASES, NOTIFICATIONS_DELIVERIES, SURVEYS_SURVEYS)

SERVICES = ("intake", "cases", "notifications", "surveys", "reporting")


def dlq_topic(service: str) -> str:
    """Dead letters of one service: what it could not process after its retries."""
    return f"crm.dlq.{service}"


ALL_TOPICS = (*PARTNER_TOPICS, *PLATFORM_TOPICS, *(dlq_topic(s) for s in SERVICES))

PARTNERS = "partners"
"""The integration partners, as a producer: they publish to Kafka directly or through
intake's partner gateway (`POST /v1/partner-events`)."""

PARTNER_GATEWAY = "intake"
"""The service that forwards partner events POSTed over HTTP onto the partner topics."""

TOPIC_PRODUCER: dict[str, str] = {
    **{topic: PARTNERS for topic in PARTNER_TOPICS},
    INTAKE_CONTACTS: "intake",
    CASES_CASES: "cases",
    NOTIFICATIONS_DELIVERIES: "notifications",
    SURVEYS_SURVEYS: "surveys",
}
"""Who writes each topic: exactly one producer per topic."""

TOPIC_CONSUMERS: dict[str, tuple[str, ...]] = {
    PARTNER_CUSTOMERS: ("intake", "notifications", "surveys", "reporting"),
    PARTNER_SALES: ("notifications", "surveys", "reporting"),
    PARTNER_PROJECTS: ("notifications", "reporting"),
    PARTNER_UNITS: ("intake", "notifications", "surveys", "reporting"),
    PARTNER_REPAIRS: ("cases", "surveys", "reporting"),
    PARTNER_HOTLINE: ("intake", "reporting"),
    PARTNER_FORUM: ("intake", "reporting"),
    INTAKE_CONTACTS: ("cases", "reporting"),
    CASES_CASES: ("notifications", "surveys", "reporting"),
    NOTIFICATIONS_DELIVERIES: ("reporting",),
    SURVEYS_SURVEYS: ("cases", "notifications", "reporting"),
}
"""Which services subscribe to each topic (each as its own consumer group `crm-<service>`)."""

PRODUCER_SOURCE: dict[str, str] = {
    PARTNERS: "/partners",
    "intake": "/crm/intake",
    "cases": "/crm/cases",
    "notifications": "/crm/notifications",
    "surveys": "/crm/surveys",
}
"""The CloudEvents `source` each producer uses; a partner appends its system,
e.g. /partners/sales-crm."""

DLQ_HEADERS: dict[str, str] = {
    "crm-dlq-original-topic": "Topic the message was read from.",
    "crm-dlq-original-partition": "Its partition.",
    "crm-dlq-original-offset": "Its offset.",
    "crm-dlq-error": "Why it could not be processed (a contract error or the last exception).",
    "crm-dlq-attempts": "How many times it was tried.",
    "crm-dlq-service": "The service that gave up on it.",
    "crm-dlq-at": "When, in milliseconds since the epoch.",
}
"""Kafka headers of a dead letter; the value is the original message, byte for byte."""
