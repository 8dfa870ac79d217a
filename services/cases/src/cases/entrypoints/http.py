"""The staff API of cases: the queue, a case with its timeline, and one POST per step of
the procedure. Every request is scoped to the regions in the caller's token."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from crm_contracts.regions import KNOWN_REGIONS
from crm_runtime.auth import Principal, ensure_region, require_roles
from crm_runtime.problems import Problem
from crm_runtime.revisions import REV, RevisionConflict
from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, Field

from cases import handlers
from cases.adapters.documents import case_to_doc
from cases.adapters.incidents_query import IncidentQuery, month_of
from cases.adapters.queue import ROW_FIELDS
from cases.adapters.store import NO_DEADLINE
from cases.deps import CasesDeps
from cases.domain.contacts import shown_kind
from cases.domain.procedure import (
    STAFF_COMMANDS,
    SUPERVISOR_ACTIONS,
    Case,
    DomainError,
)
from cases.entrypoints.http_common import READERS, STAFF, SUPERVISORS, Text, domain_problem, jsonable
from cases.entrypoints.http_contacts import contacts_router


class Validate(BaseModel):
    outcome: Literal["valid", "invalid", "consultation"]
    explanation: Text = Field(description="What the customer is told (required for invalid/consultation).")


class Classify(BaseModel):
    severity: Literal["general", "major", "crisis"]
    category: Literal["engineering_quality", "sales_service", "customer_service", "property_management",
                      "design", "other"]
    procedure: str | None = None
    reason: str | None = Field(None, max_length=2000, description="Needed when lowering the proposed severity.")


class OverrideSeverity(BaseModel):
    severity: Literal["general", "major", "crisis"]
    reason: Text


class Assess(BaseModel):
    nature: Text
    influence: Text
    notes: str | None = None


class Assign(BaseModel):
    department: Text
    assignee: str | None = None


class Reassign(BaseModel):
    department: Text
    assignee: str | None = None
    reason: Text


class Findings(BaseModel):
    responsible_department: Text
    root_cause: Text
    written_findings: Text
    responsible_post: str | None = None
    responsible_person: str | None = None
    evidence_attachment_ids: list[str] = Field(default_factory=list, max_length=50)


class Opinion(BaseModel):
    opinion: Text


class Handling(BaseModel):
    plan: str | None = Field(None, max_length=4000)


class Progress(BaseModel):
    message_to_customer: Text = Field(description="Shown to the customer; counts for reply timeliness.")


class Resolve(BaseModel):
    summary: Text


class Confirmation(BaseModel):
    accepted: bool
    comment: str | None = Field(None, max_length=4000)


class Note(BaseModel):
    note: str | None = Field(None, max_length=4000)


class Reason(BaseModel):
    reason: Text


class Lesson(BaseModel):
    root_cause: Text
    responsible_department: Text
    improvement: Text


class Escalate(BaseModel):
    reason: Text
    to: str = "supervisor"


class Empty(BaseModel):
    pass


Apply = Callable[[Case, Any, str, datetime], None]

# route name (as in STAFF_COMMANDS and allowed_actions) -> (request model, how to run it on the case)
ACTIONS: dict[str, tuple[type[BaseModel], Apply]] = {
    "validate": (Validate, lambda c, b, a, t: c.validate(b.outcome, b.explanation, actor=a, at=t)),
    "classify": (Classify, lambda c, b, a, t: c.classify(
        b.severity, b.category, procedure=b.procedure, reason=b.reason, actor=a, at=t)),
    "override-severity": (OverrideSeverity,
                          lambda c, b, a, t: c.override_severity(b.severity, reason=b.reason, actor=a, at=t)),
    "assess": (Assess, lambda c, b, a, t: c.assess(b.nature, b.influence, notes=b.notes, actor=a, at=t)),
    "assign": (Assign, lambda c, b, a, t: c.assign(b.department, b.assignee, actor=a, at=t)),
    "reassign": (Reassign,
                 lambda c, b, a, t: c.reassign(b.department, b.assignee, reason=b.reason, actor=a, at=t)),
    "start-investigation": (Empty, lambda c, b, a, t: c.start_investigation(actor=a, at=t)),
    "findings": (Findings, lambda c, b, a, t: c.record_findings(
        responsible_department=b.responsible_department, root_cause=b.root_cause,
        written_findings=b.written_findings, responsible_post=b.responsible_post,
        responsible_person=b.responsible_person, evidence_attachment_ids=b.evidence_attachment_ids,
        actor=a, at=t)),
    "legal-opinion": (Opinion,
                      lambda c, b, a, t: c.record_legal_opinion(b.opinion, actor=a, at=t)),
    "start-handling": (Handling, lambda c, b, a, t: c.start_handling(plan=b.plan, actor=a, at=t)),
    "progress": (Progress,
                 lambda c, b, a, t: c.report_progress(b.message_to_customer, actor=a, at=t)),
    "resolve": (Resolve, lambda c, b, a, t: c.resolve(b.summary, actor=a, at=t)),
    "customer-confirmation": (Confirmation,
                              lambda c, b, a, t: c.confirm_by_customer(b.accepted, comment=b.comment, actor=a, at=t)),
    "department-approval": (Note,
                            lambda c, b, a, t: c.approve_by_department(note=b.note, actor=a, at=t)),
    "close": (Empty, lambda c, b, a, t: c.close(actor=a, at=t)),
    "force-close": (Reason, lambda c, b, a, t: c.force_close(b.reason, actor=a, at=t)),
    "reopen": (Reason, lambda c, b, a, t: c.reopen(b.reason, actor=a, at=t)),
    "lesson": (Lesson, lambda c, b, a, t: c.record_lesson(
        root_cause=b.root_cause, responsible_department=b.responsible_department, improvement=b.improvement,
        actor=a, at=t)),
    "escalate": (Escalate, lambda c, b, a, t: c.escalate(b.reason, to=b.to, actor=a, at=t)),
    "wait-for-customer": (Reason,
                          lambda c, b, a, t: c.wait_for_customer(b.reason, actor=a, at=t)),
    "customer-responded": (Note,
                           lambda c, b, a, t: c.customer_responded(message=b.note, actor=a, at=t)),
    "on-site-response": (Note,
                         lambda c, b, a, t: c.record_on_site_response(details=b.note, actor=a, at=t)),
}


def case_view(case: Case) -> dict[str, Any]:
    doc = case_to_doc(case)
    doc["kind"] = shown_kind(case.kind_hint, case.kind_confidence)
    doc["allowed_actions"] = case.allowed_actions()
    doc["closure_checklist"] = case.closure_checklist()
    return jsonable(doc)


def queue_row(doc: dict[str, Any]) -> dict[str, Any]:
    row = {k: doc.get(k) for k in ROW_FIELDS}
    if row["sla_due_at"] == NO_DEADLINE:
        row["sla_due_at"] = None
    return jsonable(row)


def _encode_cursor(doc: dict[str, Any]) -> str:
    raw = json.dumps([doc["sla_due_at"].isoformat(), doc["case_id"]])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        due, case_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(due), str(case_id)
    except (ValueError, TypeError) as exc:
        raise Problem(422, "Invalid request", "The cursor is not one this API gave out.", field="cursor") from exc


def _previous_month(month: str) -> str:
    year, number = (int(p) for p in month.split("-"))
    return f"{year - 1}-12" if number == 1 else f"{year}-{number - 1:02d}"


def incidents_routes(router: APIRouter, deps: CasesDeps, incidents: IncidentQuery) -> None:
    @router.get("/incidents", tags=["incidents"], summary="Collective incidents of your regions, newest first",
                description="Those whose window started in `month` (YYYY-MM, UTC), or in this month and the last.")
    async def list_incidents(
        principal: Annotated[Principal, Depends(require_roles(*READERS))],
        region: str | None = None,
        month: Annotated[str | None, Query(pattern=r"^20\d\d-(0[1-9]|1[0-2])$")] = None,
    ) -> dict[str, Any]:
        if region is not None:
            ensure_region(principal, region, action="read incidents")
        regions = [region] if region else principal.region_filter() or sorted(KNOWN_REGIONS)
        this_month = month_of(deps.now())
        months = [month] if month else [this_month, _previous_month(this_month)]
        return {"items": jsonable(await incidents.listed(regions, months))}

    @router.get("/incidents/{incident_id}", tags=["incidents"],
                summary="A collective incident with the cases it groups (open and closed)")
    async def incident(incident_id: str,
                       principal: Annotated[Principal, Depends(require_roles(*READERS))]) -> dict[str, Any]:
        doc = await incidents.get(incident_id)
        if doc is None:
            raise Problem(404, "Not found", f"No collective incident {incident_id}.")
        ensure_region(principal, str(doc.get("region")), action="read incident")
        grouped = await incidents.grouped_cases([str(c) for c in doc.get("case_ids") or []])
        view = {k: v for k, v in doc.items() if k not in ("_id", REV, "outbox", "outbox_pending")}
        return jsonable({"incident_id": doc["_id"], **view,
                         "cases": [{**queue_row(c), "is_open": bool(c.get("is_open"))} for c in grouped]})


def build_router(deps: CasesDeps, incidents: IncidentQuery | None = None) -> APIRouter:
    """The staff API; the incident routes only when given their read side (`bootstrap`)."""
    router = APIRouter(prefix="/v1", tags=["cases"])
    if incidents is not None:
        incidents_routes(router, deps, incidents)

    @router.get("/cases", summary="The queue: open cases of your regions, due first",
                description="Closed cases leave the queue; find one by its id or number.")
    async def queue(
        principal: Annotated[Principal, Depends(require_roles(*READERS))],
        region: str | None = None,
        status: str | None = None,
        severity: Literal["general", "major", "crisis"] | None = None,
        category: str | None = None,
        department: str | None = None,
        assignee: str | None = None,
        sla_due_before: Annotated[AwareDatetime | None, Query()] = None,
        cursor: str | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        if region is not None:
            ensure_region(principal, region, action="read queue")
        regions = [region] if region else principal.region_filter() or sorted(KNOWN_REGIONS)
        rows = await deps.cases.queue(
            {"status": status, "severity": severity, "category": category,
             "department": department, "assignee": assignee},
            regions=regions, due_before=sla_due_before,
            after=_decode_cursor(cursor) if cursor else None, limit=limit + 1)
        page, more = rows[:limit], len(rows) > limit
        return {"items": [queue_row(d) for d in page],
                "next_cursor": _encode_cursor(page[-1]) if more and page else None}

    async def load(case_id: str, principal: Principal, action: str) -> Case:
        case = await deps.cases.get(case_id)
        if case is None:
            raise Problem(404, "Not found", f"No case {case_id}.")
        ensure_region(principal, case.region, action=action)
        return case

    @router.get("/cases/{case_id}", summary="A case (by id or case number) with its timeline")
    async def detail(case_id: str, principal: Annotated[Principal, Depends(require_roles(*READERS))]) -> dict:
        return case_view(await load(case_id, principal, "read case"))

    def add_action(path: str, model: type[BaseModel], apply: Apply) -> None:
        action = STAFF_COMMANDS[path]
        roles = SUPERVISORS if action in SUPERVISOR_ACTIONS else STAFF

        async def run(case_id: str, body: Any, principal: Any) -> dict:
            case = await load(case_id, principal, action)
            at = deps.now()
            try:
                updated = await handlers.act_on_case(
                    deps, case.case_id, lambda c: apply(c, body, principal.subject, at))
            except DomainError as exc:
                raise domain_problem(exc) from exc
            except RevisionConflict as exc:
                raise Problem(409, "Changed meanwhile", "The case changed; reload and retry.") from exc
            return case_view(updated)

        run.__name__ = f"case_{action}"
        # Real objects, not strings: the model and roles differ per generated route.
        run.__annotations__ = {"case_id": str, "body": model,
                               "principal": Annotated[Principal, Depends(require_roles(*roles))],
                               "return": dict}
        router.add_api_route(f"/cases/{{case_id}}/{path}", run, methods=["POST"],
                             summary=f"{action.replace('_', ' ').capitalize()}"
                                     + (" (supervisors)" if action in SUPERVISOR_ACTIONS else ""))

    for path, (model, apply) in ACTIONS.items():
        add_action(path, model, apply)

    router.include_router(contacts_router(deps, case_view))
    return router
