"""Roll-ups on the real FerretDB: the writers of every partition of a topic, on several
replicas at once and each twice (a redelivery), all count exactly once in the one
document they share."""

from __future__ import annotations

import asyncio

import pytest
from crm_runtime.mongo import create_client
from crm_runtime.testing import unique_suffix
from reporting.adapters.store import Generation
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
