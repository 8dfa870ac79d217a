"""A batch of events → what it changes in the read models, exactly once.

Every source partition has a single consumer, so every document written from it has a
single writer: an entity's state (keyed by topic and Kafka key), and a cell's shard for
that partition (`<cell>|<topic>|<partition>`). Each keeps the offset of the last record
applied to it. Replaying a batch after a crash (whatever its boundaries this time)
therefore changes nothing already stored: a shard takes only contributions from records
past its offset, an entity folds only records past its own offset and never an event id
it has seen (a producer may publish one event twice).

Shards are written before entities: if a crash falls between the two, the entities fold
the same records again from the same facts and compute the same contributions, which the
shards then skip.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from crm_contracts.envelope import CloudEvent

from reporting.domain import profiles
from reporting.domain.cells import shard_id

MAX_APPLIED_IDS = 300
MAX_DRILL_IDS = 50  # per counter per shard: a drill-down lists at most this many per partition


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    event: CloudEvent
    data: Any


class Contribution(NamedTuple):  # a tuple: millions are made during a rebuild
    offset: int
    slice: str
    counter: str
    delta: int
    drill_id: str
    id_op: str | None  # "add", "remove" or None


@dataclass
class BatchEffect:
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)  # changed entity documents
    shards: dict[str, list[Contribution]] = field(default_factory=lambda: defaultdict(list))


def entity_id(topic: str, subject: str) -> str:
    return f"{topic}|{subject}"


def effect_of(records: list[Record], states: dict[str, dict[str, Any]]) -> BatchEffect:
    """Fold each record into its entity and turn each change of profile into contributions
    to the shards of the record's partition. `states` are the stored entity documents."""
    effect = BatchEffect()
    last_profile: dict[str, dict[tuple[str, str, str], int]] = {}  # an entity's profile after its last record
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        kind = profiles.kind_of(record.event.type)
        if kind is None:
            continue
        eid = entity_id(record.topic, record.event.subject)
        doc = effect.entities.get(eid) or states.get(eid) or {
            "_id": eid, "kind": kind, "facts": {}, "applied_offset": -1, "applied_ids": []}
        if record.offset <= doc["applied_offset"] or record.event.id in doc["applied_ids"]:
            continue
        old = doc["facts"]
        new = profiles.fold(kind, old, record.event, record.data)
        before = last_profile.get(eid)
        if before is None:
            before = profiles.profile(kind, old)
        after = last_profile[eid] = profiles.profile(kind, new)
        drill_id = record.event.subject
        changed = [(k, v, after.get(k, 0)) for k, v in before.items() if after.get(k, 0) != v]
        changed += [(k, 0, v) for k, v in after.items() if k not in before]
        for key, was, now in changed:
            cell, slice_, counter = key
            op = None
            if not counter.startswith("sum:"):
                op = "add" if was == 0 else "remove" if now == 0 else None
            effect.shards[shard_id(cell, record.topic, record.partition)].append(
                Contribution(record.offset, slice_, counter, now - was, drill_id, op))
        effect.entities[eid] = {
            **doc, "facts": new, "applied_offset": record.offset,
            "applied_ids": [*doc["applied_ids"], record.event.id][-MAX_APPLIED_IDS:]}
    return effect


def add_contributions(counters: dict[str, dict[str, int]], contributions: list[Contribution]) -> None:
    """Each contribution's delta added to its slice's counter (a counter back at 0 dropped)."""
    for c in contributions:
        slot = counters.setdefault(c.slice, {})
        value = slot.get(c.counter, 0) + c.delta
        if value:
            slot[c.counter] = value
        else:
            slot.pop(c.counter, None)


def merge_shard(doc: dict[str, Any] | None, sid: str, contributions: list[Contribution]) -> dict[str, Any] | None:
    """The shard document with the contributions it has not applied yet; None if none."""
    doc = doc or {"_id": sid, "applied_offset": -1, "counters": {}}
    fresh = [c for c in contributions if c.offset > doc["applied_offset"]]
    if not fresh:
        return None
    counters = {s: dict(v) for s, v in doc["counters"].items()}
    add_contributions(counters, fresh)
    return {"_id": sid, "applied_offset": max(c.offset for c in fresh),
            "counters": {s: v for s, v in counters.items() if v}}


def merge_ids(doc: dict[str, Any] | None, sid: str, contributions: list[Contribution]) -> dict[str, Any] | None:
    """The drill-down ids of a shard after the contributions; None if nothing changed."""
    doc = doc or {"_id": sid, "applied_offset": -1, "ids": {}}
    fresh = [c for c in contributions if c.offset > doc["applied_offset"] and c.id_op]
    if not fresh:
        return None
    ids = {s: {k: list(v) for k, v in d.items()} for s, d in doc["ids"].items()}
    changed = False
    for c in fresh:
        bucket = ids.setdefault(c.slice, {}).setdefault(c.counter, [])
        if c.id_op == "add" and c.drill_id not in bucket and len(bucket) < MAX_DRILL_IDS:
            bucket.append(c.drill_id)
            changed = True
        elif c.id_op == "remove" and c.drill_id in bucket:
            bucket.remove(c.drill_id)
            changed = True
    if not changed:
        return None
    return {"_id": sid, "applied_offset": max(c.offset for c in fresh),
            "ids": {s: {k: v for k, v in d.items() if v} for s, d in ids.items()}}


def sum_counters(docs: Sequence[Mapping[str, Any] | None], slice_: str) -> dict[str, int]:
    """A cell's counters for one slice: the sum of its shards."""
    total: dict[str, int] = defaultdict(int)
    for doc in docs:
        for counter, value in ((doc or {}).get("counters", {}).get(slice_) or {}).items():
            total[counter] += value
    return dict(total)


def tidy(doc: dict[str, Any], field_: str) -> dict[str, Any]:
    """A shard or ids document as merge_shard / merge_ids leave it: no empty slices or lists."""
    if field_ == "counters":
        doc["counters"] = {s: v for s, v in doc["counters"].items() if v}
    else:
        doc["ids"] = {s: kept for s, d in doc["ids"].items() if (kept := {k: v for k, v in d.items() if v})}
    return doc
