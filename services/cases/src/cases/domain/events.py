"""The CloudEvents `type` strings the cases domain emits, in one place.

Why: the adapter writes a case's state and its `pending_events` in one document (the
outbox) and the relay publishes them on `crm.cases.cases.v1`; consumers select on these
strings, so `grep -r CASE_OPENED` finds every producer and consumer.

The first block is the public contract (docs/architecture.md). The second block adds
one event per remaining procedure step so that "every step lands in the timeline and as a
crm.cases.* event" holds; they are additions to the v1 contract (backward compatible:
consumers ignore types they do not know).

Every case event payload carries: case_id, case_number, region, customer_id, contact_ids,
status, severity, category, department, assignee, sequence (1, 2, ... per case: with the
case_id it makes a deterministic event id), occurred_at (ISO 8601 with offset) and actor,
plus the fields named next to each type below.
"""

from __future__ import annotations

from crm_contracts.events import cases as contract
from crm_contracts.events.common import EventData

_P = "crm.cases.case."

# -- public contract (docs/architecture.md) -------------------------------------------
CASE_OPENED = _P + "opened.v1"  # contact fields (channel, project, ...), severity_proposal
CASE_VALIDATED = _P + "validated.v1"  # outcome valid|invalid|consultation, explanation
CASE_CLASSIFIED = _P + "classified.v1"  # severity, category, procedure, override, reason
CASE_ASSIGNED = _P + "assigned.v1"  # department, assignee, reassigned, reason
CASE_ESCALATED = _P + "escalated.v1"  # reason, escalated_to
CASE_PROGRESS_REPORTED = _P + "progress-reported.v1"  # message_to_customer
CASE_RESOLVED = _P + "resolved.v1"  # summary
CASE_CUSTOMER_CONFIRMED = _P + "customer-confirmed.v1"  # accepted, comment
CASE_CLOSED = _P + "closed.v1"  # forced, reason, outcome, checklist
CASE_REOPENED = _P + "reopened.v1"  # reason, previous_status
CASE_SLA_BREACHED = _P + "sla-breached.v1"  # clock, due_at
CASE_LESSON_RECORDED = _P + "lesson-recorded.v1"  # root_cause, responsible_department, improvement
COLLECTIVE_INCIDENT_DETECTED = "crm.cases.collective-incident.detected.v1"

# -- additions: the remaining steps of the procedure ------------------------------------
CASE_CONTACT_ATTACHED = _P + "contact-attached.v1"  # contact_id
CASE_ASSESSED = _P + "assessed.v1"  # nature, influence, notes
CASE_INVESTIGATION_STARTED = _P + "investigation-started.v1"
CASE_FINDINGS_RECORDED = _P + "findings-recorded.v1"  # responsible_*, root_cause, evidence ids
CASE_LEGAL_OPINION_RECORDED = _P + "legal-opinion-recorded.v1"  # (opinion text stays internal)
CASE_HANDLING_STARTED = _P + "handling-started.v1"  # plan
CASE_DEPARTMENT_APPROVED = _P + "department-approved.v1"  # note
CASE_WAITING_FOR_CUSTOMER = _P + "waiting-for-customer.v1"  # reason (SLA clocks pause)
CASE_CUSTOMER_RESPONDED = _P + "customer-responded.v1"  # (SLA clocks resume)
CASE_ON_SITE_RESPONDED = _P + "on-site-responded.v1"  # details (stops the on-site clock)
CASE_COLLECTIVE_LINKED = _P + "collective-linked.v1"  # incident_id

CONTRACT_CASE_EVENT_TYPES = (
    CASE_OPENED,
    CASE_VALIDATED,
    CASE_CLASSIFIED,
    CASE_ASSIGNED,
    CASE_ESCALATED,
    CASE_PROGRESS_REPORTED,
    CASE_RESOLVED,
    CASE_CUSTOMER_CONFIRMED,
    CASE_CLOSED,
    CASE_REOPENED,
    CASE_SLA_BREACHED,
    CASE_LESSON_RECORDED,
)
ADDED_CASE_EVENT_TYPES = (
    CASE_CONTACT_ATTACHED,
    CASE_ASSESSED,
    CASE_INVESTIGATION_STARTED,
    CASE_FINDINGS_RECORDED,
    CASE_LEGAL_OPINION_RECORDED,
    CASE_HANDLING_STARTED,
    CASE_DEPARTMENT_APPROVED,
    CASE_WAITING_FOR_CUSTOMER,
    CASE_CUSTOMER_RESPONDED,
    CASE_ON_SITE_RESPONDED,
    CASE_COLLECTIVE_LINKED,
)
ALL_CASE_EVENT_TYPES = (*CONTRACT_CASE_EVENT_TYPES, *ADDED_CASE_EVENT_TYPES)

# The contract model each type carries (the registry in crm_contracts says the same; a
# test pins it): commands build these, so `grep -r CaseOpened` finds the producer.
MODELS: dict[str, type[EventData]] = {
    CASE_OPENED: contract.CaseOpened,
    CASE_VALIDATED: contract.CaseValidated,
    CASE_CLASSIFIED: contract.CaseClassified,
    CASE_ASSIGNED: contract.CaseAssigned,
    CASE_ESCALATED: contract.CaseEscalated,
    CASE_PROGRESS_REPORTED: contract.CaseProgressReported,
    CASE_RESOLVED: contract.CaseResolved,
    CASE_CUSTOMER_CONFIRMED: contract.CaseCustomerConfirmed,
    CASE_CLOSED: contract.CaseClosed,
    CASE_REOPENED: contract.CaseReopened,
    CASE_SLA_BREACHED: contract.CaseSlaBreached,
    CASE_LESSON_RECORDED: contract.CaseLessonRecorded,
    CASE_CONTACT_ATTACHED: contract.CaseContactAttached,
    CASE_ASSESSED: contract.CaseAssessed,
    CASE_INVESTIGATION_STARTED: contract.CaseInvestigationStarted,
    CASE_FINDINGS_RECORDED: contract.CaseFindingsRecorded,
    CASE_LEGAL_OPINION_RECORDED: contract.CaseLegalOpinionRecorded,
    CASE_HANDLING_STARTED: contract.CaseHandlingStarted,
    CASE_DEPARTMENT_APPROVED: contract.CaseDepartmentApproved,
    CASE_WAITING_FOR_CUSTOMER: contract.CaseWaitingForCustomer,
    CASE_CUSTOMER_RESPONDED: contract.CaseCustomerResponded,
    CASE_ON_SITE_RESPONDED: contract.CaseOnSiteResponded,
    CASE_COLLECTIVE_LINKED: contract.CaseCollectiveLinked,
    COLLECTIVE_INCIDENT_DETECTED: contract.CollectiveIncidentDetected,
}
_TYPES = {model: type_ for type_, model in MODELS.items()}


def type_of(model: type[EventData]) -> str:
    """The CloudEvents type of a payload model."""
    return _TYPES[model]
