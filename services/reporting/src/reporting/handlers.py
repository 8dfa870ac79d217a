"""Reporting's use cases: apply a batch of events to the read models; answer KPI, report
and drill-down queries from them. Storage stays behind `adapters.store`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crm_contracts import topics

from reporting.adapters.buffer import BufferedGeneration
from reporting.adapters.store import Generation, SnapshotView
from reporting.domain import kpis
from reporting.domain.apply import Record, effect_of, entity_id, merge_ids, merge_shard, sum_counters
from reporting.domain.cells import ALL, clean, gauge_cell, month_cell, previous_month, shard_id, year_cell
from reporting.domain.rebuild import apply_in_memory
from reporting.domain.rollups import by_rollup, rollup_id

MONTH_TOPICS = (topics.INTAKE_CONTACTS, topics.CASES_CASES, topics.SURVEYS_SURVEYS,
                topics.NOTIFICATIONS_DELIVERIES, topics.PARTNER_REPAIRS, topics.PARTNER_SALES,
                topics.PARTNER_PROJECTS, topics.PARTNER_HOTLINE, topics.PARTNER_FORUM)
YEAR_TOPICS = (topics.SURVEYS_SURVEYS,)
GAUGE_TOPICS = (topics.PARTNER_UNITS, topics.PARTNER_REPAIRS, topics.PARTNER_CUSTOMERS)
# The topics whose counters the KPIs use: a KPI query reads only their shards.
KPI_MONTH_TOPICS = (topics.INTAKE_CONTACTS, topics.CASES_CASES, topics.SURVEYS_SURVEYS, topics.PARTNER_REPAIRS)
KPI_GAUGE_TOPICS = (topics.PARTNER_UNITS, topics.PARTNER_REPAIRS)
REGION_GAUGE_TOPICS = (topics.PARTNER_UNITS,)  # repairs count in their project's gauge only


Source = Generation | SnapshotView  # the live read models, or a month-close copy of them

# -------------------------------------------------------------------------------- write


async def apply_batch(gen: Generation, records: list[Record]) -> int:
    """Apply one batch: entities read, contributions summed in memory, shards then ids
    then entities written in a few bulk commands. Returns the shards written."""
    await gen.note_partitions({(r.topic, r.partition) for r in records})
    homes = entity_homes(records)
    states, held = await gen.read_entities(homes)
    effect = effect_of(records, states)
    if not effect.entities:
        return 0
    shard_ids = list(effect.shards)
    shards, ids = await asyncio.gather(gen.read(gen.shards, shard_ids), gen.read(gen.ids, shard_ids))
    new_shards = [d for sid in shard_ids if (d := merge_shard(shards.get(sid), sid, effect.shards[sid]))]
    new_ids = [d for sid in shard_ids if (d := merge_ids(ids.get(sid), sid, effect.shards[sid]))]
    # Roll-ups take the same contributions by the same offsets as the shards, so they need
    # no order between them; both come before the entities.
    await asyncio.gather(gen.write(gen.shards, new_shards, new=set(shard_ids) - shards.keys()),
                         gen.write(gen.ids, new_ids, new=set(shard_ids) - ids.keys()),
                         gen.update_rollups(by_rollup(effect.shards)) if await gen.writes_rollups()
                         else asyncio.sleep(0))
    await gen.write_entities(effect.entities, homes, held)
    return len(new_shards)


def entity_homes(records: list[Record]) -> dict[str, tuple[str, int]]:
    """Each record's entity id -> its topic and partition (where its page is)."""
    return {entity_id(r.topic, r.event.subject): (r.topic, r.partition) for r in records}


async def apply_replay(gen: BufferedGeneration, records: list[Record]) -> None:
    """A batch of a replay: in memory (entities stored only once it has caught up) while
    the generation is fresh; like a live batch once it shares partitions with others."""
    if not gen.fresh:
        await apply_batch(gen, records)  # type: ignore[arg-type]  # the same read/write shape
        return
    await gen.note_partitions({(r.topic, r.partition) for r in records})
    gen.load_entities(entity_homes(records))
    apply_in_memory(records, gen.cache[gen.entities], gen.cache[gen.shards], gen.cache[gen.ids], gen.changed,
                    gen.marks)


# --------------------------------------------------------------------------------- read


@dataclass(frozen=True)
class Scope:
    region: str
    month: str
    project: str | None = None
    department: str | None = None

    @property
    def slice(self) -> str:
        return clean(self.department) if self.department else ALL


async def cell_shards(gen: Source, cell: str, feeding: tuple[str, ...]) -> list[dict[str, Any]]:
    """A cell's counters of the topics feeding it: a roll-up per topic (every partition
    summed), or in a generation written without roll-ups every shard (one per source
    partition), read by _id."""
    if await gen.reads_rollups():
        ids = [rollup_id(cell, t) for t in feeding]
        return list((await gen.read(gen.rollups, ids, cached=True)).values())
    partitions = await gen.source_partitions()
    ids = [shard_id(cell, t, p) for t in feeding for p in partitions.get(t, ())]
    return list((await gen.read(gen.shards, ids, cached=True)).values())


async def counters(gen: Source, cell: str, feeding: tuple[str, ...], slice_: str = ALL) -> dict[str, int]:
    return sum_counters(await cell_shards(gen, cell, feeding), slice_)


async def kpi_inputs(gen: Source, scope: Scope) -> tuple[kpis.Inputs, list[dict[str, Any]]]:
    """What the KPIs of one scope are computed from; also the month cell's shards (every
    department's slice, for the monthly report)."""
    region, project = scope.region, scope.project
    month_docs, year, region_gauge = await asyncio.gather(
        cell_shards(gen, month_cell(region, scope.month, project), KPI_MONTH_TOPICS),
        counters(gen, year_cell(region, scope.month[:4], project), YEAR_TOPICS, scope.slice),
        counters(gen, gauge_cell(region, project), KPI_GAUGE_TOPICS if project else REGION_GAUGE_TOPICS))
    if project:  # the scope's gauge is the project's own
        per_project = {project: region_gauge}
    else:
        projects = [k.removeprefix("projects:") for k in region_gauge if k.startswith("projects:")]
        gauges = await asyncio.gather(*(counters(gen, gauge_cell(region, p), KPI_GAUGE_TOPICS) for p in projects))
        per_project = dict(zip(projects, gauges, strict=True))
    inputs = kpis.Inputs(month=sum_counters(month_docs, scope.slice), year=year,
                         households_halves=region_gauge.get("households:moved_in_halves", 0),
                         projects=per_project)
    return inputs, month_docs


async def kpi_report(gen: Source, scope: Scope, targets: Mapping[str, kpis.Target]) -> dict[str, Any]:
    inputs, _ = await kpi_inputs(gen, scope)
    return {"region": scope.region, "month": scope.month, "project": scope.project,
            "department": scope.department, "generation": gen.name,
            "kpis": kpis.compute(inputs, targets)}


def department_rows(month_docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reply timeliness and workload per department, from every slice of the month cell."""
    slices = {s for d in month_docs for s in d.get("counters", {}) if s != ALL}
    rows = []
    for dept in sorted(slices):
        c = sum_counters(month_docs, dept)
        replied, closed = c.get("reply:cases", 0), c.get("close:count", 0)
        rows.append({
            "department": dept, "opened": c.get("cases:opened", 0), "closed": closed,
            "replied_cases": replied, "timely": c.get("reply:timely", 0),
            "timeliness": c.get("reply:timely", 0) / replied if replied else None,
            "sla_breaches": c.get("sla:breaches", 0),
            "avg_close_hours": round(c.get("sum:close_minutes", 0) / closed / 60, 2) if closed else None})
    return rows


async def monthly_complaints(gen: Source, scope: Scope, targets: Mapping[str, kpis.Target]) -> dict[str, Any]:
    """The complaint monthly report (投诉月报): one section per table."""
    inputs, month_docs = await kpi_inputs(gen, scope)
    rows = kpis.compute(inputs, targets)
    by = {r["kpi"]: r for r in rows}
    m = inputs.month
    mix = by["channel_mix"]
    return {
        "region": scope.region, "month": scope.month, "generation": gen.name,
        "summary": [{"kpi": r["kpi"], "name_zh": r["name"]["zh-CN"], "name_en": r["name"]["en"],
                     "value": r["value"], "target": r["target"], "comparison": r["comparison"], "met": r["met"],
                     "count": r["count"], "base": r["base"]}
                    for r in rows if r["unit"] not in ("shares", "pareto")],
        "channels": [{"channel": c, "contacts": mix["counts"][c], "share": mix["shares"][c],
                      "reference": kpis.CHANNEL_REFERENCE[c]} for c in kpis.CHANNEL_REFERENCE],
        "departments": department_rows(month_docs),
        "categories": [{"category": k, "cases": v} for k, v in sorted(by["cases_opened"]["by_category"].items())],
        "severities": [{"severity": k, "cases": v} for k, v in sorted(by["cases_opened"]["by_severity"].items())],
        "statuses": [{"status": k, "cases": v} for k, v in sorted(by["cases_opened"]["by_status"].items())],
        "sla_breaches": [{"clock": k, "breaches": v} for k, v in sorted(by["sla_breaches"]["by_clock"].items())],
        "satisfaction": [
            {"survey_kind": k, "completed": m.get(f"surveys:{k}:completed", 0),
             "satisfied_share": _share(m, f"surveys:{k}:satisfied", f"surveys:{k}:completed"),
             "dissatisfied_share": _share(m, f"surveys:{k}:dissatisfied", f"surveys:{k}:completed")}
            for k in kpis.SURVEY_KINDS],
        "root_causes": by["lessons_pareto"]["pareto"],
    }


def _share(m: Mapping[str, int], part: str, base: str) -> float | None:
    return m.get(part, 0) / m[base] if m.get(base) else None


async def drill(gen: Source, scope: Scope, counter: str) -> dict[str, Any]:
    """The ids (cases, contacts, surveys, work orders ...) behind one counter of a scope."""
    feeding: tuple[str, ...]
    if counter.startswith("annual:"):
        cell, feeding = year_cell(scope.region, scope.month[:4], scope.project), YEAR_TOPICS
    else:
        cell, feeding = month_cell(scope.region, scope.month, scope.project), MONTH_TOPICS
    partitions = await gen.source_partitions()
    sids = [shard_id(cell, t, p) for t in feeding for p in partitions.get(t, ())]
    docs = await gen.read(gen.ids, sids, cached=True)
    found: list[str] = []
    for doc in docs.values():
        found.extend((doc.get("ids", {}).get(scope.slice) or {}).get(counter, []))
    total = (await counters(gen, cell, feeding, scope.slice)).get(counter, 0)
    return {"counter": counter, "count": total, "ids": sorted(set(found)), "complete": len(set(found)) >= total}


# --------------------------------------------------------------------------- month close


def snapshot_id(region: str, month: str) -> str:
    return f"{region}|{month}"


async def close_month(gen: Generation, region: str, month: str, closed_by: str) -> dict[str, Any]:
    """Copy the month's cells (every department's slice, the region and each known
    project), its year cell and the gauges, with the offsets they reflect: "as reported at
    month close" stays answerable after late events restate the month."""
    partitions = await gen.source_partitions(max_age_s=0)
    region_gauge = await counters(gen, gauge_cell(region), GAUGE_TOPICS)
    projects = [k.removeprefix("projects:") for k in region_gauge if k.startswith("projects:")]
    cells = [(month_cell(region, month), MONTH_TOPICS), (year_cell(region, month[:4]), YEAR_TOPICS),
             (gauge_cell(region), GAUGE_TOPICS)]
    for project in projects:
        cells += [(month_cell(region, month, project), MONTH_TOPICS),
                  (year_cell(region, month[:4], project), YEAR_TOPICS), (gauge_cell(region, project), GAUGE_TOPICS)]
    sids = [shard_id(cell, t, p) for cell, feeding in cells for t in feeding for p in partitions.get(t, ())]
    shards, ids = await asyncio.gather(gen.read(gen.shards, sids), gen.read(gen.ids, sids))
    offsets: dict[tuple[str, int], int] = {(t, p): -1 for t, ps in partitions.items() for p in ps}
    for sid, doc in shards.items():
        topic, partition = sid.split("|")[-2:]  # <cell>|<topic>|<partition>
        offsets[(topic, int(partition))] = max(offsets.get((topic, int(partition)), -1), doc["applied_offset"])
    # Lists, not maps keyed by shard: topic names hold dots, which field names may not.
    return {"_id": snapshot_id(region, month), "region": region, "month": month, "generation": gen.name,
            "closed_at": datetime.now(UTC).isoformat(), "closed_by": closed_by,
            "offsets": [{"topic": t, "partition": p, "offset": o} for (t, p), o in sorted(offsets.items())],
            "shards": list(shards.values()), "ids": list(ids.values())}


def months_between(first: str, last: str) -> list[str]:
    months, month = [], last
    while month >= first:
        months.append(month)
        month = previous_month(month)
    return months[::-1]


async def channel_stats(gen: Source, region: str, first: str, last: str) -> dict[str, Any]:
    """Intake's channel statistics as counters: contacts per channel over whole months."""
    months = months_between(first, last)
    cells = await asyncio.gather(*(counters(gen, month_cell(region, m), (topics.INTAKE_CONTACTS,)) for m in months))
    counts = {c: sum(cell.get(f"contacts:channel:{c}", 0) for cell in cells) for c in kpis.CHANNEL_REFERENCE}
    total = sum(counts.values())
    return {"region": region, "from_month": first, "to_month": last, "total": total,
            "channels": [{"channel": c, "count": n, "share": round(n / total, 4) if total else 0.0,
                          "reference": kpis.CHANNEL_REFERENCE[c]} for c, n in counts.items()]}
