"""The front desk (a walk-in, a call or a letter with its scans, the caller recognised as the
phone number is typed) and the contacts that opened no case (answer and close, or open a case)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console.adapters.services import ServiceError, ServiceUnavailable
from console.deps import ConsoleDeps
from console.domain.i18n import Translator
from console.domain.problems import tell
from console.entrypoints.web import User, current_user, render, service_failure

CHANNELS = ("front_desk", "letter", "hotline")
LETTER_FORMS = ("post", "fax", "email")
CONTACT_FIELDS = ("channel", "region", "subject", "body", "project", "building", "unit", "source_ref",
                  "letter_form")
CUSTOMER_FIELDS = ("name", "phone", "email")
KINDS = ("consultation", "suggestion", "praise", "unclassified")
CONTACT_STATUSES = ("unanswered", "answered", "case_opened")
MAX_SCAN_BYTES = 10 * 1024 * 1024


def contact_body(form: dict[str, str]) -> dict[str, Any]:
    """Intake's ContactCreate from the desk's form; blank optional fields left out, so that
    intake names what a required one lacks."""
    body: dict[str, Any] = {k: form[k].strip() for k in CONTACT_FIELDS if (form.get(k) or "").strip()}
    if body.get("channel") != "letter":
        body.pop("letter_form", None)
    for k in ("subject", "body", "channel", "region"):
        body.setdefault(k, "")
    customer = {k: form[k].strip() for k in CUSTOMER_FIELDS if (form.get(k) or "").strip()}
    if customer:
        body["customer"] = customer
    return body


def build_router(deps: ConsoleDeps) -> APIRouter:
    router = APIRouter()
    intake, cases = deps.services.intake, deps.services.cases

    def desk(request: Request, user: User, **context: Any) -> Response:
        status = context.pop("status_code", 200)
        base: dict[str, Any] = {"channels": CHANNELS, "letter_forms": LETTER_FORMS, "posted": {}, "told": None,
                                "recorded": None, "idempotency_key": str(uuid.uuid4())}
        return render(request, "desk.html", base | context, user=user, status_code=status)

    @router.get("/desk", response_class=HTMLResponse)
    async def desk_form(request: Request) -> Response:
        return desk(request, current_user(request))

    @router.post("/desk", response_class=HTMLResponse)
    async def desk_record(request: Request, files: Annotated[list[UploadFile] | None, Form()] = None) -> Response:
        user = current_user(request)
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        scans = []
        for upload in files or []:
            data = await upload.read(MAX_SCAN_BYTES + 1)
            if upload.filename and data:
                scans.append((upload.filename, data, upload.content_type or "application/octet-stream"))
        key = form.get("idempotency_key") or str(uuid.uuid4())
        try:
            accepted = await intake.record(user.token, contact_body(form), scans, key)
        except ServiceError as exc:
            told = tell(exc.status, exc.problem, Translator(user.language))
            return desk(request, user, posted=form, told=told, idempotency_key=key,
                        status_code=exc.status if exc.status < 500 else 502)
        except ServiceUnavailable as exc:
            return service_failure(request, user, exc)
        return desk(request, user, recorded=accepted)

    @router.get("/desk/caller", response_class=HTMLResponse)
    async def caller(request: Request, phone: str = "", region: str = "") -> Response:
        """As the phone number is typed: who is calling, if the directory knows the number."""
        user = current_user(request)
        digits = "".join(ch for ch in phone if ch.isdigit())
        found: dict[str, Any] | None = None
        state = "short"
        if len(digits) >= 7:
            try:
                found = await intake.lookup_customer(user.token, digits, region or user.regions[0])
            except (ServiceError, ServiceUnavailable):
                found = None
            state = "unavailable" if found is None else "found" if found.get("customer_id") else "unknown"
        return render(request, "caller.html", {"state": state, "customer": found or {}}, user=user)

    @router.get("/consultations", response_class=HTMLResponse)
    async def consultations(request: Request, kind: str = "", status: str = "unanswered", region: str = "",
                            cursor: str = "") -> Response:
        user = current_user(request)
        chosen = {"kind": kind, "status": status, "region": region}
        try:
            page = await cases.contacts(user.token, kind=kind or None, status=status or None,
                                        region=region or None, cursor=cursor or None, limit=50)
        except ServiceError as exc:
            if exc.status in (404, 405):  # a cases service without the contacts API yet
                return render(request, "consultations.html", {"missing": True, "rows": [], "chosen": chosen,
                                                              "kinds": KINDS, "statuses": CONTACT_STATUSES,
                                                              "next_cursor": None}, user=user)
            return service_failure(request, user, exc)
        except ServiceUnavailable as exc:
            return service_failure(request, user, exc)
        return render(request, "consultations.html", {"missing": False, "rows": page.get("items", []),
                                                      "next_cursor": page.get("next_cursor"), "chosen": chosen,
                                                      "kinds": KINDS, "statuses": CONTACT_STATUSES,
                                                      "told": None}, user=user)

    @router.get("/consultations/{contact_id}", response_class=HTMLResponse)
    async def consultation(request: Request, contact_id: str) -> Response:
        user = current_user(request)
        try:
            contact = await cases.contact(user.token, contact_id)
        except (ServiceError, ServiceUnavailable) as exc:
            return service_failure(request, user, exc)
        return render(request, "consultation.html", {"contact": contact, "told": None, "posted": {}}, user=user)

    @router.post("/consultations/{contact_id}/answer", response_class=HTMLResponse)
    async def answer(request: Request, contact_id: str, answer: Annotated[str, Form()] = "") -> Response:
        user = current_user(request)
        try:
            await cases.answer(user.token, contact_id, answer.strip())
        except ServiceError as exc:
            told = tell(exc.status, exc.problem, Translator(user.language))
            try:
                contact = await cases.contact(user.token, contact_id)
            except (ServiceError, ServiceUnavailable) as again:
                return service_failure(request, user, again)
            return render(request, "consultation.html", {"contact": contact, "told": told,
                                                         "posted": {"answer": answer}}, user=user,
                          status_code=exc.status if exc.status < 500 else 502)
        except ServiceUnavailable as exc:
            return service_failure(request, user, exc)
        return RedirectResponse(f"/consultations/{contact_id}?done=answer", status_code=303)

    @router.post("/consultations/{contact_id}/open-case", response_class=HTMLResponse)
    async def open_case(request: Request, contact_id: str) -> Response:
        user = current_user(request)
        try:
            case = await cases.open_case(user.token, contact_id)
        except (ServiceError, ServiceUnavailable) as exc:
            return service_failure(request, user, exc)
        return RedirectResponse(f"/cases/{case['case_id']}", status_code=303)

    return router
