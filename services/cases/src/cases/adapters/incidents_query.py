"""Reading collective incidents for staff: one by `_id`, and a region's incidents of a month
from one index document, with the cases each groups, each read by `_id`.

The incident documents are `IncidentRepository`'s (adapters/store.py); this module only
reads them. Listing them would be a scan of the collection on FerretDB 1.x (only `{_id: x}`
uses an index), so `IndexedIncidents` wraps the repository and, after each upsert, files a
summary of the incident under `<region>|<YYYY-MM>` of its window's start. A crash between
the two writes is healed by the redelivered contact, which upserts the incident again.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Protocol

from crm_runtime.outbox import OutgoingEvent
from crm_runtime.rmw import update_document
from pymongo.asynchronous.database import AsyncDatabase

from cases.adapters.queue import ROW_FIELDS
from cases.adapters.store import CASES, INCIDENTS

INDEX = "incidents_by_region"
SUMMARY_FIELDS = ("region", "project", "building", "category", "severity", "customer_count", "window_start",
                  "window_end", "updated_at")
MAX_CASES = 500  # an incident page lists at most this many of its cases
READS_AT_ONCE = 16


class IncidentWriter(Protocol):
    async def upsert(self, incident: dict[str, Any], events: list[OutgoingEvent]) -> None: ...


def month_of(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m")


def summary(incident: dict[str, Any]) -> dict[str, Any]:
    return {"incident_id": incident["_id"], **{k: incident.get(k) for k in SUMMARY_FIELDS},
            "case_count": len(incident.get("case_ids") or [])}


def filed(index: dict[str, Any] | None, entry: dict[str, Any]) -> dict[str, Any] | None:
    """The index document's incidents with `entry` in, or None when it knows a newer one."""
    incidents = dict((index or {}).get("incidents") or {})
    known = incidents.get(entry["incident_id"])
    if known is not None and known.get("updated_at") and known["updated_at"] >= entry["updated_at"]:
        return None
    incidents[entry["incident_id"]] = entry
    return {"incidents": incidents}


class IndexedIncidents:
    """The incident store of the handlers, plus the index the staff list reads."""

    def __init__(self, inner: IncidentWriter, db: AsyncDatabase[dict[str, Any]]):
        self.inner = inner
        self.index = db[INDEX]

    async def upsert(self, incident: dict[str, Any], events: list[OutgoingEvent]) -> None:
        entry = summary(incident)  # before the repository takes `_id` out of the dict
        await self.inner.upsert(incident, events)
        await update_document(self.index, f"{entry['region']}|{month_of(entry['window_start'])}",
                              lambda doc: filed(doc, entry), attempts=50)


class IncidentQuery:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]):
        self.incidents = db[INCIDENTS]
        self.index = db[INDEX]
        self.cases = db[CASES]

    async def get(self, incident_id: str) -> dict[str, Any] | None:
        return await self.incidents.find_one({"_id": incident_id}, {"outbox": 0})

    async def listed(self, regions: list[str], months: list[str]) -> list[dict[str, Any]]:
        """Summaries of the regions' incidents that started in `months`, newest first."""
        docs = await asyncio.gather(*(self.index.find_one({"_id": f"{r}|{m}"}) for r in regions for m in months))
        entries = [e for d in docs if d for e in (d.get("incidents") or {}).values()]
        return sorted(entries, key=lambda e: (e.get("updated_at") or datetime.min.replace(tzinfo=UTC),
                                              e["incident_id"]), reverse=True)

    async def grouped_cases(self, case_ids: list[str]) -> list[dict[str, Any]]:
        """The cases an incident groups, open or closed, as queue rows (status included)."""
        gate = asyncio.Semaphore(READS_AT_ONCE)
        projection = dict.fromkeys((*ROW_FIELDS, "is_open"), 1)

        async def one(case_id: str) -> dict[str, Any] | None:
            async with gate:
                return await self.cases.find_one({"_id": case_id}, projection)

        found = await asyncio.gather(*(one(c) for c in case_ids[:MAX_CASES]))
        return [d for d in found if d is not None]
