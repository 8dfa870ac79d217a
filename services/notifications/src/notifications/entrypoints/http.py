"""The staff API of notifications (region-scoped by the caller's token): a customer's
messages with their status, cancel and resend, broadcast progress, templates (list,
preview, edit: region_admin, audited, versioned), opt-outs, the staff inbox; and the SMS
provider's callbacks (receipts and replies), which carry a shared secret instead of a token."""

from __future__ import annotations

import hmac
import importlib
import logging
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from crm_runtime.auth import Principal, ensure_region, require_roles
from crm_runtime.pii import mask_email, mask_phone
from crm_runtime.problems import Problem
from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, Field

from notifications.adapters.ledger import message_id as mid_for
from notifications.deps import NotificationsDeps
from notifications.domain import triggers as t
from notifications.domain.gate import MessageClass
from notifications.domain.templates import (
    PLACEHOLDERS,
    RenderFailed,
    Template,
    TemplateInvalid,
    check_template,
    render,
    sample_params,
)
from notifications.handlers import callbacks
from notifications.handlers.dispatch import OPEN, dispatch, send_timer
from notifications.handlers.messages import new_entry

audit = logging.getLogger("crm.audit")

READERS = ("agent", "supervisor", "region_admin", "auditor")
STAFF = ("agent", "supervisor", "region_admin")
ANY_STAFF = READERS


class TemplateEdit(BaseModel):
    subject: str = Field("", max_length=200)
    body: str = Field(min_length=1, max_length=2000)


class Preview(BaseModel):
    subject: str | None = Field(None, max_length=200, description="A draft to preview; the current one if absent.")
    body: str | None = Field(None, max_length=2000)
    params: dict[str, str] | None = Field(None, description="Sample values; each placeholder's name if absent.")


class OptOut(BaseModel):
    channel: Literal["sms", "email", "letter", "*"]
    source: Literal["web", "agent"] = Field(description="web: the unsubscribe page; agent: a verbal opt-out.")
    evidence: str = Field(min_length=1, max_length=2000, description="What the customer said or did, and where.")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _masked(channel: str, to: str | None) -> str | None:
    if not to:
        return to
    return mask_phone(to) if channel == "sms" else mask_email(to) if channel == "email" else to


def message_view(doc: dict[str, Any]) -> dict[str, Any]:
    keep = ("customer_id", "staff_recipient", "channel", "language", "template_id", "template_version",
            "message_class", "subject", "body", "status", "reason", "due_at", "sent_at", "delivered_at", "attempts",
            "cause_event_id", "cause_type", "case_id", "survey_id", "broadcast_id", "created_at", "updated_at", "trail")
    view = {"message_id": doc["_id"], **{k: doc.get(k) for k in keep}, "to": _masked(doc["channel"], doc.get("to"))}
    return _jsonable(view)


def _check_provider(deps: NotificationsDeps, token: str | None) -> None:
    if token is None or not hmac.compare_digest(token, deps.settings.provider_token):
        raise Problem(401, "Provider token required", "Send the shared secret in X-Provider-Token.",
                      field="X-Provider-Token")


def _sms_parsers() -> Any:
    try:
        return importlib.import_module("notifications.adapters.sms")
    except ImportError as exc:
        raise Problem(503, "SMS adapter unavailable", "This build has no SMS adapter to read callbacks.") from exc


def build_router(deps: NotificationsDeps) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["notifications"])

    async def _message(mid: str, principal: Principal, action: str) -> dict[str, Any]:
        doc = await deps.ledger.get(mid)
        if doc is None:
            raise Problem(404, "Not found", f"No message {mid}.", field="message_id")
        ensure_region(principal, doc["region"], action=action)
        return doc

    async def _customer_region(customer_id: str, principal: Principal, action: str) -> Any:
        contact = await deps.directory.get(customer_id)
        if contact is None:
            raise Problem(404, "Not found", f"No customer {customer_id} in the directory.", field="customer_id")
        ensure_region(principal, contact.region, action=action)
        return contact

    @router.get("/customers/{customer_id}/messages", summary="A customer's messages, newest first, with status")
    async def history(customer_id: str, principal: Annotated[Principal, Depends(require_roles(*READERS))]
                      ) -> dict[str, Any]:
        contact = await _customer_region(customer_id, principal, "read messages")
        broadcasts = await deps.ledger.broadcasts_for([(u.project, u.building) for u in contact.units],
                                                      contact.region)
        docs = await deps.ledger.customer_history(customer_id, broadcasts)
        return {"customer_id": customer_id, "messages": [message_view(d) for d in docs]}

    @router.get("/messages/{message_id}", summary="One message with its trail")
    async def message(message_id: str, principal: Annotated[Principal, Depends(require_roles(*READERS))]
                      ) -> dict[str, Any]:
        return message_view(await _message(message_id, principal, "read message"))

    @router.post("/messages/{message_id}/cancel", summary="Cancel a message that has not left yet")
    async def cancel(message_id: str, principal: Annotated[Principal, Depends(require_roles(*STAFF))]
                     ) -> dict[str, Any]:
        doc = await _message(message_id, principal, "cancel message")
        moved = await deps.ledger.transition(message_id, OPEN, {"status": "cancelled",
                                                                "reason": f"cancelled by {principal.subject}"},
                                             note=f"cancelled by {principal.subject}")
        if moved is None:
            raise Problem(409, "Not cancellable", f"The message is {doc['status']}; only scheduled ones can be "
                          "cancelled.", field="status")
        await deps.timers.cancel(send_timer(message_id, doc["due_at"]))  # a late firing finds it cancelled anyway
        audit.info("message cancelled", extra={"sub": principal.subject, "message_id": message_id})
        return message_view(await deps.ledger.get(message_id) or moved)

    @router.post("/messages/{message_id}/resend", status_code=201,
                 summary="Send a settled message again, as a new message through the send gate")
    async def resend(message_id: str, principal: Annotated[Principal, Depends(require_roles(*STAFF))]
                     ) -> dict[str, Any]:
        doc = await _message(message_id, principal, "resend message")
        if doc["status"] in (*OPEN, "sending"):
            raise Problem(409, "Not sent yet", f"The message is {doc['status']}: it has not settled.", field="status")
        n = int(doc.get("resends", 0)) + 1
        await deps.ledger.transition(message_id, (doc["status"],), {"resends": n},
                                     note=f"resent by {principal.subject}")
        intent = t.Intent(doc["template_id"], MessageClass(doc["message_class"]), doc["region"],
                          t.Customer(doc["customer_id"]) if doc.get("customer_id") else t.Staff(doc["staff_recipient"]),
                          ((doc["channel"],),), f"resend:{message_id}:{n}", case_id=doc.get("case_id"),
                          survey_id=doc.get("survey_id"))
        recipient = doc.get("customer_id") or f"staff:{doc['staff_recipient']}"
        new_id = mid_for(intent.cause_key, recipient, doc["channel"])
        entry = new_entry(mid=new_id, intent=intent, cause=_Cause(doc),  # type: ignore[arg-type]
                          channel=doc["channel"], language=doc["language"], now=deps.clock(),
                          customer_id=doc.get("customer_id"),
                          staff=doc.get("staff_recipient"), to=doc.get("to") or "", household=doc.get("household"))
        entry.update(subject=doc.get("subject", ""), body=doc.get("body", ""), params=doc.get("params", {}),
                     template_version=doc.get("template_version"))
        await deps.ledger.insert(entry, [])
        audit.info("message resent", extra={"sub": principal.subject, "message_id": message_id, "new": new_id})
        await dispatch(deps, new_id)
        return message_view(await deps.ledger.get(new_id) or entry)

    @router.get("/broadcasts/{broadcast_id}", summary="A broadcast's progress: accepted, failed, waiting")
    async def broadcast(broadcast_id: str, principal: Annotated[Principal, Depends(require_roles(*READERS))]
                        ) -> dict[str, Any]:
        progress = await deps.ledger.progress(broadcast_id)
        if progress is None:
            raise Problem(404, "Not found", f"No broadcast {broadcast_id}.", field="broadcast_id")
        ensure_region(principal, progress["region"], action="read broadcast")
        counts = progress.get("counts", {})
        accepted = counts.get("sent", 0) + counts.get("delivered", 0)
        return _jsonable({"broadcast_id": broadcast_id, **{k: progress.get(k) for k in (
            "region", "template_id", "project", "building", "total", "status", "not_before", "created_at",
            "finished_at")}, "accepted": accepted, "counts": counts})

    # -- templates -------------------------------------------------------------------------

    async def _template(template_id: str, language: str, channel: str) -> Template:
        template = await deps.templates.get(template_id, language, channel)
        if template is None:
            raise Problem(404, "Not found", f"No template {template_id} for {language}/{channel}.",
                          field="template_id")
        return template

    @router.get("/templates", summary="Every template's current version")
    async def templates(_: Annotated[Principal, Depends(require_roles(*READERS))]) -> dict[str, Any]:
        docs = await deps.templates.all()
        return {"templates": [_jsonable({**{k: v for k, v in d.items() if k != "_id"},
                                         "placeholders": list(PLACEHOLDERS.get(d["template_id"], ()))})
                              for d in docs]}

    @router.get("/templates/{template_id}/{language}/{channel}", summary="A template and all its versions")
    async def template(template_id: str, language: str, channel: str,
                       _: Annotated[Principal, Depends(require_roles(*READERS))]) -> dict[str, Any]:
        current = await _template(template_id, language, channel)
        versions = await deps.templates.history(template_id, language, channel)
        return _jsonable({"template_id": template_id, "language": language, "channel": channel,
                          "version": current.version, "subject": current.subject, "body": current.body,
                          "placeholders": list(PLACEHOLDERS[template_id]),
                          "versions": [{k: v for k, v in d.items() if k != "_id"} for d in versions]})

    @router.post("/templates/{template_id}/{language}/{channel}/preview",
                 summary="Render the current template, or a draft, with sample data")
    async def preview(template_id: str, language: str, channel: str, body: Preview,
                      _: Annotated[Principal, Depends(require_roles(*READERS))]) -> dict[str, Any]:
        current = await _template(template_id, language, channel)
        subject_text = current.subject if body.subject is None else body.subject
        body_text = current.body if body.body is None else body.body
        try:
            check_template(template_id, language, channel, subject_text, body_text)
            draft = Template(template_id, language, channel, current.version, subject_text, body_text)
            subject, text = render(draft, body.params or sample_params(template_id, language))
        except TemplateInvalid as exc:
            raise _template_problem(exc) from exc
        except RenderFailed as exc:
            raise Problem(422, "Template does not render", str(exc), field="body") from exc
        return {"subject": subject, "body": text, "length": len(text)}

    @router.put("/templates/{template_id}/{language}/{channel}",
                summary="Save a new version (region_admin; old versions are kept)")
    async def edit(template_id: str, language: str, channel: str, body: TemplateEdit,
                   principal: Annotated[Principal, Depends(require_roles("region_admin"))]) -> dict[str, Any]:
        await _template(template_id, language, channel)
        try:
            check_template(template_id, language, channel, body.subject, body.body)
        except TemplateInvalid as exc:
            raise _template_problem(exc) from exc
        saved = await deps.templates.save(template_id, language, channel, body.subject, body.body,
                                          by=principal.subject, at=deps.clock())
        if saved is None:
            raise Problem(404, "Not found", f"No template {template_id}.", field="template_id")
        return {"template_id": template_id, "language": language, "channel": channel, "version": saved.version,
                "subject": saved.subject, "body": saved.body}

    # -- opt-outs and the inbox -----------------------------------------------------------

    @router.post("/customers/{customer_id}/opt-outs", status_code=201,
                 summary="Record an opt-out (web unsubscribe, or a verbal one an agent heard)")
    async def opt_out(customer_id: str, body: OptOut,
                      principal: Annotated[Principal, Depends(require_roles(*STAFF))]) -> dict[str, Any]:
        await _customer_region(customer_id, principal, "record opt-out")
        await callbacks.record_opt_out(deps, customer_id, body.channel, body.source, body.evidence,
                                       by=principal.subject, at=deps.clock())
        audit.info("opt-out recorded", extra={"sub": principal.subject, "customer_id": customer_id,
                                              "channel": body.channel, "source": body.source})
        return {"customer_id": customer_id, "opt_outs": _jsonable(await deps.optouts.entries(customer_id))}

    @router.get("/customers/{customer_id}/opt-outs", summary="A customer's opt-outs with their evidence")
    async def opt_outs(customer_id: str, principal: Annotated[Principal, Depends(require_roles(*READERS))]
                       ) -> dict[str, Any]:
        await _customer_region(customer_id, principal, "read opt-outs")
        return {"customer_id": customer_id, "opt_outs": _jsonable(await deps.optouts.entries(customer_id))}

    def _inboxes(principal: Principal) -> list[str]:
        regions = sorted(principal.regions)
        return [principal.subject, *(f"role:{r}@{g}" for r in sorted(principal.roles) for g in regions)]

    @router.get("/inbox", summary="What staff are told: your inbox and your roles' shared ones")
    async def inbox(principal: Annotated[Principal, Depends(require_roles(*ANY_STAFF))]) -> dict[str, Any]:
        items = await deps.inbox.items(_inboxes(principal))
        return {"items": [_jsonable({**{k: v for k, v in i.items() if k != "_id"}}) for i in items]}

    @router.post("/inbox/{message_id}/read", summary="Mark an inbox item read")
    async def read(message_id: str, principal: Annotated[Principal, Depends(require_roles(*ANY_STAFF))]
                   ) -> dict[str, Any]:
        if not await deps.inbox.mark_read(message_id, _inboxes(principal)):
            raise Problem(404, "Not found", f"No item {message_id} in your inboxes.", field="message_id")
        return {"message_id": message_id, "read": True}

    # -- provider callbacks ------------------------------------------------------------------

    @router.post("/providers/sms/receipts", summary="Delivery reports from the SMS provider", tags=["providers"])
    async def receipts(request: Request, x_provider_token: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        _check_provider(deps, x_provider_token)
        try:
            parsed = _sms_parsers().parse_receipts(await request.body())
        except ValueError as exc:
            raise Problem(400, "Malformed receipts", str(exc), field="body") from exc
        for receipt in parsed:
            await callbacks.apply_receipt(deps, receipt)
        return {"code": 0, "msg": "success"}

    @router.post("/providers/sms/replies", summary="Customers' SMS replies (TD unsubscribes)", tags=["providers"])
    async def replies(request: Request, x_provider_token: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        _check_provider(deps, x_provider_token)
        try:
            parsed = _sms_parsers().parse_replies(await request.body())
        except ValueError as exc:
            raise Problem(400, "Malformed replies", str(exc), field="body") from exc
        for reply in parsed:
            await callbacks.apply_reply(deps, reply)
        return {"code": 0, "msg": "success"}

    return router


def _template_problem(exc: TemplateInvalid) -> Problem:
    extra: dict[str, Any] = {"placeholder": exc.placeholder} if exc.placeholder else {}
    return Problem(422, "Template refused", str(exc), field=exc.field, **extra)


class _Cause:
    """The original message's cause, for a resend (which keeps it)."""

    def __init__(self, doc: dict[str, Any]):
        self.id = doc["cause_event_id"]
        self.type = doc.get("cause_type") or "resend"
