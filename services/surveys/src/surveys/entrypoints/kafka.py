"""Every Kafka subscription of surveys: what happens when each event arrives."""

from __future__ import annotations

from crm_contracts import topics
from crm_contracts.envelope import CloudEvent
from crm_contracts.events.cases import CaseEventBase
from crm_contracts.events.partner import (
    ContractSigned,
    CustomerUpserted,
    OccupancyChanged,
    RepairWorkOrderCompleted,
    UnitDelivered,
)
from crm_contracts.registry import EVENT_TYPES
from crm_runtime.kafka import BatchSubscription, Subscription

from surveys.deps import SurveysDeps
from surveys.handlers import inbound

# Every case event carries the case's state; these are the ones surveys reads.
CASE_TYPES = tuple(t for t, spec in EVENT_TYPES.items()
                   if spec.topic == topics.CASES_CASES and issubclass(spec.data_model, CaseEventBase))
# Seen on the topics above, deliberately not acted on (an incident's cases carry their own state).
IGNORED_TYPES = ("crm.cases.collective-incident.detected.v1",)


def batch_subscriptions(deps: SurveysDeps) -> list[BatchSubscription]:
    """A region's onboarding brings its whole customer archive at once: absorb it in batches."""

    async def on_customers_upserted(batch: list[tuple[CloudEvent, CustomerUpserted]]) -> None:
        await inbound.upsert_customers(deps, [(data, event.region, event.time) for event, data in batch])

    return [BatchSubscription(topics.PARTNER_CUSTOMERS, ("crm.partner.customer.upserted.v1",), on_customers_upserted)]


def subscriptions(deps: SurveysDeps) -> list[Subscription]:
    async def on_unit_delivered(event: CloudEvent, data: UnitDelivered) -> None:
        await inbound.on_unit_delivered(deps, data, event.region)

    async def on_occupancy_changed(event: CloudEvent, data: OccupancyChanged) -> None:
        await inbound.on_occupancy_changed(deps, data, event.region)

    async def on_contract_signed(event: CloudEvent, data: ContractSigned) -> None:
        await inbound.on_contract_signed(deps, data, event.region)

    async def on_repair_completed(event: CloudEvent, data: RepairWorkOrderCompleted) -> None:
        await inbound.on_repair_completed(deps, data, event.region)

    async def on_case_event(event: CloudEvent, data: CaseEventBase) -> None:
        await inbound.on_case_event(deps, event.type, data, event.id)

    cases = Subscription(topics.CASES_CASES)
    for type_ in CASE_TYPES:
        cases = cases.on(type_, on_case_event)
    return [
        Subscription(topics.PARTNER_UNITS)
        .on("crm.partner.unit.delivered.v1", on_unit_delivered)
        .on("crm.partner.unit.occupancy-changed.v1", on_occupancy_changed),
        Subscription(topics.PARTNER_SALES).on("crm.partner.sales.contract-signed.v1", on_contract_signed),
        Subscription(topics.PARTNER_REPAIRS).on("crm.partner.repair.work-order-completed.v1", on_repair_completed),
        cases,
    ]
