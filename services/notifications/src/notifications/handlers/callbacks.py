"""What providers and customers tell us afterwards: delivery receipts (which settle sent
and unconfirmed messages, and may come twice or late) and SMS replies (`TD` opts out)."""

from __future__ import annotations

import logging
from datetime import datetime

from notifications.adapters.gateways import Receipt, Reply
from notifications.deps import NotificationsDeps
from notifications.handlers import events

log = logging.getLogger(__name__)

SETTLED_BY_RECEIPT = ("sent", "unconfirmed", "sending")
# Replies that mean "no more messages" on Chinese SMS platforms.
UNSUBSCRIBE_WORDS = {"TD", "T", "N", "退订", "退", "取消", "UNSUBSCRIBE", "STOP"}


async def apply_receipt(deps: NotificationsDeps, receipt: Receipt) -> str:
    """Settle one message from its receipt; 'ignored' for a repeat, a late one after the
    message was settled, or an id we never sent."""
    doc = await deps.ledger.get(receipt.out_id)
    if doc is None:
        log.warning("receipt for an unknown message", extra={"out_id": receipt.out_id})
        return "ignored"
    at = receipt.reported_at
    if receipt.delivered:
        # A message we never heard accepted (a timeout, a crash) was accepted after all.
        moved = await deps.ledger.transition(
            doc["_id"], SETTLED_BY_RECEIPT, {"status": "delivered", "delivered_at": at, "reason": None},
            lambda d: [] if d["status"] == "sent" else events.sent(d, at), note="delivery receipt")
    else:
        error = f"delivery failed: {receipt.error or 'no reason given'}"
        moved = await deps.ledger.transition(
            doc["_id"], SETTLED_BY_RECEIPT, {"status": "failed", "reason": error},
            lambda d: events.failed(d, error, at, attempts=int(d.get("attempts", 1))), note=error)
    if moved is None:
        return "ignored"
    if doc.get("broadcast_id") and doc.get("chunk") is not None:
        await deps.ledger.mark_stale(doc["broadcast_id"], int(doc["chunk"]))
    return str(moved["status"])


def is_unsubscribe(content: str) -> bool:
    return content.strip().strip("。.!！").upper() in UNSUBSCRIBE_WORDS


async def apply_reply(deps: NotificationsDeps, reply: Reply) -> int:
    """An unsubscribe reply opts every customer with that phone out of marketing SMS, with the
    reply as evidence; returns how many opt-outs were recorded (0 for a repeat)."""
    if not is_unsubscribe(reply.content):
        return 0
    recorded = 0
    for customer_id in await deps.directory.by_phone(reply.phone):
        evidence = {"reply": reply.content, "phone": reply.phone, "received_at": reply.received_at.isoformat(),
                    "sign_name": reply.sign_name}
        if await deps.optouts.record(customer_id, "sms", "sms_reply", evidence, reply.received_at):
            recorded += 1
    return recorded


async def record_opt_out(deps: NotificationsDeps, customer_id: str, channel: str, source: str, evidence: str,
                         by: str, at: datetime) -> bool:
    """Web unsubscribe or an agent recording a verbal opt-out."""
    return await deps.optouts.record(customer_id, channel, source, {"note": evidence, "at": at.isoformat()}, at,
                                     by=by)
