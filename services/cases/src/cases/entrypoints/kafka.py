"""Every Kafka subscription of cases: what happens when each event arrives."""

from __future__ import annotations

from crm_contracts import topics
from crm_contracts.envelope import CloudEvent
from crm_contracts.events.intake import ContactReceived
from crm_contracts.events.surveys import SurveyCompleted
from crm_runtime.kafka import Subscription

from cases import handlers
from cases.deps import CasesDeps


def subscriptions(deps: CasesDeps, *, contact_workers: int = 1) -> list[Subscription]:
    async def on_contact_received(event: CloudEvent, data: ContactReceived) -> None:
        await handlers.on_contact_received(deps, data, event.id)

    async def on_survey_completed(event: CloudEvent, data: SurveyCompleted) -> None:
        await handlers.on_survey_completed(deps, data, event.region)

    return [
        Subscription(topics.INTAKE_CONTACTS, workers=contact_workers)
        .on("crm.intake.contact.received.v1", on_contact_received),
        Subscription(topics.SURVEYS_SURVEYS).on("crm.surveys.survey.completed.v1", on_survey_completed),
    ]


# Seen on the topics above, deliberately not acted on by cases.
IGNORED_TYPES = (
    "crm.surveys.survey.scheduled.v1",
    "crm.surveys.survey.excluded.v1",
    "crm.surveys.survey.expired.v1",
)
