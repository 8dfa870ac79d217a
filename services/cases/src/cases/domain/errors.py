"""Why a command is refused: the adapter turns these into problem+json (409 for a step the
status does not allow, 422 for bad input), naming the field at fault."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .statuses import ALLOWED_FROM

if TYPE_CHECKING:
    from .case_state import CaseState

class DomainError(Exception):
    """A command the rules refuse. `field` names the input at fault (for problem+json)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class IllegalTransition(DomainError):
    def __init__(self, case: CaseState, action: str, detail: str | None = None) -> None:
        allowed = ", ".join(sorted(s.value for s in ALLOWED_FROM.get(action, ())))
        message = f"cannot {action} case {case.case_number}: it is {case.status.value}" + (
            f" ({detail})" if detail else f"; {action} is allowed from: {allowed}"
        )
        super().__init__(message, field="status")
        self.status = case.status
        self.action = action


class ReasonRequired(DomainError):
    def __init__(self, action: str) -> None:
        super().__init__(f"{action} needs a reason", field="reason")


class ChecklistIncomplete(DomainError):
    def __init__(self, case: CaseState, missing: list[str]) -> None:
        super().__init__(
            f"cannot close case {case.case_number}: closure checklist incomplete, missing "
            + ", ".join(missing),
            field="checklist",
        )
        self.missing = missing

