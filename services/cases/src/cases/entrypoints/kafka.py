"""Every Kafka subscription of cases: what happens when each event arrives.

Contacts from intake come in batches (`BatchSubscription`): a backlog of thousands is
opened with a few store commands per batch (handlers/contacts_batch.py). A batch that
keeps failing is applied event by event by the runtime, so a poison contact is
dead-lettered alone. The other topics are handled one event at a time.
"""

from __future__ import annotations

from typing import Any

from crm_contracts import topics
from crm_contracts.envelope import CloudEvent
from crm_contracts.events.surveys import SurveyCompleted
from crm_runtime.kafka import BatchSubscription, Subscription

from cases import handlers
from cases.adapters.batch_store import ContactBatchStore
from cases.deps import CasesDeps
from cases.handlers.contacts_batch import on_contacts_received

CONTACT_RECEIVED = "crm.intake.contact.received.v1"


def subscriptions(deps: CasesDeps) -> list[Subscription]:
    async def on_survey_completed(event: CloudEvent, data: SurveyCompleted) -> None:
        await handlers.on_survey_completed(deps, data, event.region)

    return [Subscription(topics.SURVEYS_SURVEYS).on("crm.surveys.survey.completed.v1", on_survey_completed)]


def batch_subscriptions(deps: CasesDeps, store: ContactBatchStore, *, max_records: int = 500,
                        ) -> list[BatchSubscription]:
    async def on_contacts(items: list[Any]) -> None:
        await on_contacts_received(deps, store, [data for _event, data, *_ in items])

    return [BatchSubscription(topics.INTAKE_CONTACTS, (CONTACT_RECEIVED,), on_contacts, max_records=max_records)]


# Seen on the topics above, deliberately not acted on by cases.
IGNORED_TYPES = (
    "crm.surveys.survey.scheduled.v1",
    "crm.surveys.survey.excluded.v1",
    "crm.surveys.survey.expired.v1",
)
