"""Contacts handled in batches, on the real stack: what each contact becomes is what it
would become one at a time (a customer's further contact joins the case the batch opened
for them, a repeat follows its original, five owners about one matter are a collective
incident, also with a contact stamped in the future or handled by two replicas in turn), a
customer's contact in a later batch joins their open case, a batch delivered again changes
nothing (nor one an earlier version handled), a batch that died half-written and is
delivered again leaves one case per contact with one number, and a poison message in a
batch from Kafka is dead-lettered alone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cases.adapters import batch_store
from cases.adapters.batch_store import ARRIVALS_SINCE, ContactBatchStore
from cases.adapters.fact_buckets import bucket_facts
from cases.adapters.metrics import CasesMetrics
from cases.adapters.queue import QueueIndex
from cases.adapters.store import CaseRepository, ConcurrentUpdate
from cases.bootstrap import build_deps
from cases.handlers import case_id_for
from cases.handlers.contacts_batch import on_contacts_received
from crm_contracts import topics
from crm_contracts.events.intake import ContactReceived
from crm_runtime.mongo import create_client
from crm_runtime.outbox import Outbox
from crm_runtime.testing import event_of_type, eventually, make_event, produce, wait_for_messages
from prometheus_client import CollectorRegistry

from .conftest import cases_settings, contact_data

pytestmark = pytest.mark.stack


@pytest.fixture
def batch(stack, cases, suffix):
    ctx = cases.app.state.ctx
    deps = build_deps(ctx, cases_settings(stack, suffix), metrics=CasesMetrics(CollectorRegistry()))
    store = ContactBatchStore(ctx.db, ctx.outbox, ctx.timers)

    async def handle(items: list[ContactReceived]) -> dict[str, str | None]:
        return await on_contacts_received(deps, store, items)

    async def with_store(other: ContactBatchStore, items: list[ContactReceived]) -> dict[str, str | None]:
        return await on_contacts_received(deps, other, items)

    handle.db = ctx.db  # type: ignore[attr-defined]
    handle.deps = deps  # type: ignore[attr-defined]
    handle.store = store  # type: ignore[attr-defined]
    handle.with_store = with_store  # type: ignore[attr-defined]
    return handle


def contact(**overrides) -> ContactReceived:
    return ContactReceived.model_validate(contact_data(**overrides))


async def case_doc(db, case_id: str) -> dict:
    return await db["cases"].find_one({"_id": case_id})


async def test_a_customers_further_contacts_in_one_batch_join_the_case_the_first_opened(batch, stack):
    project = f"碧水湾{uuid.uuid4().hex[:6]}"
    first = contact(customer_id="cust-a", project=project, region="shenzhen")
    further = contact(customer_id="cust-a", project=project, region="shenzhen", subject="还是漏水")
    repeat = contact(customer_id=None, customer_match="unknown", project=project, region="shenzhen",
                     duplicate_of=first.contact_id)
    asked = contact(customer_id="cust-b", project=project, kind_hint="consultation", subject="物业费",
                    body="物业费怎么交？")
    items = [first, further, first, repeat, asked]  # `first` delivered twice within the batch

    outcome = await batch(items)

    case_id = case_id_for(first.contact_id)
    assert outcome == {first.contact_id: case_id, further.contact_id: case_id, repeat.contact_id: case_id,
                       asked.contact_id: None}
    doc = await case_doc(batch.db, case_id)
    assert doc["contact_ids"] == [first.contact_id, further.contact_id, repeat.contact_id]
    assert await batch.db["cases"].find_one({"_id": case_id_for(further.contact_id)}) is None
    assert [t["action"] for t in doc["timeline"]].count("contact_attached") == 2
    assert doc["case_number"].startswith("SZ-")
    numbered = await batch.db["case_numbers"].find_one({"_id": doc["case_number"]})
    assert numbered["case_id"] == case_id
    work = await batch.db["contacts"].find_one({"_id": asked.contact_id})
    assert work["handled"] and work["status"] == "unanswered" and work["case_id"] is None
    assert await batch.db["timers"].find_one({"_id": f"sla:{case_id}", "state": "pending"}) is not None

    # Delivered again (the consumer died before committing): nothing changes.
    again = await batch(items)
    assert again == outcome
    after = await case_doc(batch.db, case_id)  # (the relay may have cleared its outbox meanwhile)
    assert (after["contact_ids"], after["timeline"], after["version"], after["case_number"]) == \
        (doc["contact_ids"], doc["timeline"], doc["version"], doc["case_number"])
    attached = await wait_for_messages(stack.bootstrap, topics.CASES_CASES, event_of_type(
        "crm.cases.case.contact-attached.v1", case_id=case_id), count=2, timeout=30)
    assert len(attached) == 2


async def test_a_customers_contact_in_a_later_batch_joins_the_case_an_earlier_batch_opened(batch):
    project = f"金域{uuid.uuid4().hex[:6]}"
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    first = contact(customer_id=customer, project=project)
    await batch([first, contact(project=project)])

    later = contact(customer_id=customer, project=project, subject="漏水还没修好")
    newcomer = contact(customer_id=f"cust-{uuid.uuid4().hex[:8]}", project=project)
    outcome = await batch([later, newcomer])

    case_id = case_id_for(first.contact_id)
    assert outcome == {later.contact_id: case_id, newcomer.contact_id: case_id_for(newcomer.contact_id)}
    assert (await case_doc(batch.db, case_id))["contact_ids"] == [first.contact_id, later.contact_id]
    index = await batch.db["customer_cases"].find_one({"_id": customer})
    assert index["case_ids"] == [case_id]
    stored = await batch.db["contacts"].find_one({"_id": later.contact_id})
    assert stored["handled"] and stored["case_id"] == case_id and stored["subject"] == "漏水还没修好"


async def test_a_contact_handled_before_arrivals_were_recorded_is_not_handled_again(batch):
    # As an earlier version left its database: the contact handled, no arrival recorded
    # (and no time since when arrivals are).
    await batch.db["counters"].delete_one({"_id": ARRIVALS_SINCE})
    old = contact(received_at=datetime(2026, 11, 30, 9, 0, tzinfo=UTC).isoformat(),
                  kind_hint="consultation", subject="物业费", body="物业费怎么交？")
    await batch.db["contacts"].insert_one({"_id": old.contact_id, "region": old.region, "handled": True,
                                           "case_id": None, "status": "answered"})
    fresh = ContactBatchStore(batch.store.db, batch.store.outbox, batch.store.timers)  # as after a restart

    outcome = await batch.with_store(fresh, [old])

    assert outcome == {old.contact_id: None}
    assert (await batch.db["contacts"].find_one({"_id": old.contact_id}))["status"] == "answered"  # as staff left it


async def test_a_backlogs_hour_is_held_in_parts_and_pages_as_one_bucket(batch, monkeypatch):
    monkeypatch.setattr(batch_store, "PART_ROWS", 3)  # a backlog in miniature
    project, at = f"云山{uuid.uuid4().hex[:6]}", datetime.now(UTC).replace(microsecond=0)
    items = [contact(region="chengdu", project=project, received_at=at.isoformat()) for _ in range(8)]

    await batch(items)

    docs = [await case_doc(batch.db, case_id_for(i.contact_id)) for i in items]
    assert len({d["queue_at"]["hour"] for d in docs}) == 1  # one due hour ...
    assert len({d["queue_at"].get("part", 0) for d in docs}) >= 3  # ... in parts
    queue = QueueIndex(batch.db)
    page = await queue.page({"project": project}, regions=["chengdu"], due_before=None, after=None, limit=50)
    assert sorted(r["case_id"] for r in page) == sorted(d["_id"] for d in docs)

    # A staff step that keeps a case in its hour keeps it in its part: listed once, as it is now.
    last = docs[-1]
    repo = CaseRepository(batch.db, batch.store.outbox)
    for _ in range(20):  # as a staff action does: the relay clearing the outbox may write first
        case, rev = await repo.get_with_rev(last["_id"])
        case.attach_contact("staff-noted", at=datetime.now(UTC))
        try:
            await repo.save(case, rev, [])
            break
        except ConcurrentUpdate:
            continue
    page = await queue.page({"project": project}, regions=["chengdu"], due_before=None, after=None, limit=50)
    assert [r["case_id"] for r in page].count(last["_id"]) == 1
    assert (await case_doc(batch.db, last["_id"]))["queue_at"] == last["queue_at"]


async def test_a_batch_that_died_half_written_and_comes_again_opens_each_case_once(batch, monkeypatch):
    region, at = "beijing", datetime.now(UTC).replace(microsecond=0)
    items = [contact(region=region, customer_id=f"cust-{uuid.uuid4().hex[:8]}", received_at=at.isoformat())
             for _ in range(12)]
    counter_id = f"{region}:{batch.deps.calendar_for(region).year_of(at)}"
    counter_before = await batch.db["counters"].find_one({"_id": counter_id})

    async def dies(*args, **kwargs):
        raise ConnectionError("process killed")

    # Dies after the numbers are given, before any case is stored ...
    monkeypatch.setattr(batch.store, "insert_cases", dies)
    with pytest.raises(ConnectionError):
        await batch(items[:6])
    given = {i.contact_id: (await batch.db["case_numbers"].find_one({"_id": f"case:{case_id_for(i.contact_id)}"}))
             ["number"] for i in items[:6]}
    monkeypatch.undo()
    # ... and after the cases are stored, before the collective facts and "handled".
    monkeypatch.setattr(batch.store, "add_facts", dies)
    with pytest.raises(ConnectionError):
        await batch(items)
    monkeypatch.undo()

    outcome = await batch(items)

    assert outcome == {i.contact_id: case_id_for(i.contact_id) for i in items}
    docs = [await case_doc(batch.db, case_id_for(i.contact_id)) for i in items]
    assert all(d is not None for d in docs)
    numbers = [d["case_number"] for d in docs]
    assert len(set(numbers)) == len(items)  # unique
    assert {i.contact_id: d["case_number"] for i, d in zip(items[:6], docs, strict=False)} == given  # kept
    counter = await batch.db["counters"].find_one({"_id": counter_id})
    assert counter["seq"] - (counter_before or {}).get("seq", 0) == len(items)  # no number given twice
    for i in items:
        handled = await batch.db["contacts"].find_one({"_id": i.contact_id})
        assert handled["handled"] and handled["case_id"] == case_id_for(i.contact_id)
    assert all([t["action"] for t in d["timeline"]].count("opened") == 1 for d in docs)


async def test_a_call_on_new_years_morning_in_china_is_numbered_in_the_new_year(batch):
    # 00:30 on 1 January in Shenzhen is still 31 December in UTC.
    item = contact(region="shenzhen", received_at="2030-01-01T00:30:00+08:00")
    await batch([item])
    assert (await case_doc(batch.db, case_id_for(item.contact_id)))["case_number"].startswith("SZ-2030-")


async def test_five_owners_about_one_matter_in_one_batch_are_a_collective_incident(batch, stack):
    project = f"翡翠城{uuid.uuid4().hex[:6]}"
    items = [contact(project=project, building="7", customer_id=f"owner-{n}-{uuid.uuid4().hex[:6]}",
                     subject="外墙渗水", body="7栋外墙渗水，墙面发霉。") for n in range(6)]

    await batch(items)

    docs = [await case_doc(batch.db, case_id_for(i.contact_id)) for i in items]
    incident_ids = {d["collective_incident_id"] for d in docs}
    assert len(incident_ids) == 1 and None not in incident_ids
    [incident_id] = incident_ids
    incident = await batch.db["incidents"].find_one({"_id": incident_id})
    assert incident["customer_count"] == 6 and incident["severity"] == "major"
    assert set(incident["case_ids"]) == {d["_id"] for d in docs}
    assert all(d["severity"] == "major" for d in docs)  # raised by the incident
    [detected] = await wait_for_messages(stack.bootstrap, topics.CASES_CASES, lambda m: m.json().get("subject")
                                         == incident_id and m.json()["type"].endswith("detected.v1"), timeout=30)
    assert detected.json()["data"]["customer_count"] == 5  # the fifth owner made it an incident


async def test_a_contact_stamped_in_the_future_still_counts_towards_a_collective_incident(batch):
    # A partner's clock ahead: its contact is filed under a day that has not begun.
    project = f"江湾{uuid.uuid4().hex[:6]}"
    ahead = contact(project=project, building="2", received_at=(datetime.now(UTC) + timedelta(hours=20)).isoformat(),
                    subject="外墙渗水", body="2栋外墙渗水，墙面发霉。")
    await batch([ahead])

    now = [contact(project=project, building="2", subject="外墙渗水", body="2栋外墙渗水，墙面发霉。") for _ in range(4)]
    await batch(now)

    linked = {(await case_doc(batch.db, case_id_for(i.contact_id)))["collective_incident_id"] for i in [ahead, *now]}
    assert len(linked) == 1 and None not in linked
    incident = await batch.db["incidents"].find_one({"_id": linked.pop()})
    assert incident["customer_count"] == 5


async def test_owners_about_one_matter_handled_by_two_replicas_in_turn_are_one_collective_incident(batch, stack):
    project = f"滨江{uuid.uuid4().hex[:6]}"
    about = {"project": project, "building": "4", "subject": "外墙渗水", "body": "4栋外墙渗水，墙面发霉。"}
    owners = [contact(**about) for _ in range(5)]
    other = create_client(stack.mongodb_url, app_name="cases-replica")  # its own client: its own memory
    try:
        db = other[batch.db.name]
        replica = ContactBatchStore(db, Outbox(db), batch.store.timers)
        await batch(owners[:2])
        await batch.with_store(replica, owners[2:4])  # sees 4 owners: no incident yet
        # This replica remembers the bucket as it wrote it, with 2 owners: the fifth makes
        # 5 only with the other replica's, which its write finds and detection then counts.
        await batch(owners[4:])
    finally:
        await other.close()

    linked = {(await case_doc(batch.db, case_id_for(o.contact_id)))["collective_incident_id"] for o in owners}
    assert len(linked) == 1 and None not in linked
    incident = await batch.db["incidents"].find_one({"_id": linked.pop()})
    assert incident["customer_count"] == 5 and incident["severity"] == "major"


async def test_facts_filed_before_they_were_packed_still_count_and_are_packed_when_written(batch):
    project = f"湖畔{uuid.uuid4().hex[:6]}"
    about = {"project": project, "building": "5", "subject": "外墙渗水", "body": "5栋外墙渗水，墙面发霉。"}
    first = [contact(**about) for _ in range(4)]
    await batch(first)
    [bucket] = [b async for b in batch.db["collective_facts"].find({"_id": {"$regex": f"^{project}"}})]
    # As an earlier version wrote it: the facts as documents.
    await batch.db["collective_facts"].update_one({"_id": bucket["_id"]}, {"$set": {
        "facts": bucket_facts(bucket), "packed": []}})

    fifth = contact(**about)
    await batch([fifth])

    incident_id = (await case_doc(batch.db, case_id_for(fifth.contact_id)))["collective_incident_id"]
    assert (await batch.db["incidents"].find_one({"_id": incident_id}))["customer_count"] == 5
    rewritten = await batch.db["collective_facts"].find_one({"_id": bucket["_id"]})
    assert rewritten["facts"] == [] and len(rewritten["packed"]) == 5


async def test_a_poison_message_in_a_batch_from_kafka_is_dead_lettered_alone(stack, cases):
    db = cases.app.state.ctx.db
    sent = []
    for n in range(8):
        data = contact_data(region="chengdu")
        sent.append(data["contact_id"])
        await produce(stack.bootstrap, topics.INTAKE_CONTACTS, make_event(
            "crm.intake.contact.received.v1", data, region="chengdu", subject=data["contact_id"]))
        if n == 3:
            poison = make_event("crm.intake.contact.received.v1", {**contact_data(), "channel": "carrier-pigeon"},
                                subject=f"poison-{uuid.uuid4().hex}")
            await produce(stack.bootstrap, topics.INTAKE_CONTACTS, poison)
    for contact_id in sent:
        await eventually(lambda cid=contact_id: db["contacts"].find_one({"_id": cid, "handled": True}), timeout=60)
    dead = await wait_for_messages(stack.bootstrap, topics.dlq_topic("cases"),
                                   lambda m: m.json().get("subject") == poison.subject, timeout=30)
    assert len(dead) == 1 and dead[0].headers["crm-dlq-error"].startswith("contract: ")
    for contact_id in sent:
        assert await db["cases"].find_one({"_id": case_id_for(contact_id)}, {"_id": 1}) is not None


async def test_a_contact_that_fails_in_a_batch_is_dead_lettered_alone_and_the_rest_is_applied(stack, cases):
    db = cases.app.state.ctx.db
    # A repeat of a contact whose case is gone: attaching it fails whatever the retries.
    lost = f"lost-{uuid.uuid4().hex}"
    await db["contacts"].insert_one({"_id": lost, "region": "chengdu", "handled": True, "case_id": "no-such-case"})
    good = [contact_data(region="chengdu") for _ in range(6)]
    bad = contact_data(region="chengdu", duplicate_of=lost, customer_id=None, customer_match="unknown")
    for data in [*good[:3], bad, *good[3:]]:
        await produce(stack.bootstrap, topics.INTAKE_CONTACTS, make_event(
            "crm.intake.contact.received.v1", data, region="chengdu", subject=data["contact_id"]))
    for data in good:
        await eventually(lambda cid=data["contact_id"]: db["contacts"].find_one({"_id": cid, "handled": True}),
                         timeout=60)
    dead = await wait_for_messages(stack.bootstrap, topics.dlq_topic("cases"),
                                   lambda m: m.json().get("subject") == bad["contact_id"], timeout=60)
    assert len(dead) == 1 and "CaseNotFound" in dead[0].headers["crm-dlq-error"]
    assert not (await db["contacts"].find_one({"_id": bad["contact_id"]}) or {}).get("handled")
