"""The rebuild's fold: a batch of records applied to documents held in memory (a fresh
generation, whose only writer is the rebuild), with the rules of `apply.effect_of` +
`merge_shard` + `merge_ids`: an entity folds a record past its offset and not seen
before; a shard takes a record's contributions only past the shard's offset.

A record of a partition is past every shard's offset of that partition if it is past the
highest offset any of them holds at the start of the batch (records within a batch are
applied in offset order). Then the profile diffs of an entity's records telescope: the
shards get the entity's profile after its last record minus its profile before its first,
computed once per entity per batch instead of once per record (a case's four steps
mostly fall in one batch). A record at or behind that mark (read again after a crash)
takes the exact path, record by record, with each shard's own offset.
"""

from __future__ import annotations

from typing import Any

from reporting.domain import profiles
from reporting.domain.apply import MAX_APPLIED_IDS, MAX_DRILL_IDS, Record, entity_id

Doc = dict[str, Any]
Marks = dict[tuple[str, int], int]  # (topic, partition) -> highest offset any of its shards applied
Change = tuple[tuple[str, str, str], int, int]  # ((cell, slice, counter), was, now)


def marks_of(shards: dict[str, Doc]) -> Marks:
    """The marks of shards held in memory (when the caller keeps none)."""
    marks: Marks = {}
    for sid, doc in shards.items():
        _, topic, partition = sid.rsplit("|", 2)  # <cell>|<topic>|<partition>
        key = (topic, int(partition))
        marks[key] = max(marks.get(key, -1), doc["applied_offset"])
    return marks


def diff(before: dict[tuple[str, str, str], int], after: dict[tuple[str, str, str], int]) -> list[Change]:
    """The counters that differ between two profiles, with their values before and after."""
    if not before:  # an entity's first events: everything it counts is new
        return [(k, 0, v) for k, v in after.items()]
    changes = [(k, was, v) for k, v in after.items() if (was := before.get(k, 0)) != v]
    changes += [(k, v, 0) for k, v in before.items() if k not in after]
    return changes


def apply_in_memory(records: list[Record], entities: dict[str, Doc], shards: dict[str, Doc],
                    ids: dict[str, Doc], dirty: dict[str, set[str]], marks: Marks | None = None) -> None:
    """Fold `records` into `entities` and move the shards' counters and drill-down ids.
    `dirty` collects the _ids changed, per "entities", "shards" and "ids"; `marks` (kept
    by the caller with the shards) says how far each partition's shards are."""
    if marks is None:
        marks = marks_of(shards)
    start = dict(marks)  # the marks at the start of the batch decide the path
    dirty_e = dirty["entities"]
    pending: dict[str, tuple[str, Doc, Record]] = {}  # fast path: eid -> (kind, facts before, first record)
    last_profile: dict[str, dict[tuple[str, str, str], int]] = {}  # exact path: profile after the last record
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        event = record.event
        kind = profiles.kind_of(event.type)
        if kind is None:
            continue
        eid = entity_id(record.topic, event.subject)
        doc = entities.get(eid) or {"_id": eid, "facts": {}, "applied_offset": -1, "applied_ids": []}
        offset = record.offset
        if offset <= doc["applied_offset"] or event.id in doc["applied_ids"]:
            continue
        old = doc["facts"]
        new = profiles.fold(kind, old, event, record.data)
        if eid in pending:
            pass
        elif eid not in last_profile and offset > start.get((record.topic, record.partition), -1):
            pending[eid] = (kind, old, record)
        else:  # behind the mark: each shard's own offset decides, record by record
            before = last_profile.get(eid)
            if before is None:
                before = profiles.profile(kind, old)
            after = last_profile[eid] = profiles.profile(kind, new)
            _move(diff(before, after), record.topic, record.partition, offset, event.subject, shards, ids,
                  dirty, marks, check=True)
        ids_seen = doc["applied_ids"]
        entities[eid] = {
            **doc, "facts": new, "applied_offset": offset,
            "applied_ids": [*ids_seen, event.id] if len(ids_seen) < MAX_APPLIED_IDS
            else [*ids_seen, event.id][-MAX_APPLIED_IDS:]}
        dirty_e.add(eid)
    for eid, (kind, old, first) in pending.items():
        doc = entities[eid]
        changes = diff(profiles.profile(kind, old), profiles.profile(kind, doc["facts"]))
        _move(changes, first.topic, first.partition, doc["applied_offset"], first.event.subject, shards, ids,
              dirty, marks, check=False)


def _move(changes: list[Change], topic: str, partition: int, offset: int, subject: str, shards: dict[str, Doc],
          ids: dict[str, Doc], dirty: dict[str, set[str]], marks: Marks, *, check: bool) -> None:
    """Apply one entity's changes to its partition's shards and drill-down lists, at
    `offset` (its last record). `check`: skip the shards already past `offset`."""
    if not changes:
        return
    suffix = f"|{topic}|{partition}"  # shard_id(cell, topic, partition)
    # per cell: [its shard's counters (None: past offset), its ids document (False: not
    # opened yet, None: past offset), the shard's _id]; a profile names a few cells many
    # times, in a row: the last cell's entry is kept at hand
    opened: dict[str, list[Any]] = {}
    last_cell, entry, slots, held_ids = None, None, None, None
    for (cell, slice_, counter), was, now in changes:
        if cell != last_cell:
            last_cell = cell
            entry = opened.get(cell)
            if entry is None:
                sid = cell + suffix
                shard = shards.get(sid)
                if shard is None:
                    shard = shards[sid] = {"_id": sid, "applied_offset": -1, "counters": {}}
                elif check and offset <= shard["applied_offset"]:
                    shard = None
                entry = opened[cell] = [shard, False, sid]
            slots = entry[0]["counters"] if entry[0] is not None else None
            held_ids = None if entry[1] is False or entry[1] is None else entry[1]["ids"]
        if slots is None:
            continue
        slot = slots.get(slice_)
        if slot is None:
            slot = slots[slice_] = {}
        value = slot.get(counter, 0) + now - was
        if value:
            slot[counter] = value
        else:
            slot.pop(counter, None)
        if (was and now) or counter.startswith("sum:"):
            continue
        if held_ids is None:
            held = entry[1]
            if held is False:
                held = ids.get(entry[2])
                if held is None:
                    held = ids[entry[2]] = {"_id": entry[2], "applied_offset": -1, "ids": {}}
                elif check and offset <= held["applied_offset"]:
                    held = None
                entry[1] = held
            if held is None:
                continue
            held_ids = held["ids"]
        lists = held_ids.get(slice_)
        if lists is None:
            lists = held_ids[slice_] = {}
        bucket = lists.get(counter)
        if bucket is None:
            bucket = lists[counter] = []
        if was == 0:
            # Past the mark (not `check`) an entity's subject is listed exactly while its
            # count is not 0, so it is not there yet: no scan of up to 50 ids per counter
            # (a tenth of the fold). Behind the mark (a record read again) the list decides.
            if len(bucket) < MAX_DRILL_IDS and (not check or subject not in bucket):
                bucket.append(subject)
        elif now == 0 and subject in bucket:
            bucket.remove(subject)
    dirty_s, dirty_i = dirty["shards"], dirty["ids"]
    for shard, held, sid in opened.values():
        if shard is not None:
            if shard["applied_offset"] < offset:
                shard["applied_offset"] = offset
            dirty_s.add(sid)
        if held:
            if held["applied_offset"] < offset:
                held["applied_offset"] = offset
            dirty_i.add(sid)
    key = (topic, partition)
    if marks.get(key, -1) < offset:
        marks[key] = offset
