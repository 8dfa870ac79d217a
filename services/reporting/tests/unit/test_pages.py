"""Pages of entities: what is packed comes back unchanged, and pages stay small."""

from __future__ import annotations

from reporting.adapters import pages


def test_a_page_gives_back_its_entities_unchanged():
    entities = {f"crm.cases.cases.v1|案件-{i}": {"_id": f"crm.cases.cases.v1|案件-{i}", "applied_offset": i,
                                                  "facts": {"region": "shenzhen", "项目": "一期", "n": [i, None]},
                                                  "applied_ids": [f"e{i}"]} for i in range(40)}
    stored = pages.pack("p", entities)
    assert pages.unpack(stored) == entities
    assert len(stored["z"]) < len(str(entities)) / 4  # compressed


def test_an_entity_always_lands_on_one_page_of_its_partition():
    home = ("crm.cases.cases.v1", 3)
    pid = pages.page_id("crm.cases.cases.v1|c-1", home, 64)
    assert pid == pages.page_id("crm.cases.cases.v1|c-1", home, 64)
    assert pid.startswith("crm.cases.cases.v1|3|")
    spread = {pages.page_id(f"crm.cases.cases.v1|c-{i}", home, 64) for i in range(2000)}
    assert len(spread) == 64


def test_a_rebuild_sizes_its_pages_for_about_sixteen_entities():
    assert pages.buckets_for(0) == pages.MIN_BUCKETS
    assert pages.buckets_for(64_000) == 4096
    assert pages.buckets_for(10**9) == pages.MAX_BUCKETS
