"""Roll-ups: a cell's counters of one topic summed over every source partition, in one
document (`<cell>|<topic>`), so a query reads one document per cell and topic instead of
one shard per partition.

A roll-up keeps, per source partition, the offset of the last contribution it applied
(the shards' rule, per partition): a redelivered batch, whatever its boundaries, changes
nothing, and its writers (one per partition, possibly on several replicas) may apply
their contributions in any order. It is written in the same batch as the shards, before
the entities, so a crash between the two recomputes contributions it then skips.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reporting.domain.apply import Contribution, add_contributions

Doc = dict[str, Any]
Parts = list[tuple[int, list[Contribution]]]  # per source partition, its contributions


def rollup_id(cell: str, topic: str) -> str:
    return f"{cell}|{topic}"


def split_shard_id(sid: str) -> tuple[str, str, int]:
    """`<cell>|<topic>|<partition>` -> (cell, topic, partition)."""
    cell, topic, partition = sid.rsplit("|", 2)
    return cell, topic, int(partition)


def topic_of(rid: str) -> str:
    return rid.rsplit("|", 1)[1]


def by_rollup(shards: Mapping[str, list[Contribution]]) -> dict[str, Parts]:
    """A batch's contributions per shard, regrouped per roll-up and partition."""
    found: dict[str, Parts] = defaultdict(list)
    for sid, contributions in shards.items():
        cell, topic, partition = split_shard_id(sid)
        found[rollup_id(cell, topic)].append((partition, contributions))
    return dict(found)


def merge_rollup(doc: Doc | None, rid: str, parts: Parts) -> Doc | None:
    """The roll-up with the contributions past its offset of their partition; None if
    there are none."""
    doc = doc or {"_id": rid, "offsets": {}, "counters": {}}
    offsets = dict(doc["offsets"])  # partition (a string: JSON keys) -> last offset applied
    counters: dict[str, dict[str, int]] | None = None
    for partition, contributions in parts:
        key = str(partition)
        fresh = [c for c in contributions if c.offset > offsets.get(key, -1)]
        if not fresh:
            continue
        if counters is None:
            counters = {s: dict(v) for s, v in doc["counters"].items()}
        add_contributions(counters, fresh)
        offsets[key] = max(c.offset for c in fresh)
    if counters is None:
        return None
    return {"_id": rid, "offsets": offsets, "counters": {s: v for s, v in counters.items() if v}}


def rollups_of(shards: Iterable[Mapping[str, Any]]) -> dict[str, Doc]:
    """The roll-ups of whole shards (a rebuild's, a month-close copy's): their counters
    summed, each partition at its shard's offset."""
    found: dict[str, Doc] = {}
    for shard in shards:
        cell, topic, partition = split_shard_id(shard["_id"])
        rid = rollup_id(cell, topic)
        doc = found.setdefault(rid, {"_id": rid, "offsets": {}, "counters": {}})
        doc["offsets"][str(partition)] = shard["applied_offset"]
        for slice_, values in shard["counters"].items():
            slot = doc["counters"].setdefault(slice_, {})
            for counter, value in values.items():
                slot[counter] = slot.get(counter, 0) + value
    for doc in found.values():  # as merge_rollup leaves them: no zeros, no empty slices
        doc["counters"] = {s: kept for s, v in doc["counters"].items() if (kept := {k: n for k, n in v.items() if n})}
    return found


def counters_only(docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Roll-ups by _id, without their offsets (what two generations must agree on)."""
    return {d["_id"]: d["counters"] for d in docs if d.get("counters")}
