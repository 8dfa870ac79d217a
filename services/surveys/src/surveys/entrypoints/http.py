"""The staff API of surveys: the agents' visit worklist, a customer's surveys, recording a
phone interview or a home visit, cancelling, new links, coverage, the annual campaign
and the definitions. Every request is scoped to the regions in the caller's token."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from crm_contracts.regions import KNOWN_REGIONS
from crm_runtime.auth import Principal, ensure_region, require_roles
from crm_runtime.problems import Problem
from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, Field, model_validator

from surveys.adapters.worklist import day_end, due_day
from surveys.deps import SurveysDeps
from surveys.domain import definitions
from surveys.domain.answers import InvalidAnswer
from surveys.domain.coverage import CoverageRow, summary
from surveys.domain.schedule import KINDS
from surveys.handlers import answering, campaign
from surveys.handlers.lifecycle import SurveyNotFound, WrongState

READERS = ("agent", "supervisor", "region_admin", "auditor")
STAFF = ("agent", "supervisor", "region_admin")
SUPERVISORS = ("supervisor", "region_admin")
HIDDEN = ("nonce", "outbox", "outbox_pending", "rev", "applied_events", "_id")


class VisitRecord(BaseModel):
    """The written record of a home visit the procedure asks for."""

    visited_at: AwareDatetime
    visitor: str = Field(min_length=1, max_length=200, description="Who made the visit.")
    participants: list[str] = Field(default_factory=list, max_length=20)
    notes: str = Field(min_length=1, max_length=4000, description="What was seen and said.")


class AnswerBody(BaseModel):
    mode: Literal["phone", "home_visit"]
    answers: dict[str, int | str] = Field(description="Question id -> answer; see /v1/definitions/{kind}.")
    visit_record: VisitRecord | None = None

    @model_validator(mode="after")
    def _home_visit_has_its_record(self) -> AnswerBody:
        if self.mode == "home_visit" and self.visit_record is None:
            raise ValueError("a home visit needs its visit_record")
        return self


class CancelBody(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class CampaignBody(BaseModel):
    region: str
    year: int = Field(ge=2000, le=2100)


def survey_view(doc: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in doc.items() if k not in HIDDEN}
    return {"survey_id": doc["_id"], **view}


def _definition_view(d: definitions.Definition) -> dict[str, Any]:
    return {"kind": d.kind, "version": d.version, "title": {"zh-CN": d.title_zh, "en": d.title_en},
            "questions": [{"id": q.id, "type": q.type.value, "required": q.required,
                           "text": {"zh-CN": q.zh, "en": q.en},
                           "options": [{"id": o.id, "text": {"zh-CN": o.zh, "en": o.en}} for o in q.options]}
                          for q in d.questions]}


def build_router(deps: SurveysDeps) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["surveys"])

    def known_region(region: str) -> None:
        if region not in KNOWN_REGIONS:
            raise Problem(422, "Unknown region", f"'{region}' is not a region the platform serves.", field="region")

    async def load(survey_id: str, principal: Principal, action: str) -> dict[str, Any]:
        doc = await deps.surveys.get(survey_id)
        if doc is None:
            raise Problem(404, "Survey not found", f"No survey {survey_id}.", field="survey_id")
        ensure_region(principal, doc["region"], action=action)
        return doc

    async def run(action: Any) -> dict[str, Any]:
        try:
            return await action  # type: ignore[no-any-return]
        except InvalidAnswer as exc:
            raise Problem(422, "Invalid answer", exc.message, field=f"answers.{exc.question}") from exc
        except WrongState as exc:
            raise Problem(409, "Survey not open", f"The survey is {exc.status}.", field="status") from exc
        except SurveyNotFound as exc:
            raise Problem(404, "Survey not found", str(exc), field="survey_id") from exc

    @router.get("/worklist", summary="Visits to make: overdue first, then by due time",
                description="Open return visits and scheduled visits of a region (the annual survey is "
                            "answered on its page). `due=today` keeps only those overdue or due today.")
    async def worklist(principal: Annotated[Principal, Depends(require_roles(*READERS))], region: str,
                       due: Literal["today", "open"] = "open",
                       limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
        known_region(region)
        ensure_region(principal, region, action="read worklist")
        now = deps.now()
        today_end = day_end(due_day(now))
        rows = await deps.worklist.page(region, now, limit=limit, due_by=today_end if due == "today" else None)
        items = []
        for r in rows:
            urgency = "overdue" if r["due_at"] < now else "due_today" if r["due_at"] < today_end else "open"
            items.append({**{k: v for k, v in r.items() if k != "rev"}, "urgency": urgency})
        return {"items": items}

    @router.get("/surveys/{survey_id}", summary="One survey, with its answers if any")
    async def detail(survey_id: str, principal: Annotated[Principal, Depends(require_roles(*READERS))]) -> dict:
        return survey_view(await load(survey_id, principal, "read survey"))

    @router.get("/customers/{customer_id}/surveys", summary="A customer's surveys, newest due first")
    async def of_customer(customer_id: str,
                          principal: Annotated[Principal, Depends(require_roles(*READERS))]) -> dict[str, Any]:
        customer = await deps.directory.customer(customer_id)
        ids = (customer or {}).get("survey_ids", [])
        docs = [d for d in await deps.surveys.many(ids) if principal.may_see(d["region"])]
        if customer and customer.get("region"):
            ensure_region(principal, customer["region"], action="read customer surveys")
        docs.sort(key=lambda d: d["due_at"], reverse=True)
        return {"items": [survey_view(d) for d in docs]}

    @router.post("/surveys/{survey_id}/answers", summary="Record a phone interview or a home visit",
                 responses={409: {"description": "Already answered, expired, cancelled or held"},
                            422: {"description": "An answer the definition does not allow (names the question)"}})
    async def answer(survey_id: str, body: AnswerBody,
                     principal: Annotated[Principal, Depends(require_roles(*STAFF))]) -> dict[str, Any]:
        await load(survey_id, principal, "answer survey")
        record = body.visit_record.model_dump(mode="python") if body.visit_record else None
        doc = await run(answering.record_answer(deps, survey_id, answering.Answer(
            mode=body.mode, answers=dict(body.answers), actor=principal.subject, visit_record=record)))
        return survey_view(doc)

    @router.post("/surveys/{survey_id}/cancel", summary="Cancel an open survey, with the reason",
                 description="Publishes survey.excluded with reason `other` and your reason as its detail.")
    async def cancel(survey_id: str, body: CancelBody,
                     principal: Annotated[Principal, Depends(require_roles(*STAFF))]) -> dict[str, Any]:
        await load(survey_id, principal, "cancel survey")
        return survey_view(await run(answering.cancel(deps, survey_id, body.reason, principal.subject)))

    @router.post("/surveys/{survey_id}/link", summary="A new self-service link (the previous one stops working)")
    async def link(survey_id: str, principal: Annotated[Principal, Depends(require_roles(*STAFF))]) -> dict:
        await load(survey_id, principal, "issue survey link")
        try:
            path, expires_at = await answering.new_link(deps, survey_id)
        except WrongState as exc:
            raise Problem(409, "Survey not open", f"The survey is {exc.status}.", field="status") from exc
        return {"path": path, "expires_at": expires_at}

    @router.get("/coverage", summary="Visits due and done per project and product type",
                description="The target: every product type visited, at least 5 households each.")
    async def coverage(principal: Annotated[Principal, Depends(require_roles(*READERS))], region: str,
                       kind: Annotated[list[str] | None, Query()] = None) -> dict[str, Any]:
        known_region(region)
        ensure_region(principal, region, action="read coverage")
        for k in kind or []:
            if k not in KINDS:
                raise Problem(422, "Unknown kind", f"'{k}' is not a survey kind.", field="kind")
        wanted = set(kind or [k for k in KINDS if k != "annual"])
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for doc in await deps.coverage.rows(region):
            if doc["kind"] not in wanted:
                continue
            row = merged.setdefault((doc["project"], doc["product_type"]), {"due": 0, "done": 0, "homes": set()})
            row["due"] += int(doc.get("due", 0))
            row["done"] += int(doc.get("done", 0))
            row["homes"].update(doc.get("households", []))
        rows = [CoverageRow(p, t, v["due"], v["done"], len(v["homes"])) for (p, t), v in sorted(merged.items())]
        return {"region": region, "kinds": sorted(wanted), "summary": summary(rows),
                "items": [{"project": r.project, "product_type": r.product_type, "due": r.due, "done": r.done,
                           "done_ratio": r.done_ratio, "households_done": r.households_done,
                           "meets_target": r.meets_target} for r in rows]}

    @router.post("/campaigns", status_code=202, summary="Start the annual survey of a region for a year",
                 description="Idempotent: the same region and year is the same campaign.")
    async def start_campaign(body: CampaignBody,
                             principal: Annotated[Principal, Depends(require_roles(*SUPERVISORS))]) -> dict:
        known_region(body.region)
        ensure_region(principal, body.region, action="start campaign")
        try:
            doc = await campaign.start(deps, body.region, body.year, principal.subject)
        except campaign.CampaignTooClose as exc:
            raise Problem(409, "Campaign too close", f"Campaign {exc.other} of the region falls due within the "
                          "quiet period of this one: no owner may be surveyed twice in it.", field="year") from exc
        return {"campaign_id": doc["_id"], **{k: v for k, v in doc.items() if k != "_id"}}

    @router.get("/campaigns/{campaign_id}", summary="An annual campaign and its counts")
    async def get_campaign(campaign_id: str,
                           principal: Annotated[Principal, Depends(require_roles(*READERS))]) -> dict:
        doc = await deps.campaigns.get(campaign_id)
        if doc is None:
            raise Problem(404, "Campaign not found", f"No campaign {campaign_id}.", field="campaign_id")
        ensure_region(principal, doc["region"], action="read campaign")
        return {"campaign_id": doc["_id"], **{k: v for k, v in doc.items() if k != "_id"}}

    @router.get("/definitions", summary="The current definition of every kind")
    async def all_definitions(principal: Annotated[Principal, Depends(require_roles(*READERS))]) -> dict:
        return {"items": [_definition_view(definitions.current(k)) for k in KINDS]}

    @router.get("/definitions/{kind}", summary="A kind's definition (the current one, or a version)")
    async def one_definition(kind: str, principal: Annotated[Principal, Depends(require_roles(*READERS))],
                             version: int | None = None) -> dict[str, Any]:
        try:
            d = definitions.get(kind, version) if version else definitions.current(kind)
        except KeyError as exc:
            raise Problem(404, "Definition not found", f"No definition {kind} v{version}.", field="kind") from exc
        return _definition_view(d)

    return router

