"""Intake's use cases: every channel ends here as one `ContactReceived`.

Each function receives `IntakeDeps` (the stores, the keyword configuration, the metrics,
the clock, named by the protocols of `intake.deps`) and knows nothing of HTTP, Kafka or
MongoDB: `entrypoints/` translate requests, events and e-mails into these calls.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crm_contracts import topics
from crm_contracts.envelope import new_event
from crm_contracts.events.intake import ContactReceived
from crm_contracts.events.partner import (
    CustomerUpserted,
    ForumPostPublished,
    HotlineCallRecorded,
    OccupancyChanged,
    UnitDelivered,
)
from crm_contracts.registry import event_type_of
from crm_runtime.outbox import OutgoingEvent

from intake.deps import Directory, IntakeDeps
from intake.domain.contacts import (
    DUPLICATE_WINDOW,
    contact_id_for,
    find_duplicate,
    normalised_text,
)
from intake.domain.customers import (
    ContactIdentity,
    DirectoryEntry,
    Match,
    MatchKind,
    lookup_keys,
    match_customer,
    provisional_customer_id,
)
from intake.domain.kind_hint import classify_kind

SOURCE = "/crm/intake"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceiveContact:
    """A contact from any channel, as the channel described it."""

    channel: str
    region: str | None
    subject: str
    body: str
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    customer_id: str | None = None
    project: str | None = None
    building: str | None = None
    unit: str | None = None
    source_ref: str | None = None
    idempotency_key: str | None = None
    received_at: datetime | None = None
    letter_form: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ContactAccepted:
    contact_id: str
    created: bool  # False when the contact already existed (a repeat)


class UnknownRegion(ValueError):
    """A contact for a region the platform does not serve, or none could be found."""


async def receive_contact(deps: IntakeDeps, cmd: ReceiveContact) -> ContactAccepted:
    """Record a contact once, recognise the customer, hint its kind, fold near-duplicates,
    and queue `ContactReceived` in the same write."""
    contacts, directory = deps.contacts, deps.directory
    # A repeat (same channel reference or Idempotency-Key) is refused by the insert at the
    # end, which changes nothing: no read first, since almost every contact is new.
    contact_id = contact_id_for(cmd.channel, cmd.source_ref, cmd.idempotency_key)
    identity = ContactIdentity(name=cmd.name, phone=cmd.phone, email=cmd.email, project=cmd.project,
                               building=cmd.building, unit=cmd.unit, region=cmd.region)
    match = await _recognise(cmd, identity, directory)
    region = cmd.region or (match.entry.region if match.entry else None)
    if region is None or not deps.known_region(region):
        raise UnknownRegion(region or "")
    project, building, unit = cmd.project, cmd.building, cmd.unit
    if match.unit and not (project and unit):
        project, building, unit = match.unit

    customer_id = match.customer_id
    reply_to: dict[str, str] | None = None
    if customer_id is None and (cmd.phone or cmd.email):
        # An unknown caller still gets an id, so replies reach them and later contacts
        # on any channel find the same customer; merged when the partner's record arrives.
        customer_id = provisional_customer_id(region, cmd.phone or cmd.email or "")
        provisional = DirectoryEntry.build(customer_id, region, names=[cmd.name] if cmd.name else [],
                                           phones=[cmd.phone] if cmd.phone else [],
                                           emails=[cmd.email], provisional=True)
        if await directory.save(provisional):
            contacts.first_of_customer(customer_id)  # a new customer has no earlier contacts to read
        reply_to = {k: v for k, v in (("phone", cmd.phone), ("email", cmd.email)) if v}

    received_at = cmd.received_at or deps.now()
    text = normalised_text(cmd.subject, cmd.body)
    duplicate_of = None
    if customer_id is not None:
        earlier = await contacts.recent_for_customer(customer_id, received_at - DUPLICATE_WINDOW)
        duplicate_of = find_duplicate(text, received_at, [e for e in earlier if e.contact_id != contact_id])
    hint = classify_kind(cmd.subject, cmd.body, deps.keywords_for(region))

    data = ContactReceived(
        contact_id=contact_id, channel=cmd.channel, source_ref=cmd.source_ref or contact_id,
        region=region, project=project, building=building, unit=unit, customer_id=customer_id,
        customer_match=match.kind.value if customer_id == match.customer_id else MatchKind.UNKNOWN.value,
        kind_hint=str(hint.kind), kind_confidence=hint.confidence,  # 0: no keyword, unclassified
        subject=cmd.subject, body=cmd.body, attachments=cmd.attachments, received_at=received_at,
        duplicate_of=duplicate_of, letter_form=cmd.letter_form, reply_to=reply_to,
    )
    event = new_event(event_type_of(ContactReceived), source=SOURCE, subject=contact_id, region=region,
                      data=data)
    created = await contacts.insert(data, [OutgoingEvent(topics.INTAKE_CONTACTS, event)], normalised_text=text,
                                    idempotency_key=cmd.idempotency_key)
    if created:
        deps.metrics.contact_recorded(data, new_provisional_customer=reply_to is not None)
    # Inside the request's or the partner event's trace: this line and the ContactReceived
    # (whose Kafka headers carry the same traceparent) share the trace_id. No personal data.
    log.info("contact recorded" if created else "contact already recorded", extra={
        "contact_id": contact_id, "channel": cmd.channel, "region": region, "event_id": event.id if created else None,
        "customer_match": data.customer_match, "kind_hint": data.kind_hint, "duplicate_of": duplicate_of})
    return ContactAccepted(contact_id, created=created)


async def _recognise(cmd: ReceiveContact, identity: ContactIdentity, directory: Directory) -> Match:
    if cmd.customer_id:
        entry = await directory.get(cmd.customer_id)
        if entry is not None:
            return Match(entry.customer_id, MatchKind.EXACT, entry, "customer_id")
    keys = lookup_keys(identity)
    if not keys:
        return Match(None, MatchKind.UNKNOWN)
    return match_customer(identity, await directory.candidates(keys))


# ------------------------------------------------------------------ partner channel events


def from_hotline_call(data: HotlineCallRecorded, region: str) -> ReceiveContact:
    summary = data.summary.strip()
    return ReceiveContact(
        channel="hotline", region=region, subject=summary.splitlines()[0][:80] if summary else "热线来电",
        body=summary, phone=data.caller_phone, source_ref=data.call_id, received_at=data.started_at,
        attachments=[{"attachment_id": f"recording:{data.call_id}", "filename": "recording",
                      "content_type": "audio/*", "size": 0, "url": str(data.recording_url)}]
        if data.recording_url else [],
    )


def from_forum_post(data: ForumPostPublished, region: str) -> ReceiveContact:
    return ReceiveContact(
        channel="forum", region=region, subject=data.title, body=f"{data.body}\n\n{data.url}",
        name=data.author, phone=data.author_phone, source_ref=data.post_id, received_at=data.published_at,
    )


# ------------------------------------------------------------------ customer directory


def directory_entry(data: CustomerUpserted, region: str, as_of: datetime | None = None) -> DirectoryEntry:
    return DirectoryEntry.build(
        data.customer_id, region, names=[data.name], phones=data.phones, emails=[data.email],
        units=[(u.project, u.building, u.unit) for u in data.units], as_of=as_of,
    )


async def upsert_customers(deps: IntakeDeps,
                           batch: list[tuple[CustomerUpserted, str, datetime | None]]) -> dict[str, list[str]]:
    """Keep the directory current from the partner's customer archive, a batch at a time
    (each record with the time the archive wrote it: an older record never replaces a
    newer one); provisional customers with the same phone or e-mail are merged into the
    real ones. Returns real customer id -> merged provisional ids."""
    entries = [directory_entry(data, region, as_of) for data, region, as_of in batch]
    existing_keys = await deps.directory.save_many(entries)
    return await deps.directory.merge_provisional_many(entries, existing_keys)


async def record_unit(deps: IntakeDeps, data: UnitDelivered | OccupancyChanged, region: str) -> None:
    """A unit event names a customer's unit: add it, so name + unit recognition works.
    A unit already there changes nothing, so the event delivered twice is applied once."""
    directory = deps.directory
    entry = await directory.get(data.customer_id)
    unit = (data.project, data.building, data.unit)
    if entry is None:
        entry = DirectoryEntry(customer_id=data.customer_id, region=region, units=[unit])
    elif unit in entry.units:
        return
    else:
        entry = dataclasses.replace(entry, units=[*entry.units, unit])
    await directory.save(entry)
