"""The nine-step complaint procedure (投诉处理九步) as a state machine on the `Case` aggregate.

Why: the centre is judged on following the procedure — every valid complaint confirmed,
judged, assessed, investigated, handled, replied to, closed with the customer's acceptance
and turned into a lesson (domain.md section 2). Encoding the steps as allowed transitions
makes a skipped step an error instead of a habit, and records who did what, when and why.

Statuses and the commands that move between them:

    received --validate(valid)--> validated --classify--> classified --assess--> assessed
    assessed --start_investigation--> investigating --record_findings, start_handling-->
    handling --resolve--> resolved --confirm_by_customer(accepted) + approve_by_department,
    close--> closed --record_lesson--> lesson_recorded

- `validate` with outcome invalid or consultation closes the case at once; the explanation
  given to the customer is recorded (a customer-visible timeline entry).
- `resolved` *is* "awaiting the customer's confirmation"; no separate status. The customer
  not accepting the result reopens the case to `handling`.
- `close` needs the closure checklist (`closure_checklist()`): every step done, a progress
  report sent, legal opinion when required, customer accepted, department approved, records
  complete. A supervisor may `force_close` anything still open, with a reason.
- `reopen` (from resolved, closed or lesson_recorded, reason required) goes back to
  `handling`, or to `received` for a case that was closed as invalid or a consultation.
- A major or crisis case needs the legal department's opinion before `resolve`.
- A crisis (proposed at opening, classified, or raised later) escalates at once to the
  region's leadership with reason "crisis"; that escalation starts the on-site clock.
- Anytime while open: assign / reassign, report_progress, escalate, wait_for_customer /
  customer_responded (pauses SLA clocks), record_legal_opinion (before resolution),
  attach_contact, link_collective_incident, record_sla_breach, record_on_site_response.

Roles are the adapter's business: `SUPERVISOR_ACTIONS` lists the commands only a
supervisor may run; the domain makes sure they carry a reason.

Each command appends timeline entries and `(event_type, payload)` pairs to
`pending_events`; the adapter writes the case and those events in one document, then runs
`sla.apply_events` over the same events to move the clocks. Nothing here does I/O or reads
the clock: every command takes `at` (an aware datetime).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from . import events as ev
from .routing import Assignment, Routing
from .severity import Category, Severity, SeverityProposal
from .sla import SlaClock

# -- errors -----------------------------------------------------------------------------


class DomainError(Exception):
    """A command the rules refuse. `field` names the input at fault (for problem+json)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class IllegalTransition(DomainError):
    def __init__(self, case: Case, action: str, detail: str | None = None) -> None:
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
    def __init__(self, case: Case, missing: list[str]) -> None:
        super().__init__(
            f"cannot close case {case.case_number}: closure checklist incomplete, missing "
            + ", ".join(missing),
            field="checklist",
        )
        self.missing = missing


# -- values -----------------------------------------------------------------------------


class CaseStatus(StrEnum):
    RECEIVED = "received"
    VALIDATED = "validated"
    CLASSIFIED = "classified"
    ASSESSED = "assessed"
    INVESTIGATING = "investigating"
    HANDLING = "handling"
    RESOLVED = "resolved"  # awaiting the customer's confirmation and department approval
    CLOSED = "closed"
    LESSON_RECORDED = "lesson_recorded"


class Validity(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    CONSULTATION = "consultation"


class Procedure(StrEnum):
    GENERAL = "general_complaint"  # 一般投诉处理流程
    MAJOR = "major_complaint"  # 重大投诉处理流程
    CRISIS = "crisis_event"  # 危机事件处理流程


PROCEDURE_FOR_SEVERITY = {
    Severity.GENERAL: Procedure.GENERAL,
    Severity.MAJOR: Procedure.MAJOR,
    Severity.CRISIS: Procedure.CRISIS,
}
LEGAL_OPINION_REQUIRED = frozenset({Severity.MAJOR, Severity.CRISIS})
CRISIS_ESCALATION_TARGET = "region_leadership"
SUPERVISOR_ACTIONS = frozenset({"override_severity", "reassign", "force_close"})
SYSTEM = "system"

S = CaseStatus
_OPEN = frozenset(set(CaseStatus) - {S.CLOSED, S.LESSON_RECORDED})
_BEFORE_RESOLUTION = frozenset({S.CLASSIFIED, S.ASSESSED, S.INVESTIGATING, S.HANDLING})

ALLOWED_FROM: dict[str, frozenset[CaseStatus]] = {
    "validate": frozenset({S.RECEIVED}),
    "classify": frozenset({S.VALIDATED}),
    "override_severity": _BEFORE_RESOLUTION | {S.RESOLVED},
    "assess": frozenset({S.CLASSIFIED}),
    "assign": _OPEN,
    "reassign": _OPEN,
    "start_investigation": frozenset({S.ASSESSED}),
    "record_findings": frozenset({S.INVESTIGATING}),
    "record_legal_opinion": _BEFORE_RESOLUTION,
    "start_handling": frozenset({S.INVESTIGATING}),
    "report_progress": _OPEN,
    "resolve": frozenset({S.HANDLING}),
    "confirm_by_customer": frozenset({S.RESOLVED}),
    "approve_by_department": frozenset({S.RESOLVED}),
    "close": frozenset({S.RESOLVED}),
    "force_close": _OPEN,
    "reopen": frozenset({S.RESOLVED, S.CLOSED, S.LESSON_RECORDED}),
    "record_lesson": frozenset({S.CLOSED}),
    "escalate": _OPEN,
    "wait_for_customer": _OPEN,
    "customer_responded": _OPEN,
    "record_on_site_response": _OPEN,
    "record_sla_breach": _OPEN,
    "attach_contact": _OPEN,
    "link_collective_incident": _OPEN,
}


# -- records ----------------------------------------------------------------------------


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:  # pymongo hands back naive UTC
        value = value.replace(tzinfo=UTC)
    return value


def _plain(value: Any) -> Any:
    """Records to storage-friendly dicts: tuples become lists, datetimes stay datetimes."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _record(cls: type, data: Mapping[str, Any] | None) -> Any:
    """Inverse of `_plain` for the small frozen records below."""
    if data is None:
        return None
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, hint = data[f.name], hints[f.name]
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        if datetime in args:
            value = _aware(value)
        elif typing.get_origin(hint) is tuple:
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    actor: str
    action: str
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    customer_visible: bool = False


@dataclass(frozen=True)
class Assessment:
    nature: str
    influence: str
    notes: str | None
    by: str
    at: datetime


@dataclass(frozen=True)
class Findings:
    responsible_department: str
    responsible_post: str | None
    responsible_person: str | None
    root_cause: str
    written_findings: str
    evidence_attachment_ids: tuple[str, ...]
    by: str
    at: datetime


@dataclass(frozen=True)
class LegalOpinion:
    opinion: str
    by: str
    at: datetime


@dataclass(frozen=True)
class Resolution:
    summary: str
    by: str
    at: datetime


@dataclass(frozen=True)
class Approval:
    note: str | None
    by: str
    at: datetime


@dataclass(frozen=True)
class Closure:
    forced: bool
    reason: str | None
    outcome: str  # resolved | forced | invalid | consultation
    checklist: dict[str, bool]
    by: str
    at: datetime


@dataclass(frozen=True)
class Lesson:
    root_cause: str
    responsible_department: str
    improvement: str
    by: str
    at: datetime


@dataclass(frozen=True)
class Escalation:
    reason: str
    to: str
    by: str
    at: datetime


def _require(value: str | None, name: str) -> str:
    if value is None or not str(value).strip():
        raise DomainError(f"{name} must not be empty", field=name)
    return str(value).strip()


def _check_at(at: datetime) -> datetime:
    if at.tzinfo is None or at.tzinfo.utcoffset(at) is None:
        raise DomainError("times must be timezone-aware", field="at")
    return at


# -- the aggregate ----------------------------------------------------------------------


@dataclass
class Case:
    case_id: str
    case_number: str
    region: str
    status: CaseStatus
    opened_at: datetime
    customer_id: str | None = None
    contact_ids: list[str] = field(default_factory=list)
    # what the first contact said (confidential: never copied into events)
    channel: str | None = None
    project: str | None = None
    building: str | None = None
    unit: str | None = None
    kind_hint: str | None = None
    subject: str | None = None
    body: str | None = None
    received_at: datetime | None = None
    # step 1-2: intake and confirmation
    validity: Validity | None = None
    validation_explanation: str | None = None
    severity: Severity = Severity.GENERAL
    severity_confirmed: bool = False  # False while it is only the automatic proposal
    severity_reasons: list[str] = field(default_factory=list)
    category: Category = Category.OTHER
    procedure: Procedure | None = None
    # owner
    department: str | None = None
    assignee: str | None = None
    # steps 3-5
    assessment: Assessment | None = None
    findings: Findings | None = None
    legal_opinion: LegalOpinion | None = None
    handling_plan: str | None = None
    # steps 6-7
    first_reply_at: datetime | None = None
    last_progress_at: datetime | None = None
    progress_count: int = 0
    resolution: Resolution | None = None
    customer_accepted: bool | None = None
    department_approval: Approval | None = None
    closure: Closure | None = None
    # step 9
    lesson: Lesson | None = None
    # around the procedure
    escalations: list[Escalation] = field(default_factory=list)
    crisis_escalated_at: datetime | None = None
    on_site_responded_at: datetime | None = None
    waiting_for_customer: bool = False
    collective_incident_id: str | None = None
    reopen_count: int = 0
    timeline: list[TimelineEntry] = field(default_factory=list)
    clocks: dict[str, SlaClock] = field(default_factory=dict)
    version: int = 0  # number of events emitted over the case's life
    pending_events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    # -- reading ---------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN

    @property
    def department_approved(self) -> bool:
        return self.department_approval is not None

    @property
    def legal_opinion_required(self) -> bool:
        return self.severity in LEGAL_OPINION_REQUIRED

    def allowed_actions(self) -> list[str]:
        """Commands the current status allows (the console shows these buttons)."""
        return [a for a, statuses in ALLOWED_FROM.items() if self.status in statuses]

    def closure_checklist(self) -> dict[str, bool]:
        f, r = self.findings, self.resolution
        records = bool(
            f
            and f.root_cause
            and f.written_findings
            and f.responsible_department
            and r
            and r.summary
            and self.timeline
        )
        return {
            "validated": self.validity is Validity.VALID,
            "classified": self.severity_confirmed and self.procedure is not None,
            "assessed": self.assessment is not None,
            "investigated": f is not None,
            "legal_opinion": self.legal_opinion is not None or not self.legal_opinion_required,
            "handled": r is not None,
            "customer_informed": self.progress_count > 0,
            "customer_accepted": self.customer_accepted is True,
            "department_approved": self.department_approved,
            "records_complete": records,
        }

    def pull_events(self) -> list[tuple[str, dict[str, Any]]]:
        """Hand the pending events to the adapter (and forget them)."""
        out, self.pending_events = self.pending_events, []
        return out

    # -- internals -------------------------------------------------------------------

    def _check(self, action: str) -> None:
        if self.status not in ALLOWED_FROM[action]:
            raise IllegalTransition(self, action)

    def _log(
        self,
        at: datetime,
        actor: str,
        action: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        customer_visible: bool = False,
    ) -> None:
        self.timeline.append(
            TimelineEntry(at, actor, action, reason, dict(details or {}), customer_visible)
        )

    def _emit(self, event_type: str, at: datetime, actor: str, **fields: Any) -> None:
        self.version += 1
        payload: dict[str, Any] = {
            "case_id": self.case_id,
            "case_number": self.case_number,
            "region": self.region,
            "customer_id": self.customer_id,
            "contact_ids": list(self.contact_ids),
            "status": self.status.value,
            "severity": self.severity.value,
            "category": self.category.value,
            "department": self.department,
            "assignee": self.assignee,
            "waiting_for_customer": self.waiting_for_customer,
            "sequence": self.version,
            "occurred_at": at.isoformat(),
            "actor": actor,
        }
        payload.update(fields)
        self.pending_events.append((event_type, payload))

    def _escalate(self, reason: str, to: str, actor: str, at: datetime) -> None:
        self.escalations.append(Escalation(reason, to, actor, at))
        self._log(at, actor, "escalated", reason, {"to": to})
        self._emit(ev.CASE_ESCALATED, at, actor, reason=reason, escalated_to=to)

    def _crisis_escalation(self, actor: str, at: datetime) -> None:
        if self.severity is Severity.CRISIS and self.crisis_escalated_at is None:
            self.crisis_escalated_at = at
            self._escalate("crisis", CRISIS_ESCALATION_TARGET, actor, at)

    def _close(
        self, at: datetime, actor: str, *, forced: bool, reason: str | None, outcome: str
    ) -> None:
        checklist = self.closure_checklist()
        self.status = S.CLOSED
        self.waiting_for_customer = False
        self.closure = Closure(forced, reason, outcome, checklist, actor, at)
        self._log(
            at,
            actor,
            "closed",
            reason,
            {"forced": forced, "outcome": outcome},
            customer_visible=True,
        )
        self._emit(
            ev.CASE_CLOSED,
            at,
            actor,
            forced=forced,
            reason=reason,
            outcome=outcome,
            checklist=checklist,
        )

    def _change_severity(
        self, severity: Severity, reason: str, actor: str, at: datetime, *, override: bool
    ) -> None:
        previous = self.severity
        self.severity = severity
        if self.procedure is not None or self.severity_confirmed:
            self.procedure = PROCEDURE_FOR_SEVERITY[severity]
        self._log(
            at,
            actor,
            "severity_overridden" if override else "severity_raised",
            reason,
            {"from": previous.value, "to": severity.value},
        )
        self._emit(
            ev.CASE_CLASSIFIED,
            at,
            actor,
            procedure=self.procedure.value if self.procedure else None,
            override=override,
            previous_severity=previous.value,
            reason=reason,
            confirmed=self.severity_confirmed,
        )
        self._crisis_escalation(actor, at)

    # -- step 1: intake ---------------------------------------------------------------

    def attach_contact(self, contact_id: str, *, at: datetime, actor: str = SYSTEM) -> bool:
        """A further contact about this open matter. Idempotent: False if already here."""
        _check_at(at)
        self._check("attach_contact")
        if contact_id in self.contact_ids:
            return False
        self.contact_ids.append(contact_id)
        self._log(at, actor, "contact_attached", details={"contact_id": contact_id})
        self._emit(ev.CASE_CONTACT_ATTACHED, at, actor, contact_id=contact_id)
        return True

    def validate(self, outcome: str, explanation: str, *, actor: str, at: datetime) -> None:
        """Screen the complaint: valid goes on; invalid or consultation is explained and closed."""
        _check_at(at)
        self._check("validate")
        validity = Validity(outcome)
        explanation = _require(explanation, "explanation")
        self.validity = validity
        self.validation_explanation = explanation
        if validity is Validity.VALID:
            self.status = S.VALIDATED
        self._log(
            at, actor, "validated", explanation, {"outcome": validity.value}, customer_visible=True
        )
        self._emit(ev.CASE_VALIDATED, at, actor, outcome=validity.value, explanation=explanation)
        if validity is not Validity.VALID:
            self._close(at, actor, forced=False, reason=explanation, outcome=validity.value)

    # -- step 2: confirmation ---------------------------------------------------------

    def classify(
        self,
        severity: str,
        category: str,
        *,
        actor: str,
        at: datetime,
        procedure: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Confirm severity, category and procedure. Going below the automatic proposal
        needs a reason; a crisis escalates at once."""
        _check_at(at)
        self._check("classify")
        sev, cat = Severity(severity), Category(category)
        if sev.rank < self.severity.rank and not (reason and reason.strip()):
            raise DomainError(
                f"classifying below the proposed severity {self.severity.value} needs a reason",
                field="reason",
            )
        previous = self.severity
        self.severity, self.category = sev, cat
        self.procedure = Procedure(procedure) if procedure else PROCEDURE_FOR_SEVERITY[sev]
        self.severity_confirmed = True
        self.status = S.CLASSIFIED
        self._log(
            at,
            actor,
            "classified",
            reason,
            {
                "severity": sev.value,
                "category": cat.value,
                "procedure": self.procedure.value,
                "proposed_severity": previous.value,
            },
        )
        self._emit(
            ev.CASE_CLASSIFIED,
            at,
            actor,
            procedure=self.procedure.value,
            override=False,
            previous_severity=previous.value,
            reason=reason,
            confirmed=True,
        )
        self._crisis_escalation(actor, at)

    def override_severity(self, severity: str, *, reason: str, actor: str, at: datetime) -> None:
        """Supervisor: change a confirmed severity. Reason required; audited."""
        _check_at(at)
        self._check("override_severity")
        if not (reason and reason.strip()):
            raise ReasonRequired("override_severity")
        sev = Severity(severity)
        if sev is self.severity:
            raise DomainError(f"severity is already {sev.value}", field="severity")
        self._change_severity(sev, reason.strip(), actor, at, override=True)

    def link_collective_incident(
        self, incident_id: str, severity: str, *, at: datetime, actor: str = SYSTEM
    ) -> None:
        """Group the case under a collective incident; raises (never lowers) severity."""
        _check_at(at)
        self._check("link_collective_incident")
        sev = Severity(severity)
        if self.collective_incident_id != incident_id:
            self.collective_incident_id = incident_id
            self._log(at, actor, "collective_linked", details={"incident_id": incident_id})
            self._emit(ev.CASE_COLLECTIVE_LINKED, at, actor, incident_id=incident_id)
        if sev.rank > self.severity.rank:
            self._change_severity(
                sev, f"collective incident {incident_id}", actor, at, override=False
            )

    # -- step 3: assessment -----------------------------------------------------------

    def assess(
        self, nature: str, influence: str, *, actor: str, at: datetime, notes: str | None = None
    ) -> None:
        _check_at(at)
        self._check("assess")
        self.assessment = Assessment(
            _require(nature, "nature"), _require(influence, "influence"), notes, actor, at
        )
        self.status = S.ASSESSED
        self._log(at, actor, "assessed", details={"nature": nature, "influence": influence})
        self._emit(ev.CASE_ASSESSED, at, actor, nature=nature, influence=influence, notes=notes)

    # -- owner ------------------------------------------------------------------------

    def assign(
        self,
        department: str,
        assignee: str | None = None,
        *,
        actor: str,
        at: datetime,
        reason: str | None = None,
    ) -> None:
        """Give the case an owner within its department (moving it to another department
        is `reassign`, a supervisor action)."""
        _check_at(at)
        self._check("assign")
        department = _require(department, "department")
        if self.department is not None and department != self.department:
            raise DomainError(
                f"case {self.case_number} belongs to {self.department}; moving it to "
                f"{department} is a reassignment (supervisor)",
                field="department",
            )
        self._set_owner(department, assignee, actor, at, reason, reassigned=False)

    def reassign(
        self,
        department: str,
        assignee: str | None = None,
        *,
        reason: str,
        actor: str,
        at: datetime,
    ) -> None:
        """Supervisor: move the case to another department or person. Reason required."""
        _check_at(at)
        self._check("reassign")
        if not (reason and reason.strip()):
            raise ReasonRequired("reassign")
        self._set_owner(
            _require(department, "department"), assignee, actor, at, reason.strip(), reassigned=True
        )

    def _set_owner(
        self,
        department: str,
        assignee: str | None,
        actor: str,
        at: datetime,
        reason: str | None,
        *,
        reassigned: bool,
        source: str | None = None,
    ) -> None:
        previous = {"department": self.department, "assignee": self.assignee}
        self.department, self.assignee = department, assignee
        self._log(
            at,
            actor,
            "reassigned" if reassigned else "assigned",
            reason,
            {"department": department, "assignee": assignee, "previous": previous},
        )
        self._emit(
            ev.CASE_ASSIGNED,
            at,
            actor,
            reassigned=reassigned,
            reason=reason,
            previous_department=previous["department"],
            previous_assignee=previous["assignee"],
            source=source,
        )

    # -- step 4: investigation --------------------------------------------------------

    def start_investigation(self, *, actor: str, at: datetime) -> None:
        _check_at(at)
        self._check("start_investigation")
        if self.department is None:
            raise DomainError("assign a department before investigating", field="department")
        self.status = S.INVESTIGATING
        self._log(at, actor, "investigation_started")
        self._emit(ev.CASE_INVESTIGATION_STARTED, at, actor)

    def record_findings(
        self,
        *,
        responsible_department: str,
        root_cause: str,
        written_findings: str,
        responsible_post: str | None = None,
        responsible_person: str | None = None,
        evidence_attachment_ids: tuple[str, ...] | list[str] = (),
        actor: str,
        at: datetime,
    ) -> None:
        """The written investigation report: who caused it, why, with evidence attached.
        Recording again replaces the earlier findings (both stay in the timeline)."""
        _check_at(at)
        self._check("record_findings")
        self.findings = Findings(
            _require(responsible_department, "responsible_department"),
            responsible_post,
            responsible_person,
            _require(root_cause, "root_cause"),
            _require(written_findings, "written_findings"),
            tuple(evidence_attachment_ids),
            actor,
            at,
        )
        details = {
            "responsible_department": responsible_department,
            "responsible_post": responsible_post,
            "responsible_person": responsible_person,
            "root_cause": root_cause,
            "evidence_attachment_ids": list(evidence_attachment_ids),
        }
        self._log(at, actor, "findings_recorded", details=details)
        self._emit(ev.CASE_FINDINGS_RECORDED, at, actor, **details)

    def record_legal_opinion(self, opinion: str, *, actor: str, at: datetime) -> None:
        """The legal department's opinion (required for major and crisis cases)."""
        _check_at(at)
        self._check("record_legal_opinion")
        self.legal_opinion = LegalOpinion(_require(opinion, "opinion"), actor, at)
        self._log(at, actor, "legal_opinion_recorded")
        self._emit(ev.CASE_LEGAL_OPINION_RECORDED, at, actor)

    # -- step 5: handling -------------------------------------------------------------

    def start_handling(self, *, actor: str, at: datetime, plan: str | None = None) -> None:
        _check_at(at)
        self._check("start_handling")
        if self.findings is None:
            raise IllegalTransition(self, "start_handling", "record the findings first")
        self.handling_plan = plan
        self.status = S.HANDLING
        self._log(at, actor, "handling_started", details={"plan": plan})
        self._emit(ev.CASE_HANDLING_STARTED, at, actor, plan=plan)

    # -- step 6: reply ----------------------------------------------------------------

    def report_progress(self, message_to_customer: str, *, actor: str, at: datetime) -> None:
        """Tell the customer where things stand. The only thing that counts as a reply."""
        _check_at(at)
        self._check("report_progress")
        message = _require(message_to_customer, "message_to_customer")
        self.first_reply_at = self.first_reply_at or at
        self.last_progress_at = at
        self.progress_count += 1
        self._log(at, actor, "progress_reported", message, customer_visible=True)
        self._emit(
            ev.CASE_PROGRESS_REPORTED,
            at,
            actor,
            message_to_customer=message,
            first_reply=self.progress_count == 1,
        )

    def resolve(self, summary: str, *, actor: str, at: datetime) -> None:
        _check_at(at)
        self._check("resolve")
        summary = _require(summary, "summary")
        if self.legal_opinion_required and self.legal_opinion is None:
            raise IllegalTransition(
                self,
                "resolve",
                f"a {self.severity.value} case needs the legal department's opinion first",
            )
        self.resolution = Resolution(summary, actor, at)
        self.customer_accepted = None
        self.department_approval = None
        self.status = S.RESOLVED
        self._log(at, actor, "resolved", summary, customer_visible=True)
        self._emit(ev.CASE_RESOLVED, at, actor, summary=summary)

    def confirm_by_customer(
        self, accepted: bool, *, actor: str, at: datetime, comment: str | None = None
    ) -> None:
        """The customer's answer to the result. Not accepted reopens the case to handling."""
        _check_at(at)
        self._check("confirm_by_customer")
        self.customer_accepted = bool(accepted)
        self._log(
            at,
            actor,
            "customer_confirmed",
            comment,
            {"accepted": bool(accepted)},
            customer_visible=True,
        )
        self._emit(ev.CASE_CUSTOMER_CONFIRMED, at, actor, accepted=bool(accepted), comment=comment)
        if not accepted:
            self._reopen(comment or "the customer did not accept the result", actor, at)

    # -- step 7: tracking and closure --------------------------------------------------

    def approve_by_department(self, *, actor: str, at: datetime, note: str | None = None) -> None:
        _check_at(at)
        self._check("approve_by_department")
        self.department_approval = Approval(note, actor, at)
        self._log(at, actor, "department_approved", note)
        self._emit(ev.CASE_DEPARTMENT_APPROVED, at, actor, note=note)

    def close(self, *, actor: str, at: datetime) -> None:
        """Close and archive; refused unless every checklist item holds."""
        _check_at(at)
        self._check("close")
        missing = [k for k, ok in self.closure_checklist().items() if not ok]
        if missing:
            raise ChecklistIncomplete(self, missing)
        self._close(at, actor, forced=False, reason=None, outcome="resolved")

    def force_close(self, reason: str, *, actor: str, at: datetime) -> None:
        """Supervisor: close without the customer's confirmation (or anything else)."""
        _check_at(at)
        self._check("force_close")
        if not (reason and reason.strip()):
            raise ReasonRequired("force_close")
        self._close(at, actor, forced=True, reason=reason.strip(), outcome="forced")

    def reopen(self, reason: str, *, actor: str, at: datetime) -> None:
        """Back to work: e.g. a dissatisfied return visit. Reason required."""
        _check_at(at)
        self._check("reopen")
        if not (reason and reason.strip()):
            raise ReasonRequired("reopen")
        self._reopen(reason.strip(), actor, at)

    def _reopen(self, reason: str, actor: str, at: datetime) -> None:
        previous = self.status
        if self.validity is Validity.VALID:
            self.status = S.HANDLING
        else:  # closed at intake as invalid / consultation: screen it again
            self.status = S.RECEIVED
            self.validity = None
        self.resolution = None
        self.department_approval = None
        self.closure = None
        if previous is not S.RESOLVED:
            self.customer_accepted = None
        self.reopen_count += 1
        self._log(
            at,
            actor,
            "reopened",
            reason,
            {"previous_status": previous.value},
            customer_visible=True,
        )
        self._emit(ev.CASE_REOPENED, at, actor, reason=reason, previous_status=previous.value)

    # -- step 9: feedback ---------------------------------------------------------------

    def record_lesson(
        self,
        *,
        root_cause: str,
        responsible_department: str,
        improvement: str,
        actor: str,
        at: datetime,
    ) -> None:
        """Turn the case into an improvement (经验教训成果转化)."""
        _check_at(at)
        self._check("record_lesson")
        if self.validity is not Validity.VALID:
            raise IllegalTransition(self, "record_lesson", "only a valid complaint yields a lesson")
        self.lesson = Lesson(
            _require(root_cause, "root_cause"),
            _require(responsible_department, "responsible_department"),
            _require(improvement, "improvement"),
            actor,
            at,
        )
        self.status = S.LESSON_RECORDED
        self._log(
            at,
            actor,
            "lesson_recorded",
            details={
                "root_cause": root_cause,
                "responsible_department": responsible_department,
                "improvement": improvement,
            },
        )
        self._emit(
            ev.CASE_LESSON_RECORDED,
            at,
            actor,
            root_cause=root_cause,
            responsible_department=responsible_department,
            improvement=improvement,
        )

    # -- around the procedure ------------------------------------------------------------

    def escalate(self, reason: str, *, actor: str, at: datetime, to: str = "supervisor") -> None:
        _check_at(at)
        self._check("escalate")
        if not (reason and reason.strip()):
            raise ReasonRequired("escalate")
        self._escalate(reason.strip(), _require(to, "to"), actor, at)

    def wait_for_customer(self, reason: str, *, actor: str, at: datetime) -> None:
        """The case needs something from the customer: SLA clocks pause."""
        _check_at(at)
        self._check("wait_for_customer")
        if self.waiting_for_customer:
            raise DomainError(
                f"case {self.case_number} already waits for the customer", field="status"
            )
        self.waiting_for_customer = True
        self._log(at, actor, "waiting_for_customer", _require(reason, "reason"))
        self._emit(ev.CASE_WAITING_FOR_CUSTOMER, at, actor, reason=reason)

    def customer_responded(self, *, actor: str, at: datetime, message: str | None = None) -> None:
        """The customer came back: SLA clocks resume."""
        _check_at(at)
        self._check("customer_responded")
        if not self.waiting_for_customer:
            raise DomainError(
                f"case {self.case_number} is not waiting for the customer", field="status"
            )
        self.waiting_for_customer = False
        self._log(at, actor, "customer_responded", message)
        self._emit(ev.CASE_CUSTOMER_RESPONDED, at, actor)

    def record_on_site_response(
        self, *, actor: str, at: datetime, details: str | None = None
    ) -> None:
        """Staff reached the site of a crisis: stops the on-site clock."""
        _check_at(at)
        self._check("record_on_site_response")
        if self.crisis_escalated_at is None:
            raise IllegalTransition(
                self, "record_on_site_response", "only a crisis case has an on-site response"
            )
        if self.on_site_responded_at is not None:
            raise DomainError("on-site response already recorded", field="status")
        self.on_site_responded_at = at
        self._log(at, actor, "on_site_responded", details)
        self._emit(ev.CASE_ON_SITE_RESPONDED, at, actor, details=details)

    def record_sla_breach(
        self, clock: str, due_at: datetime, *, at: datetime, actor: str = SYSTEM
    ) -> None:
        """A clock passed its due time: emit the breach and escalate to the supervisor."""
        _check_at(at)
        self._check("record_sla_breach")
        self._log(at, actor, "sla_breached", details={"clock": clock, "due_at": due_at.isoformat()})
        self._emit(ev.CASE_SLA_BREACHED, at, actor, clock=clock, due_at=due_at.isoformat())
        self._escalate(f"sla_breached:{clock}", "supervisor", actor, at)

    # -- storage ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the case document (datetimes kept; no pending events: they go
        to the outbox field the adapter writes in the same document)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "pending_events":
                continue
            value = getattr(self, f.name)
            if f.name == "clocks":
                out[f.name] = {k: c.to_dict() for k, c in value.items()}
            elif isinstance(value, StrEnum):
                out[f.name] = value.value
            else:
                out[f.name] = _plain(value)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Case:
        def enum(kind: type, key: str) -> Any:
            return kind(d[key]) if d.get(key) is not None else None

        opened_at = _aware(d["opened_at"])
        assert opened_at is not None
        return cls(
            case_id=d["case_id"],
            case_number=d["case_number"],
            region=d["region"],
            status=CaseStatus(d["status"]),
            opened_at=opened_at,
            customer_id=d.get("customer_id"),
            contact_ids=list(d.get("contact_ids", [])),
            channel=d.get("channel"),
            project=d.get("project"),
            building=d.get("building"),
            unit=d.get("unit"),
            kind_hint=d.get("kind_hint"),
            subject=d.get("subject"),
            body=d.get("body"),
            received_at=_aware(d.get("received_at")),
            validity=enum(Validity, "validity"),
            validation_explanation=d.get("validation_explanation"),
            severity=Severity(d.get("severity") or "general"),
            severity_confirmed=bool(d.get("severity_confirmed")),
            severity_reasons=list(d.get("severity_reasons", [])),
            category=Category(d.get("category") or "other"),
            procedure=enum(Procedure, "procedure"),
            department=d.get("department"),
            assignee=d.get("assignee"),
            assessment=_record(Assessment, d.get("assessment")),
            findings=_record(Findings, d.get("findings")),
            legal_opinion=_record(LegalOpinion, d.get("legal_opinion")),
            handling_plan=d.get("handling_plan"),
            first_reply_at=_aware(d.get("first_reply_at")),
            last_progress_at=_aware(d.get("last_progress_at")),
            progress_count=int(d.get("progress_count", 0)),
            resolution=_record(Resolution, d.get("resolution")),
            customer_accepted=d.get("customer_accepted"),
            department_approval=_record(Approval, d.get("department_approval")),
            closure=_record(Closure, d.get("closure")),
            lesson=_record(Lesson, d.get("lesson")),
            escalations=[_record(Escalation, e) for e in d.get("escalations", [])],
            crisis_escalated_at=_aware(d.get("crisis_escalated_at")),
            on_site_responded_at=_aware(d.get("on_site_responded_at")),
            waiting_for_customer=bool(d.get("waiting_for_customer")),
            collective_incident_id=d.get("collective_incident_id"),
            reopen_count=int(d.get("reopen_count", 0)),
            timeline=[_record(TimelineEntry, t) for t in d.get("timeline", [])],
            clocks={k: SlaClock.from_dict(c) for k, c in (d.get("clocks") or {}).items()},
            version=int(d.get("version", 0)),
        )


# -- opening a case -----------------------------------------------------------------------

# Case numbers (SZ-2026-000123) come from crm_contracts.regions.case_number: the region
# prefixes are part of the public contract, kept in one place.


def open_case(
    case_id: str,
    case_number: str,
    contact: Mapping[str, Any],
    severity_proposal: SeverityProposal,
    routing: Routing | Assignment,
    at: datetime,
) -> Case:
    """A new case from a contact (facts as in `crm.intake.contact.received.v1`).

    Status `received`; severity and category are the automatic proposal until `classify`
    confirms them; the owner comes from routing. Emits opened + assigned, and escalated
    (reason "crisis") at once when the proposal is a crisis: a crisis does not wait for
    an agent to screen it.
    """
    _check_at(at)
    region = _require(contact.get("region"), "region")
    contact_id = _require(contact.get("contact_id"), "contact_id")
    assignment = (
        routing.route(region, severity_proposal.category)
        if isinstance(routing, Routing)
        else routing
    )
    case = Case(
        case_id=case_id,
        case_number=case_number,
        region=region,
        status=S.RECEIVED,
        opened_at=at,
        customer_id=contact.get("customer_id"),
        contact_ids=[contact_id],
        channel=contact.get("channel"),
        project=contact.get("project"),
        building=contact.get("building"),
        unit=contact.get("unit"),
        kind_hint=contact.get("kind_hint"),
        subject=contact.get("subject"),
        body=contact.get("body"),
        received_at=_aware(contact.get("received_at")) or at,
        severity=severity_proposal.severity,
        severity_reasons=list(severity_proposal.reasons),
        category=severity_proposal.category,
    )
    received = case.received_at.isoformat() if case.received_at else None
    case._log(
        at,
        SYSTEM,
        "opened",
        details={"contact_id": contact_id, "channel": case.channel},
        customer_visible=True,
    )
    case._emit(
        ev.CASE_OPENED,
        at,
        SYSTEM,
        contact_id=contact_id,
        channel=case.channel,
        project=case.project,
        building=case.building,
        unit=case.unit,
        kind_hint=case.kind_hint,
        received_at=received,
        severity_proposal=severity_proposal.to_dict(),
    )
    case._set_owner(
        assignment.department,
        assignment.assignee,
        SYSTEM,
        at,
        None,
        reassigned=False,
        source=assignment.source,
    )
    case._crisis_escalation(SYSTEM, at)
    return case
