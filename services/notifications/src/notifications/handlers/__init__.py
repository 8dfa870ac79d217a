"""Notifications' use cases: absorbing the directory, turning cause events into messages,
and the timers that send them when the gate allows.

Rules live in `notifications.domain`; these functions only load, decide through the
domain, store, and send.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from typing import Any

from crm_contracts.envelope import CloudEvent
from crm_contracts.events.partner import CustomerUpserted
from crm_contracts.regions import KNOWN_REGIONS
from crm_runtime.pii import normalise_phone

from notifications.deps import NotificationsDeps
from notifications.domain import triggers as t
from notifications.domain.directory import Contact, Unit
from notifications.handlers.broadcast import BROADCAST_TIMER, plan_broadcast, start_broadcast
from notifications.handlers.dispatch import RECONCILE_TIMER, SEND_TIMER, dispatch, give_up_unconfirmed
from notifications.handlers.messages import plan_one

log = logging.getLogger(__name__)

CARE_TIMER = "care"
CARE_AT = time(9, 0)
LETTERS_TIMER = "letters"
LETTERS_AT = time(18, 0)  # the day's letters go to print in one batch per region

__all__ = ["absorb_customers", "contact_from", "handle_cause", "holiday_greetings", "timer_handlers"]


def contact_from(data: CustomerUpserted, region: str) -> Contact:
    return Contact(
        customer_id=data.customer_id, region=region, name=data.name,
        phones=list(dict.fromkeys(normalise_phone(p) or p for p in data.phones)),
        email=data.email, language=data.preferred_language.value,
        consent={"sms": data.consent.sms, "email": data.consent.email, "letter": data.consent.letter},
        units=[Unit(u.project, u.building, u.unit) for u in data.units], birthday=data.birthday)


async def absorb_customers(deps: NotificationsDeps, batch: list[tuple[CloudEvent, CustomerUpserted]]) -> int:
    return await deps.directory.upsert_many([(contact_from(d, e.region), e.time) for e, d in batch])


async def record_unit(deps: NotificationsDeps, customer_id: str, project: str, building: str, unit: str,
                      occupancy: str | None) -> None:
    await deps.directory.record_unit(customer_id, Unit(project, building, unit), occupancy)


async def handle_cause(deps: NotificationsDeps, event: CloudEvent, intents: list[t.Intent]) -> list[str]:
    """Plan every intent of one cause event and send what is due now. Safe to run twice:
    entries are keyed by (cause, recipient, channel); a repeat resumes what is unsent."""
    due: list[str] = []
    for intent in intents:
        if isinstance(intent.audience, t.Owners):
            await plan_broadcast(deps, intent, event)
        else:
            due += await plan_one(deps, intent, event)
    return [await dispatch(deps, mid) for mid in due]


async def schedule_care(deps: NotificationsDeps, day: date) -> None:
    """The daily timers of each region: care greetings in the morning, the letter batch in the evening."""
    for region in KNOWN_REGIONS:
        payload = {"region": region, "day": day.isoformat()}
        await deps.timers.schedule(f"care:{region}:{day.isoformat()}", CARE_TIMER,
                                   datetime.combine(day, CARE_AT, tzinfo=deps.tz), payload)
        await deps.timers.schedule(f"letters:{region}:{day.isoformat()}", LETTERS_TIMER,
                                   datetime.combine(day, LETTERS_AT, tzinfo=deps.tz), payload)


async def print_letters(deps: NotificationsDeps, region: str, day: date) -> None:
    """Render the region's letter batch of the day (the letters adapter's `render`)."""
    gateway = deps.gateways.get("letter")
    batcher = getattr(gateway, "batcher", None)
    if batcher is None:
        log.warning("no letter batcher: the day's letters are not rendered", extra={"region": region})
        return
    path = await batcher.render(region, day)
    log.info("letter batch rendered", extra={"region": region, "day": day.isoformat(), "path": str(path)})


async def birthdays(deps: NotificationsDeps, region: str, day: date) -> int:
    """Care greetings to the region's customers born on `day` (marketing: gated)."""
    planned = 0
    for customer_id in await deps.directory.born_on(day):
        contact = await deps.directory.get(customer_id)
        if contact is None or contact.region != region or not t.is_birthday(contact.birthday, day):
            continue
        intent = t.birthday_greeting(customer_id, region, day, deps.tz)
        cause = CloudEvent(specversion="1.0", id=intent.cause_key, type="crm.notifications.care.birthday",
                           source="/crm/notifications", time=datetime.combine(day, CARE_AT, tzinfo=deps.tz),
                           subject=customer_id, region=region, data={})
        await handle_cause(deps, cause, [intent])
        planned += 1
    return planned


async def holiday_greetings(deps: NotificationsDeps, region: str, day: date) -> int:
    """On the last working day before a greeted holiday's break: a greeting to every owner
    of the region (a broadcast, marketing class). Returns how many breaks were greeted."""
    breaks = t.holiday_breaks_greeted_on(day)
    for brk in breaks:
        intent = t.holiday_greeting(region, brk, deps.tz)
        cause = CloudEvent(specversion="1.0", id=intent.cause_key, type="crm.notifications.care.holiday",
                           source="/crm/notifications", time=datetime.combine(day, CARE_AT, tzinfo=deps.tz),
                           subject=region, region=region, data={})
        await handle_cause(deps, cause, [intent])
    return len(breaks)


def timer_handlers(deps: NotificationsDeps) -> dict[str, Any]:
    async def on_send(timer: dict[str, Any]) -> None:
        mid = timer["payload"]["id"]
        await dispatch(deps, mid)
        doc = await deps.ledger.get(mid)
        if doc and doc.get("broadcast_id") and doc.get("chunk") is not None:
            await deps.ledger.mark_stale(doc["broadcast_id"], int(doc["chunk"]))

    async def on_broadcast(timer: dict[str, Any]) -> None:
        await start_broadcast(deps, timer["payload"]["id"])

    async def on_reconcile(timer: dict[str, Any]) -> None:
        await give_up_unconfirmed(deps, timer["payload"]["id"])

    async def on_care(timer: dict[str, Any]) -> None:
        day = date.fromisoformat(timer["payload"]["day"])
        await birthdays(deps, timer["payload"]["region"], day)
        await holiday_greetings(deps, timer["payload"]["region"], day)
        await schedule_care(deps, day + timedelta(days=1))

    async def on_letters(timer: dict[str, Any]) -> None:
        await print_letters(deps, timer["payload"]["region"], date.fromisoformat(timer["payload"]["day"]))

    return {SEND_TIMER: on_send, BROADCAST_TIMER: on_broadcast, RECONCILE_TIMER: on_reconcile, CARE_TIMER: on_care,
            LETTERS_TIMER: on_letters}
