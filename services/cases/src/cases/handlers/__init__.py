"""Cases' use cases: what happens when a contact arrives, when staff act on a case or on
a contact that opened none, when an SLA clock runs out and when a return visit comes back.

Dependencies arrive as `cases.deps.CasesDeps`; the rules live in `cases.domain` and know
nothing of Kafka, HTTP or MongoDB.
"""

from cases.handlers.cases import (
    SLA_TIMER,
    SOURCE,
    CaseNotFound,
    act_on_case,
    case_id_for,
    on_sla_timer,
    on_survey_completed,
    open_case_from_contact,
    outgoing,
)
from cases.handlers.contacts import (
    ContactNotFound,
    answer_contact,
    list_contacts,
    on_contact_received,
    open_case_for_contact,
)

__all__ = [
    "SLA_TIMER", "SOURCE", "CaseNotFound", "ContactNotFound", "act_on_case", "answer_contact",
    "case_id_for", "list_contacts", "on_contact_received", "on_sla_timer", "on_survey_completed",
    "open_case_for_contact", "open_case_from_contact", "outgoing",
]
