"""Every Kafka subscription of intake: what happens when each partner event arrives."""

from __future__ import annotations

from crm_contracts import topics
from crm_contracts.envelope import CloudEvent
from crm_contracts.events.partner import (
    CustomerUpserted,
    ForumPostPublished,
    HotlineCallRecorded,
    OccupancyChanged,
    UnitDelivered,
)
from crm_runtime.kafka import BatchSubscription, PermanentError, Subscription

from intake import handlers
from intake.deps import IntakeDeps


def batch_subscriptions(deps: IntakeDeps) -> list[BatchSubscription]:
    """A region's onboarding brings its whole customer archive at once: absorb it in batches."""

    async def on_customers_upserted(batch: list[tuple[CloudEvent, CustomerUpserted]]) -> None:
        await handlers.upsert_customers(deps, [(data, event.region, event.time) for event, data in batch])

    return [BatchSubscription(topics.PARTNER_CUSTOMERS, ("crm.partner.customer.upserted.v1",), on_customers_upserted)]


def subscriptions(deps: IntakeDeps) -> list[Subscription]:
    async def on_hotline_call_recorded(event: CloudEvent, data: HotlineCallRecorded) -> None:
        await _receive(handlers.from_hotline_call(data, event.region))

    async def on_forum_post_published(event: CloudEvent, data: ForumPostPublished) -> None:
        await _receive(handlers.from_forum_post(data, event.region))

    async def on_unit_event(event: CloudEvent, data: UnitDelivered | OccupancyChanged) -> None:
        await handlers.record_unit(deps, data, event.region)

    async def _receive(cmd: handlers.ReceiveContact) -> None:
        try:
            await handlers.receive_contact(deps, cmd)
        except handlers.UnknownRegion as exc:
            raise PermanentError(f"unknown region {exc}") from exc

    return [
        Subscription(topics.PARTNER_HOTLINE).on("crm.partner.hotline.call-recorded.v1", on_hotline_call_recorded),
        Subscription(topics.PARTNER_FORUM).on("crm.partner.forum.post-published.v1", on_forum_post_published),
        Subscription(topics.PARTNER_UNITS)
        .on("crm.partner.unit.delivered.v1", on_unit_event)
        .on("crm.partner.unit.occupancy-changed.v1", on_unit_event),
    ]
