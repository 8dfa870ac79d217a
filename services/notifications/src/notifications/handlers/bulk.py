"""Sending a group of a broadcast's messages at once: the states and the exactly-once rule
of `dispatch`, with the store round trips shared by the group.

Per group: the entries and their customers read concurrently by `_id`; household cap
slots claimed in one insert; one pacing grant for the group; the `sending` marks in one
claim insert and a few bulk updates; one provider call (SMS batch send) or concurrent
single sends; the `sent` marks the same way, their delivery events in one outbox document.
Whatever does not fit the common case (a lost claim, a refusal, a timeout, an entry not
due) goes through `dispatch` or its settling one message at a time.

Order of writes, for crashes: `sending` is stored before the provider is called (a replica
that dies after it leaves the entries `sending`: they become `unconfirmed`, settled by
receipts, never re-sent); the events document before the `sent` marks (a crash between
leaves `sending` too, and the receipt's own `sent` event has the same id, so consumers
see it once).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from notifications.adapters.gateways import OutboundMessage, SendResult, TimeoutUnknown
from notifications.deps import NotificationsDeps
from notifications.domain.directory import Contact
from notifications.domain.gate import Decision, MessageClass, decide
from notifications.handlers import events
from notifications.handlers.dispatch import OPEN, defer_entry, dispatch, mark_unconfirmed, outbound, settle
from notifications.handlers.messages import capped, gate


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def send_group(deps: NotificationsDeps, mids: list[str],
                     planned: dict[str, dict[str, Any]] | None = None) -> dict[str, str]:
    """Send what is due of these entries (of one broadcast); returns each entry's status
    afterwards. `planned`, entries as stored when planned (the chunk's copy), saves their
    reads: a copy that is stale loses its revision claim, and that entry goes through
    `dispatch`, which reads it. Only an open copy is used as is; any other is read."""
    planned = planned or {}
    copies = [dict(planned[m]) for m in mids if m in planned and planned[m].get("status") in OPEN]
    docs = copies + await deps.ledger.get_many(m for m in mids if m not in {c["_id"] for c in copies})
    status: dict[str, str] = {mid: "missing" for mid in mids}
    contacts = await deps.directory.get_many(d["customer_id"] for d in docs if d.get("customer_id"))
    now = deps.clock()
    ready: list[dict[str, Any]] = []
    one_by_one: list[str] = []
    for doc in docs:
        status[doc["_id"]] = str(doc["status"])
        if doc["status"] not in OPEN:
            if doc["status"] == "sending":
                one_by_one.append(doc["_id"])  # a sender died: dispatch marks it unconfirmed
            continue
        contact = contacts.get(doc["customer_id"]) if doc.get("customer_id") else None
        decision = await _gate(deps, doc, contact, now)
        if decision.action != "send" or _aware(doc["due_at"]) > now:
            one_by_one.append(doc["_id"])  # deferred or suppressed: the one-message path says how
            continue
        ready.append(doc)
    ready = await _claim_caps(deps, ready, contacts, now, status)
    by_channel: dict[str, list[dict[str, Any]]] = {}
    for doc in ready:
        doc["_contact"] = contacts.get(doc["customer_id"]) if doc.get("customer_id") else None
        by_channel.setdefault(doc["channel"], []).append(doc)
    for sent in await asyncio.gather(*(_send_ready(deps, group) for group in by_channel.values())):
        status.update(sent)
    for mid, result in zip(one_by_one, await asyncio.gather(*(dispatch(deps, m) for m in one_by_one)),
                           strict=True):
        status[mid] = result
    return status


async def _gate(deps: NotificationsDeps, doc: dict[str, Any], contact: Contact | None, now: datetime) -> Decision:
    """The gate without a store read for the common case (a notice: no opt-outs; its cap is
    decided by the slot claim that follows); marketing reads its opt-outs as usual."""
    cls = MessageClass(doc["message_class"])
    if cls is MessageClass.MARKETING or contact is None or not contact.address_for(doc["channel"]):
        return await gate(deps, doc, contact, now)
    return decide(channel=doc["channel"], message_class=cls, now=now, policy=deps.policy_for(doc["region"]),
                  consented=bool(contact.consent.get(doc["channel"])), opted_out_channels=(),
                  household_sent_on=lambda day: 0, expires_at=doc.get("expires_at"))


async def _claim_caps(deps: NotificationsDeps, ready: list[dict[str, Any]], contacts: dict[str, Contact],
                      now: datetime, status: dict[str, str]) -> list[dict[str, Any]]:
    """A cap slot for each capped entry; one whose household is full today is deferred."""
    today = now.astimezone(deps.tz).date()
    wanted = [(contacts[d["customer_id"]].household, today, d["_id"]) for d in ready
              if capped(d, contacts.get(d.get("customer_id") or ""))]
    if not wanted:
        return ready
    cap = deps.policy_for(ready[0]["region"]).daily_cap
    slots = await deps.caps.claim_first(wanted, cap)
    kept = []
    for doc in ready:
        if doc["_id"] not in slots:
            kept.append(doc)
        elif slots[doc["_id"]] is None:
            contact = contacts[doc["customer_id"]]
            status[doc["_id"]] = await defer_entry(deps, doc, await gate(deps, doc, contact, now, cap_full_on=today))
        else:
            doc["cap_slot"] = slots[doc["_id"]]
            kept.append(doc)
    return kept


async def _send_ready(deps: NotificationsDeps, ready: list[dict[str, Any]]) -> dict[str, str]:
    if not ready:
        return {}
    status: dict[str, str] = {}
    if ready[0]["channel"] == "sms":
        await deps.limiter.acquire(urgent=False, n=len(ready))
    marked = await deps.ledger.transition_many(
        ready, OPEN, lambda d: {"status": "sending", "attempts": int(d.get("attempts", 0)) + 1,
                               "cap_slot": d.get("cap_slot")}, note="attempt (batch)")
    won = {d["_id"] for d in marked}
    for doc in ready:
        if doc["_id"] not in won:  # someone moved it first, or a dead writer's claim
            await deps.caps.release(doc.get("cap_slot"), doc["_id"])
            status[doc["_id"]] = await dispatch(deps, doc["_id"])
    if not marked:
        return status
    contact_of = {d["_id"]: d.get("_contact") for d in ready}
    messages = [outbound(d, contact_of[d["_id"]]) for d in marked]
    results = await _hand_over(deps, marked[0]["channel"], messages)
    accepted: list[tuple[dict[str, Any], SendResult]] = []
    for doc, result in zip(marked, results, strict=True):
        if isinstance(result, TimeoutUnknown):
            status[doc["_id"]] = await mark_unconfirmed(deps, doc, "the provider did not answer in time")
        elif result.accepted:
            accepted.append((doc, result))
        else:
            status[doc["_id"]] = await settle(deps, doc, result, int(doc["attempts"]))
    status.update(await _mark_sent(deps, accepted))
    return status


async def _hand_over(deps: NotificationsDeps, channel: str, messages: list[OutboundMessage]
                     ) -> list[SendResult | TimeoutUnknown]:
    gateway = deps.gateways.get(channel)
    if gateway is None:
        return [SendResult(accepted=False, error=f"no gateway for {channel}") for _ in messages]
    batch = getattr(gateway, "send_batch", None)
    if batch is not None:
        try:
            return list(await batch(messages))
        except Exception as exc:  # refused before the provider took any: safe to retry
            return [SendResult(accepted=False, error=f"{type(exc).__name__}: {exc}") for _ in messages]

    async def one(message: OutboundMessage) -> SendResult | TimeoutUnknown:
        try:
            return await gateway.send(message)
        except TimeoutUnknown as exc:
            return exc
        except Exception as exc:
            return SendResult(accepted=False, error=f"{type(exc).__name__}: {exc}")

    return list(await asyncio.gather(*(one(m) for m in messages)))


async def _mark_sent(deps: NotificationsDeps, accepted: list[tuple[dict[str, Any], SendResult]]) -> dict[str, str]:
    if not accepted:
        return {}
    now = deps.clock()
    docs = [d for d, _ in accepted]
    ref = {d["_id"]: r.provider_ref for d, r in accepted}
    await deps.ledger.add_events(f"sent:{uuid.uuid4().hex}", [e for d in docs for e in events.sent(d, now)])
    moved = await deps.ledger.transition_many(
        docs, ("sending",), lambda d: {"status": "sent", "provider_ref": ref[d["_id"]], "sent_at": now,
                                       "reason": None}, note="accepted by the provider")
    status = {d["_id"]: "sent" for d in moved}
    for doc in docs:
        if doc["_id"] not in status:  # a receipt came first: it settled the entry
            current = await deps.ledger.get(doc["_id"])
            status[doc["_id"]] = str(current["status"]) if current else "missing"
    return status
