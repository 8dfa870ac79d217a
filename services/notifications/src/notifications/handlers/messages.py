"""From an intent to ledger entries: who exactly, which channel, which template version,
and whether the gate lets it go now, later, or never."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from crm_contracts.envelope import CloudEvent

from notifications.adapters.ledger import message_id
from notifications.deps import NotificationsDeps
from notifications.domain import triggers as t
from notifications.domain.directory import Contact, choose_channel
from notifications.domain.gate import Decision, MessageClass, decide
from notifications.domain.templates import RenderFailed, Template, render
from notifications.handlers import events

log = logging.getLogger(__name__)

STAFF_LANGUAGE = "zh-CN"
SEND_TIMER = "send"


def send_timer(mid: str, due: datetime) -> str:
    """One timer per message and due time: a timer that fires and moves its message later
    (a retry, a deferral) schedules a new one; re-using its own id would be marked done
    by the poller right after the handler returns."""
    return f"send:{mid}@{int(_utc(due).timestamp())}"


async def schedule_send(deps: NotificationsDeps, mid: str, due: datetime) -> None:
    await deps.timers.schedule(send_timer(mid, due), SEND_TIMER, _utc(due), {"id": mid})


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def new_entry(*, mid: str, intent: t.Intent, cause: CloudEvent, channel: str, language: str, now: datetime,
              customer_id: str | None = None, staff: str | None = None, to: str = "", household: str | None = None,
              template: Template | None = None, params: dict[str, str] | None = None,
              broadcast_id: str | None = None) -> dict[str, Any]:
    subject = body = ""
    if template is not None:
        subject, body = render(template, params or {})
    return {
        "_id": mid, "cause_key": intent.cause_key, "cause_event_id": cause.id, "cause_type": cause.type,
        "region": intent.region, "customer_id": customer_id, "staff_recipient": staff, "household": household,
        "channel": channel, "language": language, "to": to, "template_id": intent.template_id,
        "template_version": template.version if template else None, "message_class": intent.message_class.value,
        "params": params or {}, "subject": subject, "body": body, "status": "scheduled", "reason": None,
        "due_at": now, "expires_at": intent.expires_at, "attempts": 0, "case_id": intent.case_id,
        "survey_id": intent.survey_id, "broadcast_id": broadcast_id, "created_at": now, "updated_at": now,
        "trail": [{"at": now, "status": "scheduled", "note": None}],
    }


def apply_decision(entry: dict[str, Any], decision: Decision, at: datetime) -> dict[str, Any]:
    """Set the entry's state from the gate's answer (and queue its failure event if suppressed)."""
    if decision.action == "suppress":
        entry.update(status="suppressed", reason=decision.reason)
        entry["trail"][-1].update(status="suppressed", note=decision.reason)
        entry["_events"] = events.failed(entry, decision.reason or "suppressed", at)
    elif decision.action == "defer":
        entry.update(due_at=decision.until, reason=decision.reason)
        entry["trail"][-1]["note"] = f"deferred: {decision.reason}"
    return entry


def capped(entry: dict[str, Any], contact: Contact | None) -> bool:
    """Whether the message counts against its household's daily cap."""
    return contact is not None and MessageClass(entry["message_class"]) in (MessageClass.NOTICE,
                                                                            MessageClass.MARKETING)


async def gate(deps: NotificationsDeps, entry: dict[str, Any], contact: Contact | None, at: datetime,
               *, cap_full_on: Any = None) -> Decision:
    """The gate's answer for one entry; `cap_full_on`, a local day whose cap a slot claim
    just found full (the count read before it was not yet)."""
    cls = MessageClass(entry["message_class"])
    if cls is MessageClass.STAFF:
        return Decision.send()
    if contact is None:
        return Decision.suppress("customer not in the directory")
    channel = entry["channel"]
    if not contact.address_for(channel):
        return Decision.suppress(f"no address for {channel}")
    opted_out = await deps.optouts.channels(contact.customer_id) if cls is MessageClass.MARKETING else []
    policy = deps.policy_for(entry["region"])
    household = contact.household
    counts: dict[Any, int] = {}
    if cls is not MessageClass.SERVICE:
        today = at.astimezone(policy.tz).date()
        counts[today] = await deps.caps.sent_on(household, today, policy.daily_cap)
    if cap_full_on is not None:
        counts[cap_full_on] = policy.daily_cap
    return decide(channel=channel, message_class=cls, now=at, policy=policy,
                  consented=bool(contact.consent.get(channel)), opted_out_channels=opted_out,
                  household_sent_on=lambda day: counts.get(day, 0), expires_at=entry.get("expires_at"))


def customer_params(intent: t.Intent, contact: Contact | None, language: str) -> dict[str, str]:
    """A trigger may give a value per language: `x_en` is `x` in English messages."""
    params = {k: v for k, v in intent.params.items() if not k.endswith("_en")}
    if language == "en":
        params.update({k[:-3]: v for k, v in intent.params.items() if k.endswith("_en")})
    return {"customer_name": contact.name if contact else "", "centre_name": t.centre_name(intent.region, language),
            **params}


async def plan_one(deps: NotificationsDeps, intent: t.Intent, cause: CloudEvent) -> list[str]:
    """Insert the ledger entries of a single-recipient intent (one per channel group); return
    the ids that are due now. A repeat of the cause finds its entries and inserts nothing."""
    now = deps.clock()
    start = max(now, intent.not_before) if intent.not_before else now
    due_now: list[str] = []
    contact: Contact | None = None
    if isinstance(intent.audience, t.Customer):
        contact = await deps.directory.get(intent.audience.customer_id)
    for group in intent.channels:
        problem: str | None
        if isinstance(intent.audience, t.Staff):
            channel, problem, language = "staff", None, STAFF_LANGUAGE
            recipient, to = f"staff:{intent.audience.recipient}", intent.audience.recipient
        else:
            assert isinstance(intent.audience, t.Customer)
            customer_id = intent.audience.customer_id
            if contact is None:
                channel, problem, language = group[0], "customer not in the directory", "zh-CN"
            else:
                (channel, problem), language = choose_channel(contact, group), contact.language
            recipient, to = customer_id, (contact.address_for(channel) if contact else None) or ""
        mid = message_id(intent.cause_key, recipient, channel)
        existing = await deps.ledger.get(mid)
        if existing is not None:  # a repeat, or a crash came between storing and sending: resume it
            if existing["status"] in ("scheduled", "retrying", "sending"):
                if existing["due_at"].replace(tzinfo=now.tzinfo) <= now:
                    due_now.append(mid)
                else:
                    await schedule_send(deps, mid, existing["due_at"])
            continue
        template = await deps.templates.get(intent.template_id, language, channel)
        params = customer_params(intent, contact, language) if channel != "staff" else dict(intent.params)
        try:
            entry = new_entry(mid=mid, intent=intent, cause=cause, channel=channel, language=language, now=now,
                              customer_id=recipient if channel != "staff" else None,
                              staff=to if channel == "staff" else None, to=to,
                              household=contact.household if contact else None, template=template, params=params)
        except RenderFailed as exc:
            entry = new_entry(mid=mid, intent=intent, cause=cause, channel=channel, language=language, now=now,
                              customer_id=recipient if channel != "staff" else None)
            problem = f"template does not render: {exc}"
        if template is None:
            problem = problem or f"no template {intent.template_id} for {language}/{channel}"
        decision = Decision.suppress(problem) if problem else await gate(deps, {**entry, "due_at": start}, contact,
                                                                         start)
        if decision.action == "send" and start > now:
            decision = Decision.defer(start, "not before its time")
        entry = apply_decision(entry, decision, now)
        if not await deps.ledger.insert(entry, entry.pop("_events", [])):
            continue
        if entry["status"] == "scheduled":
            if entry["due_at"] <= now:
                due_now.append(mid)
            else:
                await schedule_send(deps, mid, entry["due_at"])
    return due_now
