"""What becomes of a contact: it opens a case, joins one, or waits as work for staff.

Why: step 1 of the procedure (受理) screens every contact. Complaints and repairs are
cases at once. Consultations, suggestions and praise are work too: staff explain, record
and close them (domain step 1), or decide one is a case after all. But intake's kind hint
is a guess: a front-desk note about a gas leak and a burned relative, written without the
word "complaint", is no consultation. So the severity rules have the last word: whatever
the hint says, content they judge major or crisis opens a case (and a crisis escalates at
once, as every crisis case does). A hint intake gives with confidence 0 is no judgement
at all: staff see it as "unclassified", not as a consultation.

Workable contacts move one way: unanswered -> answered (the answer is what the customer
is told) or -> case_opened (staff opened a case from it; an answered one may still become
a case). Answering again with the same text is the same answer (a retried request).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from .errors import DomainError
from .severity import Category, Severity, SeverityProposal

CASE_KINDS = frozenset({"complaint", "repair"})  # open a case whatever the content says
UNCLASSIFIED = "unclassified"


class WorkStatus(StrEnum):
    UNANSWERED = "unanswered"
    ANSWERED = "answered"
    CASE_OPENED = "case_opened"

    @property
    def rank(self) -> int:
        return _WORK_RANK[self]


_WORK_RANK = {WorkStatus.UNANSWERED: 0, WorkStatus.ANSWERED: 1, WorkStatus.CASE_OPENED: 2}


def opens_case(kind_hint: str, proposal: SeverityProposal) -> bool:
    """A complaint or repair, or anything the severity rules judge major or crisis."""
    return kind_hint in CASE_KINDS or proposal.severity.rank >= Severity.MAJOR.rank


def shown_kind(kind_hint: str | None, kind_confidence: float | None) -> str:
    """The kind staff see: intake's hint, unless intake said it could not tell."""
    if kind_confidence == 0 or not kind_hint:
        return UNCLASSIFIED
    return kind_hint


@dataclass(frozen=True)
class OpenCaseSummary:
    """What a case the contact might join looks like (from the customer's open cases)."""

    case_id: str
    category: Category
    project: str | None
    region: str | None = None


def case_to_join(
    open_cases: Iterable[OpenCaseSummary],
    *,
    category: Category,
    project: str | None,
    region: str | None = None,
) -> str | None:
    """The customer's open case about the same matter (same region and category, same or
    unknown project), which a further contact joins instead of opening another case. A
    case of another region stays apart: its staff would never see the new contact."""
    for case in open_cases:
        same_place = not project or case.project in (None, project)
        same_region = region is None or case.region in (None, region)
        if case.category == category and same_place and same_region:
            return case.case_id
    return None


@dataclass(frozen=True)
class Answer:
    text: str
    by: str
    at: datetime


@dataclass(frozen=True)
class WorkItem:
    """A contact that opened no case, as staff work on it."""

    contact_id: str
    region: str
    status: WorkStatus = WorkStatus.UNANSWERED
    answer: Answer | None = None
    case_id: str | None = None

    def answered(self, text: str, *, by: str, at: datetime) -> WorkItem:
        """Explain, record, close. The same text again is the same answer (idempotent)."""
        text = (text or "").strip()
        if not text:
            raise DomainError("answer must not be empty", field="answer")
        if self.status is WorkStatus.CASE_OPENED:
            raise DomainError(
                f"contact {self.contact_id} became case {self.case_id}: answer it there",
                field="status",
            )
        if self.answer is not None:
            if self.answer.text == text:
                return self
            raise DomainError(f"contact {self.contact_id} is already answered", field="status")
        return replace(self, status=WorkStatus.ANSWERED, answer=Answer(text, by, at))

    def case_opened(self, case_id: str) -> WorkItem:
        if self.case_id not in (None, case_id):
            raise DomainError(
                f"contact {self.contact_id} already belongs to case {self.case_id}", field="status"
            )
        return replace(self, status=WorkStatus.CASE_OPENED, case_id=case_id)
