"""Every Kafka subscription of notifications: the directory's sources, and each cause event
turned into messages by its trigger rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crm_contracts import topics
from crm_contracts.envelope import CloudEvent
from crm_contracts.events.partner import CustomerUpserted, OccupancyChanged, UnitDelivered
from crm_runtime.kafka import BatchSubscription, Subscription

from notifications import handlers
from notifications.deps import NotificationsDeps
from notifications.domain import triggers as t

CASE = "crm.cases.case"


def batch_subscriptions(deps: NotificationsDeps) -> list[BatchSubscription]:
    """A region's archive arrives at once: absorbed 500 customers a batch."""

    async def on_customers(batch: list[tuple[CloudEvent, CustomerUpserted]]) -> None:
        await handlers.absorb_customers(deps, batch)

    return [BatchSubscription(topics.PARTNER_CUSTOMERS, ("crm.partner.customer.upserted.v1",), on_customers)]


def subscriptions(deps: NotificationsDeps) -> list[Subscription]:
    supervisors = deps.settings.supervisors
    tz = deps.tz

    def cause(rule: Callable[[CloudEvent, Any], list[t.Intent]]) -> Callable[[CloudEvent, Any], Any]:
        async def handle(event: CloudEvent, data: Any) -> None:
            await handlers.handle_cause(deps, event, rule(event, data))
        return handle

    async def on_delivered(event: CloudEvent, data: UnitDelivered) -> None:
        await handlers.record_unit(deps, data.customer_id, data.project, data.building, data.unit, None)
        await handlers.handle_cause(deps, event, t.on_unit_delivered(event.id, event.region, data))

    async def on_occupancy(event: CloudEvent, data: OccupancyChanged) -> None:
        await handlers.record_unit(deps, data.customer_id, data.project, data.building, data.unit,
                                   data.occupancy.value)

    cases = (
        Subscription(topics.CASES_CASES, workers=2)
        .on(f"{CASE}.opened.v1", cause(lambda e, d: t.on_case_opened(e.id, d)))
        .on(f"{CASE}.validated.v1", cause(lambda e, d: t.on_case_validated(e.id, d)))
        .on(f"{CASE}.progress-reported.v1", cause(lambda e, d: t.on_progress_reported(e.id, d)))
        .on(f"{CASE}.resolved.v1", cause(lambda e, d: t.on_case_resolved(e.id, d)))
        .on(f"{CASE}.assigned.v1", cause(lambda e, d: t.on_case_assigned(e.id, d)))
        .on(f"{CASE}.escalated.v1", cause(lambda e, d: t.on_case_escalated(e.id, d, supervisors)))
        .on(f"{CASE}.sla-breached.v1", cause(lambda e, d: t.on_sla_breached(e.id, d, supervisors)))
        .on("crm.cases.collective-incident.detected.v1",
            cause(lambda e, d: t.on_collective_incident(e.id, d, supervisors)))
    )
    return [
        cases,
        Subscription(topics.PARTNER_SALES).on(
            "crm.partner.sales.contract-signed.v1", cause(lambda e, d: t.on_contract_signed(e.id, e.region, d))),
        Subscription(topics.PARTNER_PROJECTS).on(
            "crm.partner.project.milestone-reached.v1", cause(lambda e, d: t.on_milestone(e.id, e.region, d, tz))),
        Subscription(topics.PARTNER_UNITS)
        .on("crm.partner.unit.delivered.v1", on_delivered)
        .on("crm.partner.unit.occupancy-changed.v1", on_occupancy),
        Subscription(topics.SURVEYS_SURVEYS).on(
            "crm.surveys.survey.scheduled.v1", cause(lambda e, d: t.on_survey_scheduled(e.id, e.region, d, tz))),
    ]


# Seen on the topics above, deliberately not turned into messages.
IGNORED = (
    *(f"{CASE}.{s}.v1" for s in (
        "classified", "customer-confirmed", "closed", "reopened", "lesson-recorded", "contact-attached",
        "assessed", "investigation-started", "findings-recorded", "legal-opinion-recorded", "handling-started",
        "department-approved", "waiting-for-customer", "customer-responded", "on-site-responded",
        "collective-linked")),
    "crm.surveys.survey.excluded.v1", "crm.surveys.survey.completed.v1", "crm.surveys.survey.expired.v1",
)
