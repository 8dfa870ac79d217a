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
