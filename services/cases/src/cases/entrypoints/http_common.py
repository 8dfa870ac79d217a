"""What the staff API's routers share: roles, the text field, JSON of stored values, and
domain refusals as problem+json."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from crm_runtime.problems import Problem
from pydantic import Field

from cases.domain.procedure import ChecklistIncomplete, DomainError, IllegalTransition

READERS = ("agent", "supervisor", "region_admin", "auditor")
STAFF = ("agent", "supervisor", "region_admin")
SUPERVISORS = ("supervisor", "region_admin")

Text = Annotated[str, Field(min_length=1, max_length=4000)]


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value



def domain_problem(exc: DomainError) -> Problem:
    if isinstance(exc, IllegalTransition):
        return Problem(409, "Not allowed now", str(exc), field=getattr(exc, "field", None) or "status")
    if isinstance(exc, ChecklistIncomplete):
        return Problem(409, "Closure checklist incomplete", str(exc), field="status",
                       missing=list(getattr(exc, "missing", [])))
    if exc.field == "status":  # what the thing's state allows, not what the request says
        return Problem(409, "Not allowed now", str(exc), field="status")
    return Problem(422, "Refused", str(exc), field=exc.field)


