"""Intake's use cases on in-memory fakes of their ports: what a contact becomes, whoever
sends it (the stores are proven against the real MongoDB/FerretDB in tests/integration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from crm_contracts.events.intake import ContactReceived
from crm_contracts.events.partner import UnitDelivered
from crm_runtime.outbox import OutgoingEvent
from intake import handlers
from intake.adapters.metrics import PrometheusMetrics
from intake.deps import IntakeDeps
from intake.domain.contacts import EarlierContact
from intake.domain.customers import DirectoryEntry
from intake.domain.kind_hint import KindKeywords
from intake.settings import IntakeSettings
from prometheus_client import CollectorRegistry

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


class FakeContacts:
    def __init__(self) -> None:
        self.stored: dict[str, tuple[ContactReceived, list[OutgoingEvent], str]] = {}

    async def get(self, contact_id: str) -> dict[str, Any] | None:
        found = self.stored.get(contact_id)
        return found[0].model_dump(mode="json", exclude={"reply_to"}) if found else None

    def first_of_customer(self, customer_id: str) -> None:
        assert not any(c.customer_id == customer_id for c, _, _ in self.stored.values())

    async def recent_for_customer(self, customer_id: str, since: datetime) -> list[EarlierContact]:
        return [EarlierContact(c.contact_id, c.received_at, text, c.duplicate_of)
                for c, _, text in self.stored.values() if c.customer_id == customer_id and c.received_at >= since]

    async def insert(self, contact: ContactReceived, events: list[OutgoingEvent], *, normalised_text: str,
                     idempotency_key: str | None) -> bool:
        if contact.contact_id in self.stored:
            return False
        self.stored[contact.contact_id] = (contact, events, normalised_text)
        return True

    def event(self, contact_id: str) -> ContactReceived:
        """The ContactReceived queued with the contact, as a consumer will read it."""
        [outgoing] = self.stored[contact_id][1]
        assert outgoing.event.type == "crm.intake.contact.received.v1"
        return ContactReceived.model_validate(outgoing.event.data)


class FakeDirectory:
    def __init__(self, *entries: DirectoryEntry) -> None:
        self.entries = {e.customer_id: e for e in entries}

    async def candidates(self, keys: list[str]) -> list[DirectoryEntry]:
        return [e for e in self.entries.values() if set(keys) & set(e.lookup_keys())]

    async def get(self, customer_id: str) -> DirectoryEntry | None:
        return self.entries.get(customer_id)

    async def save(self, entry: DirectoryEntry) -> bool:
        new = entry.customer_id not in self.entries
        self.entries[entry.customer_id] = entry
        return new

    async def save_many(self, entries: list[DirectoryEntry]) -> list[str]:
        for entry in entries:
            await self.save(entry)
        return []

    async def merge_provisional_many(self, entries: list[DirectoryEntry],
                                     existing_keys: list[str] | None = None) -> dict[str, list[str]]:
        return {}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def make_deps(*entries: DirectoryEntry) -> IntakeDeps:
    return IntakeDeps(
        ctx=cast(Any, None), settings=IntakeSettings(), contacts=FakeContacts(), directory=FakeDirectory(*entries),
        attachments=cast(Any, None), keywords_for=lambda region: KindKeywords.default(),
        known_region=lambda region: region in {"shenzhen", "shanghai"},
        metrics=PrometheusMetrics(CollectorRegistry()), now=Clock(),
    )


def contacts_of(deps: IntakeDeps) -> FakeContacts:
    return cast(FakeContacts, deps.contacts)


def counted(deps: IntakeDeps, name: str, **labels: str) -> float:
    return cast(PrometheusMetrics, deps.metrics).registry.get_sample_value(name, labels) or 0.0


def front_desk(**overrides: Any) -> handlers.ReceiveContact:
    fields: dict[str, Any] = {
        "channel": "front_desk", "region": "shenzhen", "subject": "卫生间漏水",
        "body": "3栋1201卫生间天花板漏水，请尽快派人维修。", "phone": "13912345678", "name": "王芳"}
    fields.update(overrides)
    return handlers.ReceiveContact(**fields)


KNOWN = DirectoryEntry.build("cust-1", "shenzhen", names=["李雷"], phones=["13800138000"],
                             units=[("碧水湾", "3", "1201")])


async def test_a_contact_is_stored_with_its_event_hint_and_confidence():
    deps = make_deps()
    accepted = await handlers.receive_contact(deps, front_desk())
    assert accepted.created
    event = contacts_of(deps).event(accepted.contact_id)
    assert (event.channel, event.region, event.kind_hint) == ("front_desk", "shenzhen", "repair")
    assert 0 < (event.kind_confidence or 0) <= 1
    assert event.received_at == NOW
    assert counted(deps, "crm_intake_contacts_received_total", channel="front_desk", region="shenzhen",
                   kind_hint="repair") == 1


async def test_a_repeated_source_ref_returns_the_first_contact_and_stores_nothing_new():
    deps = make_deps()
    first = await handlers.receive_contact(deps, front_desk(channel="hotline", source_ref="call-7"))
    again = await handlers.receive_contact(deps, front_desk(channel="hotline", source_ref="call-7",
                                                            body="something else entirely"))
    assert (again.contact_id, again.created) == (first.contact_id, False)
    assert len(contacts_of(deps).stored) == 1
    assert counted(deps, "crm_intake_contacts_received_total", channel="hotline", region="shenzhen",
                   kind_hint="repair") == 1


async def test_an_unknown_caller_gets_a_provisional_customer_that_the_next_channel_finds():
    deps = make_deps()
    first = await handlers.receive_contact(deps, front_desk())
    event = contacts_of(deps).event(first.contact_id)
    assert event.customer_id and event.customer_id.startswith("prov-")
    assert event.customer_match == "unknown"
    assert event.reply_to and event.reply_to.phone == "13912345678"  # the only place it is known
    assert (await deps.directory.get(event.customer_id)).provisional  # type: ignore[union-attr]

    later = await handlers.receive_contact(deps, front_desk(channel="hotline", phone="+86 139 1234 5678",
                                                            subject="物业费", body="物业费怎么交？"))
    assert contacts_of(deps).event(later.contact_id).customer_id == event.customer_id
    assert counted(deps, "crm_intake_provisional_customers_total", channel="front_desk") == 1


async def test_a_known_caller_is_recognised_and_their_unit_filled_in():
    deps = make_deps(KNOWN)
    accepted = await handlers.receive_contact(deps, front_desk(phone="138-0013-8000", name=None))
    event = contacts_of(deps).event(accepted.contact_id)
    assert (event.customer_id, event.customer_match, event.reply_to) == ("cust-1", "exact", None)
    assert (event.project, event.building, event.unit) == ("碧水湾", "3", "1201")
    assert counted(deps, "crm_intake_provisional_customers_total", channel="front_desk") == 0


async def test_a_near_identical_repeat_within_a_day_is_recorded_and_folded_into_the_first():
    deps = make_deps(KNOWN)
    first = await handlers.receive_contact(deps, front_desk(phone="13800138000"))
    cast(Clock, deps.now).now = NOW + timedelta(hours=3)
    repeat = await handlers.receive_contact(deps, front_desk(phone="13800138000", body=front_desk().body + "！"))
    cast(Clock, deps.now).now = NOW + timedelta(hours=30)
    next_day = await handlers.receive_contact(deps, front_desk(phone="13800138000"))
    assert repeat.created and repeat.contact_id != first.contact_id  # nothing is lost
    assert contacts_of(deps).event(repeat.contact_id).duplicate_of == first.contact_id
    assert contacts_of(deps).event(next_day.contact_id).duplicate_of is None
    assert counted(deps, "crm_intake_duplicates_folded_total", channel="front_desk") == 1


async def test_a_different_matter_from_the_same_caller_is_not_folded():
    deps = make_deps(KNOWN)
    await handlers.receive_contact(deps, front_desk(phone="13800138000"))
    other = await handlers.receive_contact(deps, front_desk(phone="13800138000", subject="表扬保安",
                                                            body="感谢保安小李帮我找回了钱包"))
    assert contacts_of(deps).event(other.contact_id).duplicate_of is None


@pytest.mark.parametrize("region", ["atlantis", None])
async def test_an_unknown_region_is_refused_and_nothing_is_stored(region):
    deps = make_deps()
    with pytest.raises(handlers.UnknownRegion):
        await handlers.receive_contact(deps, front_desk(region=region))
    assert contacts_of(deps).stored == {}


async def test_a_contact_without_a_region_takes_the_known_customers_region():
    deps = make_deps(KNOWN)
    accepted = await handlers.receive_contact(deps, front_desk(channel="letter", letter_form="email",
                                                               region=None, phone="13800138000"))
    assert contacts_of(deps).event(accepted.contact_id).region == "shenzhen"


async def test_a_contact_no_keyword_matches_is_published_unclassified():
    deps = make_deps()
    accepted = await handlers.receive_contact(deps, front_desk(subject="3栋2单元", body="1201"))
    event = contacts_of(deps).event(accepted.contact_id)
    assert (event.kind_hint, event.kind_confidence) == ("consultation", 0.0)
    assert counted(deps, "crm_intake_contacts_unclassified_total", channel="front_desk") == 1


async def test_a_unit_event_delivered_twice_adds_the_unit_once():
    deps = make_deps(KNOWN)
    event = UnitDelivered(customer_id="cust-1", project="碧水湾", building="5", unit="0802",
                          delivered_at=NOW, fit_out="bare")
    await handlers.record_unit(deps, event, "shenzhen")
    await handlers.record_unit(deps, event, "shenzhen")
    entry = await deps.directory.get("cust-1")
    assert entry is not None and entry.units == [("碧水湾", "3", "1201"), ("碧水湾", "5", "0802")]
