"""The procedure's vocabulary: statuses, validity, procedures, and which command each
status allows. Values equal the contract's enums (crm_contracts.events.cases; a test pins
them), so what the domain stores is what the events say."""

from __future__ import annotations

from enum import StrEnum

from .severity import Severity


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
OPEN = frozenset(set(CaseStatus) - {S.CLOSED, S.LESSON_RECORDED})
BEFORE_RESOLUTION = frozenset({S.CLASSIFIED, S.ASSESSED, S.INVESTIGATING, S.HANDLING})

ALLOWED_FROM: dict[str, frozenset[CaseStatus]] = {
    "validate": frozenset({S.RECEIVED}),
    "classify": frozenset({S.VALIDATED}),
    "override_severity": BEFORE_RESOLUTION | {S.RESOLVED},
    "assess": frozenset({S.CLASSIFIED}),
    "assign": OPEN,
    "reassign": OPEN,
    "start_investigation": frozenset({S.ASSESSED}),
    "record_findings": frozenset({S.INVESTIGATING}),
    "record_legal_opinion": BEFORE_RESOLUTION,
    "start_handling": frozenset({S.INVESTIGATING}),
    "report_progress": OPEN,
    "resolve": frozenset({S.HANDLING}),
    "confirm_by_customer": frozenset({S.RESOLVED}),
    "approve_by_department": frozenset({S.RESOLVED}),
    "close": frozenset({S.RESOLVED}),
    "force_close": OPEN,
    "reopen": frozenset({S.RESOLVED, S.CLOSED, S.LESSON_RECORDED}),
    "record_lesson": frozenset({S.CLOSED}),
    "escalate": OPEN,
    "wait_for_customer": OPEN,
    "customer_responded": OPEN,
    "record_on_site_response": OPEN,
    "record_sla_breach": OPEN,
    "attach_contact": OPEN,
    "link_collective_incident": OPEN,
}


# The commands staff run through the API, by the name of the route that runs each one
# (`POST /v1/cases/{id}/<name>`); `allowed_actions` answers in these names. The other
# commands above (attach_contact, record_sla_breach, ...) are the system's.
STAFF_COMMANDS: dict[str, str] = {
    "validate": "validate",
    "classify": "classify",
    "override-severity": "override_severity",
    "assess": "assess",
    "assign": "assign",
    "reassign": "reassign",
    "start-investigation": "start_investigation",
    "findings": "record_findings",
    "legal-opinion": "record_legal_opinion",
    "start-handling": "start_handling",
    "progress": "report_progress",
    "resolve": "resolve",
    "customer-confirmation": "confirm_by_customer",
    "department-approval": "approve_by_department",
    "close": "close",
    "force-close": "force_close",
    "reopen": "reopen",
    "lesson": "record_lesson",
    "escalate": "escalate",
    "wait-for-customer": "wait_for_customer",
    "customer-responded": "customer_responded",
    "on-site-response": "record_on_site_response",
}
