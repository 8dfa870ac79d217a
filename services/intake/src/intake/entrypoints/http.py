"""Intake's HTTP API: contacts typed in at the front desk, by hotline agents or from
letters; the forum's webhook; the partner gateway (channel statistics are reporting's)."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Annotated, Any, Literal

from crm_contracts.events.partner import ForumPostPublished
from crm_contracts.registry import ContractError, decode_json, parse_event, spec_for
from crm_contracts.topics import PARTNER_TOPICS
from crm_runtime.auth import Principal, ensure_region, require_roles
from crm_runtime.kafka import publish_event
from crm_runtime.pii import mask_phone, normalise_phone
from crm_runtime.problems import Problem
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, Field, ValidationError, model_validator

from intake import handlers
from intake.adapters.attachments import sniff_content_type
from intake.deps import IntakeDeps
from intake.domain.customers import ContactIdentity, match_customer

STAFF = ("agent", "supervisor", "region_admin")
READERS = ("agent", "supervisor", "region_admin", "auditor")
PHONE_ROLES = frozenset({"agent", "supervisor"})  # they phone customers back


class CustomerIn(BaseModel):
    customer_id: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=200, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ContactCreate(BaseModel):
    """A contact typed in by staff: front desk, hotline agent, or a letter."""

    channel: Literal["hotline", "forum", "front_desk", "letter"]
    region: str = Field(..., min_length=2, max_length=40)
    subject: str = Field(..., min_length=1, max_length=200)
    body: str = Field(..., min_length=1, max_length=20_000)
    customer: CustomerIn = Field(default_factory=CustomerIn)
    project: str | None = Field(None, max_length=100)
    building: str | None = Field(None, max_length=50)
    unit: str | None = Field(None, max_length=50)
    source_ref: str | None = Field(None, max_length=100, description="call id, post id or letter number")
    received_at: AwareDatetime | None = None
    # Not in the published v1 shape: a letter without it is recorded with the form unknown.
    letter_form: Literal["post", "fax", "email"] | None = Field(
        None, description="channel=letter only: how the letter came; leave it out if unknown")

    @model_validator(mode="after")
    def _letter_form(self) -> ContactCreate:
        if self.channel != "letter" and self.letter_form is not None:
            raise ValueError("letter_form is only for channel=letter")
        return self


class ContactAccepted(BaseModel):
    contact_id: str
    created: bool


class ForumWebhookPost(ForumPostPublished):
    region: str


def _problem_from_validation(exc: ValidationError, prefix: str = "") -> Problem:
    errors = [{"field": prefix + ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
              for e in exc.errors()]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return Problem(422, "Invalid request", detail, errors=errors)


def build_router(deps: IntakeDeps) -> APIRouter:
    router = APIRouter(prefix="/v1")
    settings = deps.settings

    async def _accept(cmd: handlers.ReceiveContact) -> ContactAccepted:
        try:
            result = await handlers.receive_contact(deps, cmd)
        except handlers.UnknownRegion as exc:
            raise Problem(422, "Unknown region", f"Region '{exc}' is not served by this platform.",
                          field="region") from exc
        return ContactAccepted(contact_id=result.contact_id, created=result.created)

    @router.post(
        "/contacts", status_code=202, response_model=ContactAccepted, tags=["contacts"],
        summary="Record a contact (front desk, hotline agent, letter)",
        description="JSON body, or `multipart/form-data` with a `contact` part (the same JSON) and "
                    "`files` parts (PDF, JPEG, PNG, TIFF scans) for letters. A repeated "
                    "`Idempotency-Key` or `channel`+`source_ref` returns the first contact_id.",
        openapi_extra={"requestBody": {"content": {
            "application/json": {
                "schema": ContactCreate.model_json_schema(ref_template="#/components/schemas/{model}")},
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "contact": {"type": "string", "description": "ContactCreate as JSON"},
                "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
        }, "required": True}},
    )
    async def create_contact(
        request: Request,
        principal: Annotated[Principal, Depends(require_roles(*STAFF))],
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> ContactAccepted:
        contact, files = await _read_contact(request, settings.attachment_max_count,
                                             settings.max_request_bytes)
        if not deps.known_region(contact.region):
            raise Problem(422, "Unknown region", f"Region '{contact.region}' is not served by this platform.",
                          field="region")
        ensure_region(principal, contact.region, action="create contact")
        checked = [_check_file(f, i, settings.attachment_max_bytes) for i, f in enumerate(files)]
        if checked and contact.channel != "letter":
            raise Problem(422, "Invalid request", "Attachments are for letters.", field="files")
        # Everything is validated: only now is anything stored.
        contact_id_hint = idempotency_key or contact.source_ref or ""
        attachments = [
            (await deps.attachments.put(name, ctype, data, contact_id=contact_id_hint)).as_dict()
            for name, ctype, data in checked
        ]
        return await _accept(handlers.ReceiveContact(
            channel=contact.channel, region=contact.region, subject=contact.subject, body=contact.body,
            name=contact.customer.name, phone=contact.customer.phone, email=contact.customer.email,
            customer_id=contact.customer.customer_id, project=contact.project, building=contact.building,
            unit=contact.unit, source_ref=contact.source_ref, idempotency_key=idempotency_key,
            received_at=contact.received_at, letter_form=contact.letter_form, attachments=attachments,
        ))

    @router.get("/contacts/{contact_id}", tags=["contacts"], summary="One contact, for staff of its region")
    async def get_contact(contact_id: str,
                          principal: Annotated[Principal, Depends(require_roles(*READERS))]) -> dict[str, Any]:
        contact = await deps.contacts.get(contact_id)
        if contact is None:
            raise Problem(404, "Not found", f"No contact {contact_id}.")
        ensure_region(principal, contact["region"], action="read contact")
        return contact

    @router.get("/customers/lookup", tags=["customers"],
                summary="The customer a phone number belongs to, in a region of yours (the caller as you type)",
                description="404 naming `phone` when the region knows no such number. The numbers in the "
                            "answer are masked unless your role calls customers back (agent, supervisor).")
    async def lookup_customer(
        principal: Annotated[Principal, Depends(require_roles(*READERS))],
        phone: Annotated[str, Query(max_length=40)],
        region: Annotated[str | None, Query(max_length=40)] = None,
    ) -> dict[str, Any]:
        if region is not None:
            ensure_region(principal, region, action="look up customer")
        number = normalise_phone(phone)
        if number is None:  # the detail never repeats the number: problems get logged
            raise Problem(422, "Invalid request", "Not a Chinese mobile or landline number.", field="phone")
        allowed = principal.region_filter()
        entries = [e for e in await deps.directory.candidates([f"phone:{number}"])
                   if (e.region == region if region else allowed is None or e.region in allowed)]
        match = match_customer(ContactIdentity(phone=number, region=region), entries)
        if match.entry is None:
            raise Problem(404, "Not found", "No customer with this phone number here.", field="phone")
        entry, whole = match.entry, bool(principal.roles & PHONE_ROLES)
        return {"customer_id": entry.customer_id, "region": entry.region, "provisional": entry.provisional,
                "name": entry.names[0] if entry.names else None, "names": entry.names,
                "phones": [p if whole else mask_phone(p) for p in sorted(entry.phones)],
                "units": [{"project": p, "building": b, "unit": u} for p, b, u in entry.units]}

    @router.get("/contacts/{contact_id}/attachments/{attachment_id}", tags=["contacts"],
                summary="Download a letter's attachment", response_class=Response)
    async def get_attachment(contact_id: str, attachment_id: str,
                             principal: Annotated[Principal, Depends(require_roles(*READERS))]) -> Response:
        contact = await deps.contacts.get(contact_id)
        if contact is None or attachment_id not in {a["attachment_id"] for a in contact.get("attachments", [])}:
            raise Problem(404, "Not found", f"No attachment {attachment_id} on contact {contact_id}.")
        ensure_region(principal, contact["region"], action="read attachment")
        found = await deps.attachments.get(attachment_id)
        if found is None:
            raise Problem(404, "Not found", f"Attachment {attachment_id} is missing.")
        meta, data = found
        return Response(data, media_type=meta.get("content_type", "application/octet-stream"),
                        headers={"Content-Disposition": f'attachment; filename="{meta["filename"]}"'})

    @router.post("/channels/forum/webhook", status_code=202, response_model=ContactAccepted, tags=["channels"],
                 summary="Posts pushed by forum software, signed with HMAC-SHA256",
                 description="Headers `X-Forum-Timestamp` (unix seconds) and `X-Forum-Signature` "
                             "(`sha256=` + hex HMAC-SHA256 of `<timestamp>.<raw body>` with the shared "
                             "secret). Older than 5 minutes or a wrong signature: 401.")
    async def forum_webhook(
        request: Request,
        x_forum_timestamp: Annotated[str, Header()],
        x_forum_signature: Annotated[str, Header()],
    ) -> ContactAccepted:
        raw = await request.body()
        _verify_forum_signature(raw, x_forum_timestamp, x_forum_signature,
                                settings.forum_webhook_secret, settings.forum_webhook_max_age_s)
        try:
            post = ForumWebhookPost.model_validate_json(raw)
        except ValidationError as exc:
            raise _problem_from_validation(exc) from exc
        if not deps.known_region(post.region):
            raise Problem(422, "Unknown region", f"Region '{post.region}' is not served.", field="region")
        return await _accept(handlers.from_forum_post(post, post.region))

    @router.post("/partner-events", status_code=202, tags=["partners"],
                 summary="Publish inbound partner events (one CloudEvent or an array)",
                 description="Each event is validated against the v1 contract; if any is invalid, "
                             "none is published and the problem names the event index and field.")
    async def partner_events(
        request: Request,
        principal: Annotated[Principal, Depends(require_roles("partner", "region_admin"))],
    ) -> JSONResponse:
        try:
            payload = decode_json(await request.body())
        except ContractError as exc:  # not JSON, or nested deeper than any event
            raise Problem(422, "Invalid request", f"The body is not usable JSON: {exc}",
                          field=exc.field or "body") from exc
        items = payload if isinstance(payload, list) else [payload]
        if not items or len(items) > 500:
            raise Problem(422, "Invalid request", "Send 1 to 500 events.", field="body")
        parsed = []
        for index, item in enumerate(items):
            prefix = f"[{index}]." if isinstance(payload, list) else ""
            try:
                event, _ = parse_event(item)
            except ContractError as exc:
                field = getattr(exc, "field", None) or "body"
                raise Problem(422, "Invalid event", f"{prefix}{exc}", field=f"{prefix}{field}") from exc
            spec = spec_for(event.type)
            if spec.topic not in PARTNER_TOPICS:
                raise Problem(422, "Invalid event", f"{prefix}type: only partner events may be published here",
                              field=f"{prefix}type")
            ensure_region(principal, event.region, action="publish partner event")
            parsed.append((spec.topic, event))
        await deps.ctx.wait_for_kafka()
        for topic, event in parsed:
            await publish_event(deps.ctx.broker, topic, event)
        return JSONResponse({"accepted": len(parsed), "ids": [e.id for _, e in parsed]}, status_code=202)

    return router


async def _read_contact(request: Request, max_files: int,
                        max_json_bytes: int) -> tuple[ContactCreate, list[Any]]:
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("multipart/form-data"):
            form = await request.form(max_files=max_files, max_fields=5)
            raw = form.get("contact")
            if not isinstance(raw, str):
                raise Problem(422, "Invalid request", "The multipart body needs a 'contact' part with JSON.",
                              field="contact")
            files = [f for f in form.getlist("files") if not isinstance(f, str)]
            return ContactCreate.model_validate_json(raw), files
        body = await request.body()
        if len(body) > max_json_bytes:
            raise Problem(413, "Request too large", f"A contact without files is at most {max_json_bytes} bytes.")
        return ContactCreate.model_validate_json(body), []
    except ValidationError as exc:
        raise _problem_from_validation(exc) from exc


def _check_file(upload: Any, index: int, max_bytes: int) -> tuple[str, str, bytes]:
    data = upload.file.read(max_bytes + 1)
    field = f"files[{index}]"
    if len(data) > max_bytes:
        raise Problem(413, "Attachment too large", f"{upload.filename}: more than {max_bytes} bytes.", field=field)
    sniffed = sniff_content_type(data[:16])
    if sniffed is None:
        raise Problem(415, "Unsupported attachment", f"{upload.filename}: only PDF, JPEG, PNG and TIFF.",
                      field=field)
    return (upload.filename or f"attachment-{index}"), sniffed, data


def forum_signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _verify_forum_signature(body: bytes, timestamp: str, signature: str, secret: str, max_age_s: int) -> None:
    try:
        age = abs(time.time() - int(timestamp))
    except (ValueError, OverflowError) as exc:  # a huge number cannot be compared with the clock
        raise Problem(401, "Invalid signature", "X-Forum-Timestamp must be unix seconds.",
                      field="X-Forum-Timestamp") from exc
    if age > max_age_s:
        raise Problem(401, "Stale request", f"The timestamp is more than {max_age_s}s away from now.",
                      field="X-Forum-Timestamp")
    if not hmac.compare_digest(forum_signature(secret, timestamp, body), signature):
        raise Problem(401, "Invalid signature", "The HMAC-SHA256 signature does not match.",
                      field="X-Forum-Signature")
