"""Collective incidents: those of the user's regions, and one incident with every case it
groups (open and closed) on one page, both read from cases' incident API."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from console.adapters.services import ServiceError, ServiceUnavailable
from console.deps import ConsoleDeps
from console.entrypoints.web import current_user, render, service_failure

MONTH = re.compile(r"^20\d\d-(0[1-9]|1[0-2])$")


def build_router(deps: ConsoleDeps) -> APIRouter:
    router = APIRouter()
    cases = deps.services.cases

    @router.get("/incidents", response_class=HTMLResponse)
    async def incidents(request: Request, region: str = "", month: str = "") -> Response:
        user = current_user(request)
        # A month the service would refuse is dropped here: the page shows the default months.
        chosen = {"region": region if region in user.regions else "", "month": month if MONTH.match(month) else ""}
        try:
            page = await cases.incidents(user.token, **chosen)
        except (ServiceError, ServiceUnavailable) as exc:
            return service_failure(request, user, exc)
        return render(request, "incidents.html", {"items": page.get("items", []), "chosen": chosen}, user=user)

    @router.get("/incidents/{incident_id}", response_class=HTMLResponse)
    async def incident(request: Request, incident_id: str) -> Response:
        user = current_user(request)
        try:
            found = await cases.incident(user.token, incident_id)
        except (ServiceError, ServiceUnavailable) as exc:
            return service_failure(request, user, exc)
        rows = sorted(found.get("cases", []), key=lambda r: str(r.get("case_number") or r.get("case_id")))
        return render(request, "incident.html", {"incident": found, "rows": rows,
                                                 "open_count": sum(1 for r in rows if r.get("is_open"))}, user=user)

    return router
