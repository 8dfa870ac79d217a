"""The staff API for contacts that opened no case (consultations, suggestions, praise,
unclassified): list them, read one, answer and close it, or open a case from it. Scoped to
the regions in the caller's token, as the case routes are."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from crm_contracts.regions import KNOWN_REGIONS
from crm_runtime.auth import Principal, ensure_region, require_roles
from crm_runtime.problems import Problem
from crm_runtime.revisions import RevisionConflict
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from cases import handlers
from cases.adapters.worklist import sort_key
from cases.deps import CasesDeps
from cases.domain.contacts import shown_kind
from cases.domain.errors import DomainError
from cases.domain.procedure import Case
from cases.entrypoints.http_common import READERS, STAFF, Text, domain_problem, jsonable

Kind = Literal["consultation", "suggestion", "praise", "complaint", "repair", "unclassified"]
Status = Literal["unanswered", "answered", "case_opened"]
CONTACT_FIELDS = ("region", "status", "kind_hint", "kind_confidence", "channel", "customer_id", "project",
                  "building", "unit", "subject", "body", "received_at", "case_id", "duplicate_of")


class AnswerBody(BaseModel):
    answer: Text = Field(description="What the customer is told; recorded, and the contact is closed.")


def contact_view(doc: dict[str, Any]) -> dict[str, Any]:
    view = {"contact_id": doc["_id"], **{k: doc.get(k) for k in CONTACT_FIELDS}}
    view["kind"] = shown_kind(doc.get("kind_hint"), doc.get("kind_confidence"))
    view["status"] = doc.get("status") or ("case_opened" if doc.get("case_id") else "unanswered")
    view["answer"] = doc.get("answer")
    return jsonable(view)  # type: ignore[no-any-return]


def _encode(row: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(sort_key(row))).encode()).decode()


def _decode(cursor: str) -> tuple[Any, ...]:
    try:
        rank, seconds, contact_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return int(rank), float(seconds), str(contact_id)
    except (ValueError, TypeError) as exc:
        raise Problem(422, "Invalid request", "The cursor is not one this API gave out.", field="cursor") from exc


def contacts_router(deps: CasesDeps, case_view: Callable[[Case], dict[str, Any]]) -> APIRouter:
    router = APIRouter(tags=["contacts"])

    @router.get("/contacts", summary="Contacts that opened no case: unanswered first, oldest first",
                description="Consultations, suggestions, praise and unclassified contacts of your regions. "
                            "`kind=unclassified` lists those intake could not classify.")
    async def worklist(
        principal: Annotated[Principal, Depends(require_roles(*READERS))],
        region: str | None = None,
        kind: Kind | None = None,
        status: Status | None = None,
        cursor: str | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        if region is not None:
            ensure_region(principal, region, action="read contacts")
        regions = [region] if region else principal.region_filter() or sorted(KNOWN_REGIONS)
        rows = await handlers.list_contacts(deps, regions=regions, status=status, kind=kind,
                                            after=_decode(cursor) if cursor else None, limit=limit + 1)
        page, more = rows[:limit], len(rows) > limit
        return {"items": [jsonable(r) for r in page], "next_cursor": _encode(page[-1]) if more and page else None}

    async def load(contact_id: str, principal: Principal, action: str) -> dict[str, Any]:
        doc = await deps.contacts.get(contact_id)
        if doc is None:
            raise Problem(404, "Not found", f"No contact {contact_id}.")
        ensure_region(principal, doc["region"], action=action)
        return doc

    @router.get("/contacts/{contact_id}", summary="A contact, with what the customer wrote and its answer")
    async def detail(contact_id: str, principal: Annotated[Principal, Depends(require_roles(*READERS))]) -> dict:
        return contact_view(await load(contact_id, principal, "read contact"))

    @router.post("/contacts/{contact_id}/answer", summary="Answer a contact and close it (the same answer again "
                                                         "changes nothing)")
    async def answer(contact_id: str, body: AnswerBody,
                     principal: Annotated[Principal, Depends(require_roles(*STAFF))]) -> dict:
        await load(contact_id, principal, "answer contact")
        try:
            doc = await handlers.answer_contact(deps, contact_id, body.answer, actor=principal.subject)
        except handlers.ContactNotFound as exc:
            raise Problem(404, "Not found", f"No contact {contact_id}.") from exc
        except DomainError as exc:
            raise domain_problem(exc) from exc
        except RevisionConflict as exc:
            raise Problem(409, "Changed meanwhile", "The contact changed; reload and retry.") from exc
        return contact_view(doc)

    @router.post("/contacts/{contact_id}/open-case",
                 summary="Open a case from a consultation, suggestion or praise (staff decision; "
                         "asking again returns the same case)")
    async def open_case(contact_id: str, principal: Annotated[Principal, Depends(require_roles(*STAFF))]) -> dict:
        await load(contact_id, principal, "open case")
        try:
            case_id = await handlers.open_case_for_contact(deps, contact_id, actor=principal.subject)
        except handlers.ContactNotFound as exc:
            raise Problem(404, "Not found", f"No contact {contact_id}.") from exc
        except DomainError as exc:
            raise domain_problem(exc) from exc
        except RevisionConflict as exc:
            raise Problem(409, "Changed meanwhile", "The contact changed; reload and retry.") from exc
        case = await deps.cases.get(case_id)
        assert case is not None
        return case_view(case)

    return router
