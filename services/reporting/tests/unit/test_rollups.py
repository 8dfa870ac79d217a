"""Roll-ups: a cell's topic summed over its partitions equals the sum of its shards,
whatever order the partitions' writers come in and however batches are redelivered."""

from __future__ import annotations

from datetime import timedelta

from reporting.domain.apply import effect_of, merge_shard, sum_counters
from reporting.domain.cells import ALL, month_cell
from reporting.domain.rollups import by_rollup, merge_rollup, rollup_id, rollups_of

from .test_apply import T0, Log, case_event


def two_partitions() -> tuple[Log, Log]:
    a, b = Log(partition=0), Log(partition=1)
    for log, case in ((a, "c1"), (b, "c2")):
        log.add(*case_event("opened", 1, T0, case_id=case, channel="letter", project="P1"), subject=case)
        log.add(*case_event("closed", 2, T0 + timedelta(hours=30), case_id=case, status="closed",
                            outcome="resolved"), subject=case)
    return a, b


class Writer:
    """The live path of one partition: entities, shards and the shared roll-ups."""

    def __init__(self, rollups: dict, shards: dict):
        self.entities: dict = {}
        self.rollups, self.shards = rollups, shards

    def apply(self, records, *, crash_before_entities: bool = False) -> None:
        effect = effect_of(records, self.entities)
        for sid, contributions in effect.shards.items():
            if merged := merge_shard(self.shards.get(sid), sid, contributions):
                self.shards[sid] = merged
        for rid, parts in by_rollup(effect.shards).items():
            if merged := merge_rollup(self.rollups.get(rid), rid, parts):
                self.rollups[rid] = merged
        if not crash_before_entities:
            self.entities.update(effect.entities)


def test_a_rollup_is_the_sum_of_its_shards_and_a_redelivery_counts_once():
    a, b = two_partitions()
    rollups, shards = {}, {}
    first, second = Writer(rollups, shards), Writer(rollups, shards)
    first.apply(a.records[:1], crash_before_entities=True)  # stored, not committed: read again
    second.apply(b.records)
    first.apply(a.records)
    first.apply(a.records[1:])  # and the second record once more
    march = rollups[rollup_id(month_cell("shenzhen", "2026-03"), a.topic)]
    assert march["offsets"] == {"0": 1, "1": 1}
    assert sum_counters([march], ALL)["cases:opened"] == 2
    assert {rid: d["counters"] for rid, d in rollups_of(shards.values()).items()} == {
        rid: d["counters"] for rid, d in rollups.items()}


def test_the_partitions_writers_may_come_in_any_order():
    a, b = two_partitions()
    one, other = {}, {}
    Writer(one, {}).apply(a.records)
    Writer(one, {}).apply(b.records)
    Writer(other, {}).apply(b.records)
    Writer(other, {}).apply(a.records[:1])
    Writer(other, {}).apply(a.records)  # the first record again, with the next
    assert one == other
    project = sum_counters([one[rollup_id(month_cell("shenzhen", "2026-03", "P1"), a.topic)]], ALL)
    assert project["cases:opened"] == 2
    assert merge_rollup(one[rollup_id(month_cell("shenzhen", "2026-03"), a.topic)], "x",
                        [(0, effect_of(a.records, {}).shards[f"{month_cell('shenzhen', '2026-03')}|{a.topic}|0"])]) \
        is None  # everything seen: nothing to write
