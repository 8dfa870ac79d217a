"""Reporting's HTTP API: KPIs, the monthly complaint report (JSON, CSV, XLSX), drill-down,
and the dashboard page. Every query is scoped to one region the token covers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from crm_contracts.regions import KNOWN_REGIONS
from crm_runtime.auth import Principal, ensure_region, require_roles
from crm_runtime.problems import Problem
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from reporting import handlers
from reporting.adapters import exports
from reporting.adapters.store import SnapshotView
from reporting.deps import ReportingDeps
from reporting.domain import kpis
from reporting.domain.cells import check_month, month_of

READERS = ("agent", "supervisor", "region_admin", "auditor")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

Reader = Annotated[Principal, Depends(require_roles(*READERS))]
Region = Annotated[str, Query(min_length=2, max_length=40, description="Region code, e.g. shenzhen.")]
Month = Annotated[str | None, Query(max_length=7, description="YYYY-MM (China time); default: this month.")]
Project = Annotated[str | None, Query(max_length=100)]
Department = Annotated[str | None, Query(max_length=100)]
AsOf = Annotated[Literal["now", "close"] | None, Query(
    description="`close`: as reported at month close (the snapshot); `now` (default): restated with "
                "everything known today.")]
CLOSERS = ("supervisor", "region_admin")


class MonthClose(BaseModel):
    region: str = Field(min_length=2, max_length=40)
    month: str = Field(min_length=7, max_length=7, description="YYYY-MM")


def scope_of(principal: Principal, region: str, month: str | None, project: str | None = None,
             department: str | None = None) -> handlers.Scope:
    if region not in KNOWN_REGIONS:
        raise Problem(422, "Unknown region", f"Region '{region}' is not served by this platform.", field="region")
    ensure_region(principal, region, action="read reports")
    if month is None:
        month = month_of(datetime.now(UTC))
    try:
        month = check_month(month)
    except ValueError as exc:
        raise Problem(422, "Invalid request", str(exc), field="month") from exc
    return handlers.Scope(region, month, project or None, department or None)


def build_router(deps: ReportingDeps) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["reporting"])

    def targets(region: str) -> dict[str, kpis.Target]:
        return kpis.targets_for(region, deps.settings.targets)

    @router.get("/kpis", summary="Every KPI of a region's month, with its target and whether it is met")
    async def get_kpis(principal: Reader, region: Region, month: Month = None,
                       project: Project = None, department: Department = None, as_of: AsOf = None) -> dict[str, Any]:
        scope = scope_of(principal, region, month, project, department)
        return await handlers.kpi_report(await source(scope, as_of), scope, targets(region))

    @router.get("/kpis/drill", summary="The ids of the cases, contacts, surveys or work orders behind a counter",
                description="`counter` is one of the names a KPI lists under `drill` (numerator or base).")
    async def drill(principal: Reader, region: Region,
                    counter: Annotated[str, Query(min_length=3, max_length=200)], month: Month = None,
                    project: Project = None, department: Department = None) -> dict[str, Any]:
        scope = scope_of(principal, region, month, project, department)
        if ":" not in counter or counter.startswith("sum:"):
            raise Problem(422, "Invalid request", "counter must be a drillable counter such as reply:timely",
                          field="counter")
        return await handlers.drill(await deps.models.active(), scope, counter)

    @router.get("/stats/channels", summary="Contacts per channel and their shares over whole months",
                description="Intake's channel statistics, counted here: `from_month` to `to_month` "
                            "(YYYY-MM, default this month), at most 24 months.")
    async def channels(principal: Reader, region: Region, from_month: Month = None,
                       to_month: Month = None) -> dict[str, Any]:
        last = scope_of(principal, region, to_month)
        first = scope_of(principal, region, from_month or last.month)
        if first.month > last.month:
            raise Problem(422, "Invalid request", "from_month is after to_month", field="from_month")
        if len(handlers.months_between(first.month, last.month)) > 24:
            raise Problem(422, "Invalid request", "at most 24 months at a time", field="from_month")
        return await handlers.channel_stats(await deps.models.active(), region, first.month, last.month)

    @router.get("/reports/monthly-complaints", summary="The complaint monthly report (投诉月报)",
                description="`format=json` (default), `csv` or `xlsx`; an Accept header of text/csv or the "
                            "XLSX media type works too.",
                responses={200: {"content": {"text/csv": {}, XLSX: {}}}})
    async def monthly(request: Request, principal: Reader, region: Region,
                      month: Month = None,
                      format: Annotated[Literal["json", "csv", "xlsx"] | None, Query()] = None,
                      as_of: AsOf = None) -> Response:
        scope = scope_of(principal, region, month)
        report = await handlers.monthly_complaints(await source(scope, as_of), scope, targets(region))
        accept = request.headers.get("accept", "")
        chosen = format or ("xlsx" if XLSX in accept else "csv" if "text/csv" in accept else "json")
        name = f"complaints-{scope.region}-{scope.month}"
        if chosen == "csv":
            return Response(exports.to_csv(report), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
        if chosen == "xlsx":
            return Response(exports.to_xlsx(report), media_type=XLSX,
                            headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'})
        return JSONResponse(report)

    @router.post("/reports/month-close", status_code=201, summary="Close a month: keep what it reports now",
                 description="Copies the month's read models with the topic offsets they reflect. Closing a "
                             "closed month changes nothing and answers 200 with the first close.")
    async def month_close(body: MonthClose,
                          principal: Annotated[Principal, Depends(require_roles(*CLOSERS))]) -> JSONResponse:
        scope = scope_of(principal, body.region, body.month)
        existing = await deps.models.snapshot(handlers.snapshot_id(scope.region, scope.month))
        status = 200
        if existing is None:
            existing = await handlers.close_month(await deps.models.active(), scope.region, scope.month,
                                                  principal.subject)
            await deps.models.save_snapshot(existing)
            status = 201
        return JSONResponse({k: existing[k] for k in ("region", "month", "closed_at", "closed_by", "generation",
                                                      "offsets")}, status_code=status)

    async def source(scope: handlers.Scope, as_of: str | None) -> handlers.Source:
        if as_of != "close":
            return await deps.models.active()
        doc = await deps.models.snapshot(handlers.snapshot_id(scope.region, scope.month))
        if doc is None:
            raise Problem(404, "Month not closed", f"{scope.region} {scope.month} has no month-close snapshot.",
                          field="as_of")
        return SnapshotView(doc)

    return router
