"""The `Case` aggregate's state and the internals every command shares: the timeline, the
events (built as the contract's models, so a payload that does not match fails here, in
the command, not in a consumer), escalation, closure, ownership and severity changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crm_contracts.events import cases as contract

from . import events as ev
from .errors import DomainError, IllegalTransition, ReasonRequired
from .records import (
    Approval,
    Assessment,
    Closure,
    Escalation,
    Findings,
    LegalOpinion,
    Lesson,
    Resolution,
    TimelineEntry,
)
from .records import check_at as _check_at
from .records import require as _require
from .severity import Category, Severity
from .sla import SlaClock
from .statuses import (
    ALLOWED_FROM,
    CRISIS_ESCALATION_TARGET,
    LEGAL_OPINION_REQUIRED,
    OPEN,
    PROCEDURE_FOR_SEVERITY,
    STAFF_COMMANDS,
    CaseStatus,
    Procedure,
    Validity,
)

S = CaseStatus
Event = tuple[str, contract.CaseEventBase]


@dataclass
class CaseState:
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
    kind_confidence: float | None = None  # intake's; 0 means it could not tell the kind
    pending_events: list[Event] = field(default_factory=list)

    # -- reading ---------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def department_approved(self) -> bool:
        return self.department_approval is not None

    @property
    def legal_opinion_required(self) -> bool:
        return self.severity in LEGAL_OPINION_REQUIRED

    def allowed_actions(self) -> list[str]:
        """What staff may do now, by route name (`POST /v1/cases/{id}/<name>`; the console
        shows these buttons): what the status allows and the case's own state permits."""
        refused = set()
        if self.waiting_for_customer:
            refused.add("wait_for_customer")
        else:
            refused.add("customer_responded")
        if self.crisis_escalated_at is None or self.on_site_responded_at is not None:
            refused.add("record_on_site_response")
        return [
            name
            for name, command in STAFF_COMMANDS.items()
            if self.status in ALLOWED_FROM[command] and command not in refused
        ]

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

    def pull_events(self) -> list[Event]:
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

    def _emit(
        self, model: type[contract.CaseEventBase], at: datetime, actor: str, **fields: Any
    ) -> None:
        """Build the step's event as its contract model. A field the model does not know
        would be dropped silently on the wire (payloads ignore extras): refuse it here."""
        unknown = set(fields) - set(model.model_fields)
        if unknown:
            raise TypeError(f"{model.__name__} has no field(s) {sorted(unknown)}")
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
            "occurred_at": at,
            "actor": actor,
        }
        payload.update(fields)
        self.pending_events.append((ev.type_of(model), model(**payload)))

    def _escalate(self, reason: str, to: str, actor: str, at: datetime) -> None:
        self.escalations.append(Escalation(reason, to, actor, at))
        self._log(at, actor, "escalated", reason, {"to": to})
        self._emit(contract.CaseEscalated, at, actor, reason=reason, escalated_to=to)

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
            contract.CaseClosed,
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
            contract.CaseClassified,
            at,
            actor,
            procedure=self.procedure.value if self.procedure else None,
            override=override,
            previous_severity=previous.value,
            reason=reason,
            confirmed=self.severity_confirmed,
        )
        self._crisis_escalation(actor, at)

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
            contract.CaseAssigned,
            at,
            actor,
            reassigned=reassigned,
            reason=reason,
            previous_department=previous["department"],
            previous_assignee=previous["assignee"],
            source=source,
        )
