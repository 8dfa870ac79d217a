"""Batches of events → counters: month attribution, moving attributes, exactly-once."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from crm_contracts import topics
from crm_contracts.envelope import new_event
from crm_contracts.registry import parse_event
from reporting.domain.apply import Record, effect_of, merge_shard, sum_counters
from reporting.domain.cells import ALL, month_cell, month_of

T0 = datetime(2026, 3, 30, 10, tzinfo=UTC)


def case_event(kind: str, seq: int, at: datetime, *, case_id: str = "c1", **fields) -> tuple[str, dict]:
    base = {"case_id": case_id, "case_number": "SZ-2026-000001", "region": "shenzhen", "status": "received",
            "occurred_at": at.isoformat(), "sequence": seq, "department": "engineering"}
    base.update(fields)
    return f"crm.cases.case.{kind}.v1", base


class Log:
    """A partition of a topic: records with increasing offsets."""

    def __init__(self, topic: str = topics.CASES_CASES, partition: int = 0):
        self.topic, self.partition, self.records = topic, partition, []

    def add(self, type_: str, data: dict, subject: str, *, id: str | None = None, region: str = "shenzhen"):
        raw = new_event(type_, source="/tests", subject=subject, region=region, data=data, id=id,
                        time=T0).model_dump(mode="json")
        event, parsed = parse_event(raw)
        self.records.append(Record(self.topic, self.partition, len(self.records), event, parsed))


class Store:
    def __init__(self):
        self.entities, self.shards = {}, {}

    def apply(self, records, *, crash_before_entities: bool = False):
        effect = effect_of(records, self.entities)
        for sid, contributions in effect.shards.items():
            merged = merge_shard(self.shards.get(sid), sid, contributions)
            if merged:
                self.shards[sid] = merged
        if not crash_before_entities:
            self.entities.update(effect.entities)

    def cell(self, cell: str, slice_: str = ALL) -> dict[str, int]:
        return sum_counters([d for sid, d in self.shards.items() if sid.startswith(cell + "|")], slice_)


def closed_case_log() -> Log:
    log = Log()
    log.add(*case_event("opened", 1, T0, channel="hotline", project="P1", department=None), subject="c1")
    log.add(*case_event("assigned", 2, T0 + timedelta(hours=1), status="classified", category="engineering_quality",
                        severity="general"), subject="c1")
    log.add(*case_event("sla-breached", 3, T0 + timedelta(hours=5), clock="first_reply",
                        due_at=(T0 + timedelta(hours=4)).isoformat()), subject="c1")
    log.add(*case_event("closed", 4, T0 + timedelta(days=3), status="closed", outcome="resolved"), subject="c1")
    return log


def test_a_case_opened_in_march_and_closed_in_april_counts_in_both_months():
    store = Store()
    store.apply(closed_case_log().records)
    march, april = month_cell("shenzhen", "2026-03"), month_cell("shenzhen", "2026-04")
    assert store.cell(march)["cases:opened"] == 1
    assert store.cell(march)["cases:status:closed"] == 1
    assert "close:count" not in store.cell(march)
    assert store.cell(april)["close:count"] == 1
    assert store.cell(april)["reply:late"] == 1 and "reply:timely" not in store.cell(april)
    assert store.cell(april)["sum:close_minutes"] == 3 * 24 * 60
    # the case moved from "unassigned" to engineering when it was assigned
    assert store.cell(march, "engineering")["cases:opened"] == 1
    assert "cases:opened" not in store.cell(march, "unassigned")
    assert store.cell(month_cell("shenzhen", "2026-03", "P1"))["cases:opened"] == 1


def test_a_batch_redelivered_with_other_boundaries_counts_once():
    log = closed_case_log()
    once, twice = Store(), Store()
    once.apply(log.records)
    twice.apply(log.records[:3], crash_before_entities=True)  # shards stored, then a crash
    twice.apply(log.records[:2])  # redelivered, shorter this time
    twice.apply(log.records[1:])
    twice.apply(log.records)
    assert twice.shards == once.shards


def test_the_same_event_published_twice_counts_once():
    log = Log(topics.INTAKE_CONTACTS)
    data = {"contact_id": "k1", "channel": "forum", "source_ref": "post-1", "region": "shenzhen",
            "customer_match": "unknown", "kind_hint": "complaint", "subject": "s", "body": "b",
            "received_at": "2026-03-31T23:30:00+00:00"}
    log.add("crm.intake.contact.received.v1", data, "k1", id="e1")
    log.add("crm.intake.contact.received.v1", data, "k1", id="e1")
    store = Store()
    store.apply(log.records)
    # 23:30 UTC on 31 March is 07:30 on 1 April in China: April's contact
    assert month_of(datetime(2026, 3, 31, 23, 30, tzinfo=UTC)) == "2026-04"
    assert store.cell(month_cell("shenzhen", "2026-04"))["contacts:channel:forum"] == 1
    assert store.cell(month_cell("shenzhen", "2026-03")) == {}


def test_a_reopened_case_counts_its_first_closure_only():
    log = closed_case_log()
    log.add(*case_event("reopened", 5, T0 + timedelta(days=40), status="handling", reason="came back"), subject="c1")
    log.add(*case_event("closed", 6, T0 + timedelta(days=41), status="closed", outcome="resolved"), subject="c1")
    store = Store()
    store.apply(log.records)
    assert store.cell(month_cell("shenzhen", "2026-04"))["close:count"] == 1
    assert store.cell(month_cell("shenzhen", "2026-05")).get("close:count") is None


def test_shards_are_per_partition():
    a, b = Log(partition=0), Log(partition=1)
    for log, case in ((a, "c1"), (b, "c2")):
        log.add(*case_event("opened", 1, T0, case_id=case, channel="letter"), subject=case)
    store = Store()
    store.apply(a.records)
    store.apply(b.records)
    per_shard = defaultdict(int)
    for sid, doc in store.shards.items():
        per_shard[sid.rsplit("|", 1)[1]] += doc["counters"][ALL].get("cases:opened", 0)
    assert per_shard["0"] == per_shard["1"] > 0
    assert store.cell(month_cell("shenzhen", "2026-03"))["cases:opened"] == 2


def test_the_rebuilds_one_pass_counts_what_the_live_path_counts():
    """The rebuild's apply_in_memory against effect_of + merge_shard + merge_ids, over two
    cases (one reopened) and a duplicate event, in other batch boundaries, replayed after a
    crash that lost the entities but not the shards."""
    from reporting.domain.apply import merge_ids, tidy
    from reporting.domain.rebuild import apply_in_memory

    log = closed_case_log()
    log.add(*case_event("opened", 1, T0, case_id="c2", channel="forum", department="sales"), subject="c2")
    log.add(*case_event("closed", 2, T0 + timedelta(days=40), case_id="c2", status="closed", outcome="resolved"),
            subject="c2")
    log.add(*case_event("reopened", 3, T0 + timedelta(days=41), case_id="c2", status="handling", reason="leak"),
            subject="c2")
    log.records.append(Record(log.topic, 0, len(log.records), log.records[1].event, log.records[1].data))
    live, ids = Store(), {}
    for i in range(0, len(log.records), 3):
        batch = log.records[i:i + 3]
        effect = effect_of(batch, live.entities)
        for sid, contributions in effect.shards.items():
            if merged := merge_shard(live.shards.get(sid), sid, contributions):
                live.shards[sid] = merged
            if held := merge_ids(ids.get(sid), sid, contributions):
                ids[sid] = held
        live.entities.update(effect.entities)
    entities, shards, drill = {}, {}, {}
    dirty: dict[str, set[str]] = {"entities": set(), "shards": set(), "ids": set()}
    apply_in_memory(log.records[:5], entities, shards, drill, dirty)
    entities.clear()  # a crash after the shards were stored, before the entities were
    apply_in_memory(log.records[:4], entities, shards, drill, dirty)  # replayed from the first record
    apply_in_memory(log.records[2:], entities, shards, drill, dirty)  # and again, other boundaries
    rebuilt = {sid: tidy(dict(d), "counters")["counters"] for sid, d in shards.items()}
    assert rebuilt == {sid: d["counters"] for sid, d in live.shards.items()}
    def listed(docs):  # the ids per shard, slice and counter; empty lists and slices are no ids
        return {sid: found for sid, d in docs.items() if (found := tidy(dict(d), "ids")["ids"])}

    assert listed(drill) == listed(ids) and listed(ids)
    assert {e: d["facts"] for e, d in entities.items()} == {e: d["facts"] for e, d in live.entities.items()}


def test_a_rebuild_batch_read_again_after_a_crash_counts_each_record_once():
    """One batch holds records the stored shards already counted (read again after a
    crash that lost the entities) and records past them: the first take the exact path
    (each shard's own offset), the others one profile diff per entity; the sum is the
    live path's."""
    from reporting.domain.apply import merge_ids, tidy
    from reporting.domain.rebuild import apply_in_memory

    log = closed_case_log()
    log.add(*case_event("opened", 1, T0, case_id="c2", channel="forum", department="sales"), subject="c2")
    log.add(*case_event("assigned", 2, T0 + timedelta(hours=2), case_id="c2", status="classified"), subject="c2")
    log.add(*case_event("closed", 3, T0 + timedelta(days=40), case_id="c2", status="closed", outcome="resolved"),
            subject="c2")
    live, live_ids = Store(), {}
    effect = effect_of(log.records, {})
    for sid, contributions in effect.shards.items():
        live.shards[sid] = merge_shard(None, sid, contributions)
        if held := merge_ids(None, sid, contributions):
            live_ids[sid] = held
    entities, shards, drill = {}, {}, {}
    dirty: dict[str, set[str]] = {"entities": set(), "shards": set(), "ids": set()}
    apply_in_memory(log.records[:2], entities, shards, drill, dirty)
    entities.clear()  # the shards were stored, the entities lost
    apply_in_memory(log.records, entities, shards, drill, dirty)
    assert {sid: tidy(dict(d), "counters")["counters"] for sid, d in shards.items()} == {
        sid: d["counters"] for sid, d in live.shards.items()}
    def listed(docs):  # empty lists and slices are no ids
        return {sid: found for sid, d in docs.items() if (found := tidy(dict(d), "ids")["ids"])}

    assert listed(drill) == listed(live_ids) and listed(drill)
    march = sum_counters([d for d in shards.values() if d["_id"].startswith(month_cell("shenzhen", "2026-03"))],
                         ALL)
    assert march["cases:opened"] == 2


def test_a_stored_document_reads_back_as_it_was():
    from reporting.adapters.store import decode, encode

    doc = {"_id": "m|shenzhen|2026-03|_all|crm.cases.cases.v1|0", "applied_offset": 7,
           "counters": {"_all": {"cases:opened": 2}, "工程部": {"lessons:cause:施工质量": 1}}}
    stored = encode(doc)
    assert set(stored) == {"_id", "v"} and decode(stored) == doc
    assert decode({"_id": "x", "counters": {}}) == {"_id": "x", "counters": {}}  # stored field by field before
