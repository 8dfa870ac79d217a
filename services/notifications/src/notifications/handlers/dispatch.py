"""Sending one ledger entry, exactly once across crashes.

The entry is marked `sending` (with its attempt) before the provider is called. A
replica that dies after that point leaves it `sending`: whoever finds it next marks it
`unconfirmed` and never calls the provider again for it; the delivery receipt, which
names our id, settles it. A timeout is treated the same way.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from notifications.adapters.gateways import OutboundMessage, SendResult, TimeoutUnknown
from notifications.deps import NotificationsDeps
from notifications.domain.gate import Decision, MessageClass
from notifications.handlers import events
from notifications.handlers.messages import SEND_TIMER, capped, gate, schedule_send, send_timer

log = logging.getLogger(__name__)


RECONCILE_TIMER = "reconcile"
RECONCILE_AFTER = timedelta(hours=48)  # receipts come within minutes; providers keep them 72 h
OPEN = ("scheduled", "retrying")
__all__ = ["OPEN", "SEND_TIMER", "defer_entry", "dispatch", "give_up_unconfirmed", "mark_unconfirmed", "outbound",
           "send_timer", "settle"]


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def dispatch(deps: NotificationsDeps, mid: str) -> str:
    """Try to send one entry now; returns its status afterwards."""
    doc = await deps.ledger.get(mid)
    if doc is None:
        return "missing"
    if doc["status"] == "sending":
        return await mark_unconfirmed(deps, doc, "its sender stopped after calling the provider")
    if doc["status"] not in OPEN:
        return str(doc["status"])
    now = deps.clock()
    if _aware(doc["due_at"]) > now:
        await schedule_send(deps, mid, doc["due_at"])
        return "scheduled"
    contact = await deps.directory.get(doc["customer_id"]) if doc.get("customer_id") else None
    decision = await gate(deps, doc, contact, now)
    if decision.action == "suppress":
        moved = await deps.ledger.transition(mid, OPEN, {"status": "suppressed", "reason": decision.reason},
                                             lambda d: events.failed(d, decision.reason or "suppressed", now),
                                             note=decision.reason)
        return "suppressed" if moved else await _status(deps, mid)
    if decision.action == "defer":
        return await defer_entry(deps, doc, decision)
    slot: str | None = None
    if capped(doc, contact):
        assert contact is not None
        today = now.astimezone(deps.tz).date()
        slot = await deps.caps.claim(contact.household, today, mid, deps.policy_for(doc["region"]).daily_cap)
        if slot is None:  # the household's last slot went to a concurrent send
            return await defer_entry(deps, doc, await gate(deps, doc, contact, now, cap_full_on=today))
    if doc["channel"] == "sms":
        await deps.limiter.acquire(urgent=doc["message_class"] in (MessageClass.SERVICE, MessageClass.STAFF))
    attempt = int(doc.get("attempts", 0)) + 1
    marked = await deps.ledger.transition(mid, OPEN, {"status": "sending", "attempts": attempt, "cap_slot": slot},
                                          note=f"attempt {attempt}", current=doc)
    if marked is None:
        await deps.caps.release(slot, mid)
        return await _status(deps, mid)  # someone else took it
    gateway = deps.gateways.get(doc["channel"])
    try:
        if gateway is None:
            raise LookupError(f"no gateway for {doc['channel']}")
        result = await gateway.send(outbound(doc, contact))
    except TimeoutUnknown:
        return await mark_unconfirmed(deps, marked, "the provider did not answer in time")
    except Exception as exc:  # refused before the provider took it: safe to retry
        result = SendResult(accepted=False, error=f"{type(exc).__name__}: {exc}")
    return await settle(deps, marked, result, attempt)


async def defer_entry(deps: NotificationsDeps, doc: dict[str, Any], decision: Decision) -> str:
    if decision.action == "suppress":  # expired while deferred
        now = deps.clock()
        moved = await deps.ledger.transition(doc["_id"], OPEN, {"status": "suppressed", "reason": decision.reason},
                                             lambda d: events.failed(d, decision.reason or "suppressed", now),
                                             note=decision.reason)
        return "suppressed" if moved else await _status(deps, doc["_id"])
    assert decision.until is not None
    moved = await deps.ledger.transition(doc["_id"], OPEN, {"due_at": decision.until, "reason": decision.reason},
                                         note=f"deferred: {decision.reason}")
    if moved:
        await schedule_send(deps, doc["_id"], decision.until)
    return "scheduled"


async def settle(deps: NotificationsDeps, doc: dict[str, Any], result: SendResult, attempt: int) -> str:
    mid = doc["_id"]
    now = deps.clock()
    if result.accepted:
        status = "delivered" if doc["channel"] == "staff" else "sent"
        await deps.ledger.transition(mid, ("sending",), {"status": status, "provider_ref": result.provider_ref,
                                                         "sent_at": now, "reason": None},
                                     lambda d: events.sent(d, now), current=doc)
        return status
    error = result.error or "refused by the provider"
    await deps.caps.release(doc.get("cap_slot"), mid)  # not sent: the household may have it back
    if result.permanent or attempt >= deps.settings.max_attempts:
        await deps.ledger.transition(mid, ("sending",), {"status": "failed", "reason": error},
                                     lambda d: events.failed(d, error, now, attempts=attempt), note=error)
        return "failed"
    backoff = min(deps.settings.retry_backoff_s * 2 ** (attempt - 1), deps.settings.retry_backoff_max_s)
    retry_at = now + timedelta(seconds=backoff)
    moved = await deps.ledger.transition(
        mid, ("sending",), {"status": "retrying", "reason": error, "due_at": retry_at},
        lambda d: events.failed(d, error, now, attempts=attempt, will_retry=True), note=f"retry at {retry_at}")
    if moved:
        await schedule_send(deps, mid, retry_at)
    return "retrying"


async def mark_unconfirmed(deps: NotificationsDeps, doc: dict[str, Any], why: str) -> str:
    moved = await deps.ledger.transition(doc["_id"], ("sending",), {"status": "unconfirmed", "reason": why},
                                         note=f"{why}; not re-sent, waiting for the receipt")
    if moved:
        await deps.timers.schedule(f"reconcile:{doc['_id']}", RECONCILE_TIMER, deps.clock() + RECONCILE_AFTER,
                                   {"id": doc["_id"]})
    return "unconfirmed"


async def give_up_unconfirmed(deps: NotificationsDeps, mid: str) -> None:
    """No receipt came: report it failed rather than risk sending it twice."""
    now = deps.clock()
    error = "no delivery receipt; not re-sent to avoid a duplicate"
    await deps.ledger.transition(mid, ("unconfirmed",), {"status": "failed", "reason": error},
                                 lambda d: events.failed(d, error, now, attempts=int(d.get("attempts", 1))),
                                 note=error)


async def _status(deps: NotificationsDeps, mid: str) -> str:
    doc = await deps.ledger.get(mid)
    return str(doc["status"]) if doc else "missing"


def outbound(doc: dict[str, Any], contact: Any) -> OutboundMessage:
    return OutboundMessage(
        message_id=doc["_id"], channel=doc["channel"], region=doc["region"], language=doc["language"],
        # The customer's address as the directory has it now; the one planned with otherwise.
        to=(contact.address_for(doc["channel"]) if contact is not None else None) or doc.get("to") or "",
        template_code=doc["template_id"], params=dict(doc.get("params") or {}),
        subject=doc.get("subject") or "", body=doc.get("body") or "",
        postal_address=contact.postal_address if contact is not None and doc["channel"] == "letter" else None,
        recipient_name=contact.name if contact is not None else None,
    )
