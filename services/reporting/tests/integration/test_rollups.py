"""Roll-ups on the real FerretDB: the writers of every partition of a topic, on several
replicas at once and each twice (a redelivery), all count exactly once in the one
document they share."""

from __future__ import annotations

import asyncio

import pytest
from crm_runtime.mongo import create_client
from crm_runtime.testing import unique_suffix
from reporting.adapters.store import Generation, decode
from reporting.domain.apply import Contribution
from reporting.domain.cells import ALL, month_cell
from reporting.domain.rollups import rollup_id

pytestmark = pytest.mark.stack


async def test_every_partitions_writer_counts_once_in_the_shared_rollup(stack):
    mongo = create_client(stack.mongodb_url, app_name="reporting-tests")
    db = mongo[f"crm_reporting{unique_suffix()}"]
    try:
        replicas = [Generation(db, "g1") for _ in range(3)]  # three processes' views of one generation
        await replicas[0].start_rollups()
        rid = rollup_id(month_cell("shenzhen", "2019-05"), "crm.cases.cases.v1")

        def opened(partition: int, offset: int) -> dict:
            return {rid: [(partition, [Contribution(offset, ALL, "cases:opened", 1, f"c{partition}", "add")])]}

        writes = [replicas[p % 3].update_rollups(opened(p, 10 + p)) for p in range(6)]
        writes += [replicas[(p + 1) % 3].update_rollups(opened(p, 10 + p)) for p in range(6)]  # redelivered
        await asyncio.gather(*writes)
        await replicas[0].update_rollups(opened(2, 30))  # partition 2's next record
        doc = (await replicas[1].read(replicas[1].rollups, [rid]))[rid]
        assert doc["counters"] == {ALL: {"cases:opened": 7}}
        assert doc["offsets"] == {"0": 10, "1": 11, "2": 30, "3": 13, "4": 14, "5": 15}
    finally:
        await mongo.close()


async def test_a_flush_that_fails_leaves_its_documents_to_the_next_flush(stack):
    """A follower whose store fails mid-flush must not stop (and commit its offsets) with
    shards never written: what the failed flush took is written by the next one."""
    from reporting.adapters.buffer import BufferedGeneration

    mongo = create_client(stack.mongodb_url, app_name="reporting-tests")
    db = mongo[f"crm_reporting{unique_suffix()}"]
    try:
        gen = Generation(db, "g1")
        buffer = BufferedGeneration(gen, fresh=False)
        sid = "shard-of-a-test|crm.cases.cases.v1|0"
        await buffer.write(buffer.shards, [{"_id": sid, "applied_offset": 7, "counters": {ALL: {"cases:opened": 3}}}])
        real_write, failures = gen.write, [RuntimeError("the store went away")]

        async def failing_once(collection, docs, **kw):
            if failures and collection.name == gen.shards.name:
                raise failures.pop()
            await real_write(collection, docs, **kw)

        gen.write = failing_once  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            await buffer.flush()
        assert await gen.shards.find_one({"_id": sid}) is None
        await buffer.flush()  # e.g. the stop before the commit
        stored = decode(await gen.shards.find_one({"_id": sid}))
        assert stored is not None
        assert stored["applied_offset"] == 7 and stored["counters"] == {ALL: {"cases:opened": 3}}
    finally:
        await mongo.close()
