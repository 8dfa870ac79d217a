"""The nine-step complaint procedure (投诉处理九步) as a state machine on the `Case` aggregate.

Why: the centre is judged on following the procedure — every valid complaint confirmed,
judged, assessed, investigated, handled, replied to, closed with the customer's acceptance
and turned into a lesson (docs/domain.md, section 2). Encoding the steps as allowed
transitions makes a skipped step an error instead of a habit, and records who did what,
when and why.

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

Each command appends timeline entries and `(event_type, contract model)` pairs to
`pending_events`; `settle` then hands them over and moves the SLA clocks by them, and the
adapter writes the case and its events in one document. Nothing here does I/O or reads
the clock: every command takes `at` (an aware datetime). The module layout: `statuses`
(vocabulary, allowed transitions), `errors`, `records`, `case_state` (the state, the
shared internals and the owner), `case_closing` (steps 6 to 9), and here steps 1 to 5 and `open_case`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from crm_contracts.events import cases as contract

from .calendar import BusinessCalendar
from .case_closing import CaseClosing
from .case_state import Event, S
from .errors import ChecklistIncomplete, DomainError, IllegalTransition, ReasonRequired
from .records import Assessment, Findings, LegalOpinion, aware
from .records import check_at as _check_at
from .records import require as _require
from .routing import Assignment, Routing
from .severity import Category, Severity, SeverityProposal
from .sla import SlaPolicies, apply_events
from .statuses import (
    ALLOWED_FROM,
    PROCEDURE_FOR_SEVERITY,
    STAFF_COMMANDS,
    SUPERVISOR_ACTIONS,
    SYSTEM,
    CaseStatus,
    Procedure,
    Validity,
)

__all__ = [
    "ALLOWED_FROM", "STAFF_COMMANDS", "SUPERVISOR_ACTIONS", "SYSTEM", "Case", "CaseStatus",
    "ChecklistIncomplete", "DomainError", "Event", "IllegalTransition", "Procedure",
    "ReasonRequired", "Validity", "open_case", "settle",
]


class Case(CaseClosing):
    """A complaint on its way through the procedure (steps 1 to 5 here; the state, and
    steps 6 to 9, in `case_state` and `case_closing`)."""

    # -- step 1: intake ---------------------------------------------------------------

    def attach_contact(self, contact_id: str, *, at: datetime, actor: str = SYSTEM) -> bool:
        """A further contact about this open matter. Idempotent: False if already here."""
        _check_at(at)
        self._check("attach_contact")
        if contact_id in self.contact_ids:
            return False
        self.contact_ids.append(contact_id)
        self._log(at, actor, "contact_attached", details={"contact_id": contact_id})
        self._emit(contract.CaseContactAttached, at, actor, contact_id=contact_id)
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
        self._emit(contract.CaseValidated, at, actor, outcome=validity.value, explanation=explanation)
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
            contract.CaseClassified,
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
            self._emit(contract.CaseCollectiveLinked, at, actor, incident_id=incident_id)
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
        self._emit(contract.CaseAssessed, at, actor, nature=nature, influence=influence, notes=notes)

    # -- step 4: investigation --------------------------------------------------------

    def start_investigation(self, *, actor: str, at: datetime) -> None:
        _check_at(at)
        self._check("start_investigation")
        if self.department is None:
            raise DomainError("assign a department before investigating", field="department")
        self.status = S.INVESTIGATING
        self._log(at, actor, "investigation_started")
        self._emit(contract.CaseInvestigationStarted, at, actor)

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
        self._emit(contract.CaseFindingsRecorded, at, actor, **details)

    def record_legal_opinion(self, opinion: str, *, actor: str, at: datetime) -> None:
        """The legal department's opinion (required for major and crisis cases)."""
        _check_at(at)
        self._check("record_legal_opinion")
        self.legal_opinion = LegalOpinion(_require(opinion, "opinion"), actor, at)
        self._log(at, actor, "legal_opinion_recorded")
        self._emit(contract.CaseLegalOpinionRecorded, at, actor)

    # -- step 5: handling -------------------------------------------------------------

    def start_handling(self, *, actor: str, at: datetime, plan: str | None = None) -> None:
        _check_at(at)
        self._check("start_handling")
        if self.findings is None:
            raise IllegalTransition(self, "start_handling", "record the findings first")
        self.handling_plan = plan
        self.status = S.HANDLING
        self._log(at, actor, "handling_started", details={"plan": plan})
        self._emit(contract.CaseHandlingStarted, at, actor, plan=plan)

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
    channel = _require(contact.get("channel"), "channel")
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
        channel=channel,
        project=contact.get("project"),
        building=contact.get("building"),
        unit=contact.get("unit"),
        kind_hint=contact.get("kind_hint"),
        kind_confidence=contact.get("kind_confidence"),
        subject=contact.get("subject"),
        body=contact.get("body"),
        received_at=aware(contact.get("received_at")) or at,
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
        contract.CaseOpened,
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


def settle(case: Case, policies: SlaPolicies, calendar: BusinessCalendar) -> list[Event]:
    """After every command: take its events and move the SLA clocks by them, so the
    clocks always follow what happened (the caller stores both in one write)."""
    events = case.pull_events()
    if events:
        case.clocks = apply_events(
            case.clocks, [(t, e.model_dump(mode="json")) for t, e in events], policies, calendar
        )
    return events
