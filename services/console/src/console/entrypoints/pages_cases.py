"""The queue, and a case with every action it allows now and its letters' scans."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from crm_runtime.problems import Problem
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console.adapters.services import ServiceError, ServiceUnavailable
from console.deps import ConsoleDeps
from console.domain import actions as action_rules
from console.domain.i18n import CENTRE_ZONE, Translator
from console.domain.problems import ToldProblem, tell
from console.entrypoints.web import PAGE_ON_ERROR, User, current_user, render, service_failure

QUEUE_FILTERS = ("region", "status", "severity", "category", "department", "assignee")
SLA_WINDOWS = ("breached", "4h", "today", "3d")
STATUSES = ("received", "validated", "classified", "assessed", "investigating", "handling", "resolved", "closed",
            "lesson_recorded")
PAGE_SIZE = 50


def due_before(window: str | None, now: datetime) -> str | None:
    """The `sla_due_before` bound of a queue filter."""
    local = now.astimezone(CENTRE_ZONE)
    bound = {"breached": now, "4h": now + timedelta(hours=4),
             "today": local.replace(hour=23, minute=59, second=59, microsecond=0),
             "3d": now + timedelta(days=3)}.get(window or "")
    return bound.isoformat() if bound else None


def _queue_params(request: Request, now: datetime) -> tuple[dict[str, str], dict[str, Any]]:
    chosen = {k: request.query_params.get(k, "") for k in (*QUEUE_FILTERS, "sla_due", "cursor")}
    query: dict[str, Any] = {k: chosen[k] for k in QUEUE_FILTERS if chosen[k]}
    query["sla_due_before"] = due_before(chosen["sla_due"], now)
    query["cursor"] = chosen["cursor"] or None
    query["limit"] = PAGE_SIZE
    return chosen, query


def build_router(deps: ConsoleDeps) -> APIRouter:
    router = APIRouter()
    cases = deps.services.cases

    async def queue_page(request: Request, template: str) -> Response:
        user = current_user(request)
        chosen, query = _queue_params(request, deps.now())
        try:
            page = await cases.queue(user.token, **query)
        except (ServiceError, ServiceUnavailable) as exc:
            return service_failure(request, user, exc)
        rows = page.get("items", [])
        return render(request, template, {"rows": rows, "next_cursor": page.get("next_cursor"), "chosen": chosen,
                                          "statuses": STATUSES, "severities": action_rules.SEVERITIES,
                                          "categories": action_rules.CATEGORIES, "windows": SLA_WINDOWS,
                                          "filters_query": _filters_query(chosen)}, user=user)

    @router.get("/queue", response_class=HTMLResponse)
    async def queue(request: Request) -> Response:
        return await queue_page(request, "queue.html")

    @router.get("/queue/rows", response_class=HTMLResponse)
    async def queue_rows(request: Request) -> Response:
        """The rows alone: htmx swaps them in every few seconds (live refresh, no reload)."""
        return await queue_page(request, "queue_rows.html")

    async def case_page(request: Request, user: User, case_id: str, *, failed: str | None = None,
                        told: ToldProblem | None = None, posted: dict[str, str] | None = None,
                        status_code: int = 200) -> Response:
        try:
            case = await cases.case(user.token, case_id)
        except (ServiceError, ServiceUnavailable) as exc:
            return service_failure(request, user, exc)
        contacts = await _contacts_of(deps, user, case.get("contact_ids") or [])
        allowed = action_rules.actions_for(case.get("allowed_actions") or [], user.roles)
        return render(request, "case.html", {"case": case, "contacts": contacts, "actions": allowed,
                                             "failed": failed, "told": told, "posted": posted or {}},
                      user=user, status_code=status_code)

    @router.get("/cases/{case_id}", response_class=HTMLResponse)
    async def case_detail(request: Request, case_id: str) -> Response:
        return await case_page(request, current_user(request), case_id)

    @router.post("/cases/{case_id}/act/{route}", response_class=HTMLResponse)
    async def act(request: Request, case_id: str, route: str) -> Response:
        user = current_user(request)
        action = action_rules.ACTIONS.get(route)
        if action is None:
            raise Problem(404, "Not found", f"No action {route}.", field="route")
        form = {k: str(v) for k, v in (await request.form()).items()}
        # Forwarded even when this role may not take it: the service refuses, and says why.
        try:
            await cases.act(user.token, case_id, route, action_rules.form_body(action, form))
        except ServiceError as exc:
            told = tell(exc.status, exc.problem, Translator(user.language))
            if request.headers.get("hx-request") == "true":
                return render(request, "action_form.html", {"action": action, "case_id": case_id, "told": told,
                                                            "failed": route, "posted": form, "open": True},
                              user=user)
            return await case_page(request, user, case_id, failed=route, told=told, posted=form,
                                   status_code=exc.status if exc.status < 500 else 502)
        except ServiceUnavailable as exc:
            return service_failure(request, user, exc)
        target = f"/cases/{case_id}?done={route}"
        if request.headers.get("hx-request") == "true":
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @router.get("/contacts/{contact_id}/attachments/{attachment_id}", responses=PAGE_ON_ERROR)
    async def attachment(request: Request, contact_id: str, attachment_id: str) -> Response:
        user = current_user(request)
        try:
            ctype, data = await deps.services.intake.attachment(user.token, contact_id, attachment_id)
        except (ServiceError, ServiceUnavailable) as exc:
            return service_failure(request, user, exc)
        # Inline, so that a letter's scan opens in the browser; never sniffed as HTML.
        return Response(data, media_type=ctype, headers={"Content-Disposition": "inline",
                                                          "X-Content-Type-Options": "nosniff"})

    return router


def _filters_query(chosen: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in chosen.items() if v and k != "cursor"})


async def _contacts_of(deps: ConsoleDeps, user: User, contact_ids: list[str]) -> list[dict[str, Any]]:
    """The contacts behind a case (the customer's words, unit, letters' scans); one intake
    cannot give is left out rather than failing the page."""

    async def one(contact_id: str) -> dict[str, Any] | None:
        try:
            return await deps.services.intake.contact(user.token, contact_id)
        except (ServiceError, ServiceUnavailable):
            return None

    found = await asyncio.gather(*(one(c) for c in contact_ids[:20]))
    return [c for c in found if c]
