"""The staff's list of contacts that opened no case (consultations, suggestions, praise,
unclassified), readable by `_id` only, as the case queue is (see queue.py).

FerretDB 1.x pushes down no filter but `{_id: x}`, so a listing must not read the
contacts collection. Instead each contact that opened no case has a row in one bucket
document per region, status and day it was received, `<region>|<status>|<YYYY-MM-DD>`,
and each region and status a document listing its days, `days:<region>|<status>`. A page
reads the day lists of the regions asked for, then bucket after bucket until it is full:
unanswered first and oldest first (they have waited longest), then answered and those
that became cases, newest first. A bucket holds a day's contacts of one region: tens to
hundreds of small rows, never the body.

A row moves one way (unanswered -> answered or case_opened): it is written into its new
bucket first and removed from the old one after, so a crash in between leaves it listed
twice, never lost; the next action on that contact (answering again, opening a case)
finishes the move. A page that finds a bucket empty unlists its day (`_prune`), so the
unanswered list reads only the days that still hold work.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from crm_runtime.revisions import REV, write_revision
from crm_runtime.rmw import read_modify_write, update_document
from pymongo.asynchronous.database import AsyncDatabase

from cases.domain.contacts import Answer, WorkItem, WorkStatus, shown_kind

WORKLIST = "contact_worklist"
ROW_FIELDS = ("contact_id", "region", "status", "kind", "kind_hint", "kind_confidence", "channel", "subject",
              "customer_id", "project", "building", "unit", "received_at", "answered_at", "answered_by", "case_id")
NEWEST_FIRST = frozenset({WorkStatus.ANSWERED.value, WorkStatus.CASE_OPENED.value})


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _stored(value: Any) -> Any:
    """A datetime as MongoDB gives it back: naive UTC, in milliseconds."""
    if not isinstance(value, datetime):
        return value
    value = _utc(value)
    return value.replace(tzinfo=None, microsecond=value.microsecond // 1000 * 1000)


def work_item(doc: dict[str, Any]) -> WorkItem:
    """The contact document as the domain's work item."""
    answer = doc.get("answer")
    return WorkItem(
        contact_id=doc["_id"], region=doc["region"],
        # No status but a case: the contact opened or joined a case when it arrived.
        status=WorkStatus(doc.get("status") or (WorkStatus.CASE_OPENED if doc.get("case_id")
                                                else WorkStatus.UNANSWERED).value),
        answer=Answer(answer["text"], answer["by"], _utc(answer["at"])) if answer else None,
        case_id=doc.get("case_id"))


def work_fields(item: WorkItem) -> dict[str, Any]:
    """What a work item changes on the contact document."""
    answer = item.answer
    return {"status": item.status.value, "case_id": item.case_id,
            "answer": {"text": answer.text, "by": answer.by, "at": answer.at} if answer else None}


def worklist_row(doc: dict[str, Any]) -> dict[str, Any]:
    """The contact's row in the list (what staff see before opening it)."""
    answer = doc.get("answer") or {}
    row = {k: doc.get(k) for k in ROW_FIELDS}
    row.update(contact_id=doc["_id"], status=doc.get("status") or WorkStatus.UNANSWERED.value,
               kind=shown_kind(doc.get("kind_hint"), doc.get("kind_confidence")),
               answered_at=answer.get("at"), answered_by=answer.get("by"))
    return row


def sort_key(row: dict[str, Any]) -> tuple[int, float, str]:
    """The list's order, also its cursor: status, then time (oldest first while unanswered,
    newest first after), then id."""
    seconds = _utc(row["received_at"]).timestamp()
    status = WorkStatus(row["status"])
    return status.rank, -seconds if status.value in NEWEST_FIRST else seconds, row["contact_id"]


class ContactWorklist:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]):
        self.collection = db[WORKLIST]

    @staticmethod
    def _bucket(region: str, status: str, day: date | str) -> str:
        return f"{region}|{status}|{day if isinstance(day, str) else day.isoformat()}"

    async def place(self, row: dict[str, Any], previous: Iterable[str] = ()) -> None:
        """List the row under its status (and day), then take it out of the lists of the
        `previous` statuses it may still be in."""
        row = {k: _stored(v) for k, v in row.items()}  # as it reads back, so a repeat is a no-op
        region, status, contact_id = row["region"], row["status"], row["contact_id"]
        day = _utc(row["received_at"]).date().isoformat()

        def put(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            rows = (doc or {}).get("rows", {})
            return None if rows.get(contact_id) == row else {"rows": {**rows, contact_id: row}}

        def list_day(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            # Written even when the day is listed: the new revision makes a prune that saw
            # this bucket empty a moment ago fail and look again (see `_prune`).
            return {"days": sorted({*(doc or {}).get("days", []), day}), "touched": contact_id}

        def take_out(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            rows = (doc or {}).get("rows", {})
            return {"rows": {k: v for k, v in rows.items() if k != contact_id}} if contact_id in rows else None

        await update_document(self.collection, self._bucket(region, status, day), put)
        await update_document(self.collection, f"days:{region}|{status}", list_day)
        for old in previous:
            if old != status:
                await update_document(self.collection, self._bucket(region, old, day), take_out)

    async def page(self, *, regions: list[str], statuses: list[str], kind: str | None,
                   after: tuple[Any, ...] | None, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` rows after the cursor `after` (a `sort_key`), in the list's order."""
        out: list[dict[str, Any]] = []
        for status in sorted(statuses, key=lambda s: WorkStatus(s).rank):
            rank = WorkStatus(status).rank
            if after is not None and rank < after[0]:
                continue
            newest_first = status in NEWEST_FIRST
            days: dict[str, list[str]] = {}
            for region in regions:
                doc = await self.collection.find_one({"_id": f"days:{region}|{status}"})
                for day in (doc or {}).get("days", []):
                    days.setdefault(day, []).append(region)
            cursor_day = None
            if after is not None and rank == after[0]:
                seconds = -after[1] if newest_first else after[1]
                cursor_day = datetime.fromtimestamp(seconds, UTC).date().isoformat()
            for day in sorted(days, reverse=newest_first):
                if cursor_day is not None and (day > cursor_day if newest_first else day < cursor_day):
                    continue
                rows: list[dict[str, Any]] = []
                for region in days[day]:
                    bucket = await self.collection.find_one({"_id": self._bucket(region, status, day)})
                    if not (bucket or {}).get("rows"):
                        await self._prune(region, status, day)
                    rows += [r for r in (bucket or {}).get("rows", {}).values()
                             if (kind is None or r.get("kind") == kind)
                             and (after is None or sort_key(r) > tuple(after))]
                out += sorted(rows, key=sort_key)
                if len(out) >= limit:
                    return out[:limit]
        return out[:limit]

    async def _prune(self, region: str, status: str, day: str) -> None:
        """Unlist a day whose bucket is empty (every contact of it answered), so pages do not
        read it again. The day list is read before the bucket and written at its revision,
        and `place` writes the list after the bucket: a contact placed meanwhile either
        makes this write fail (and the bucket is read again) or lists the day again."""
        days_id, bucket_id = f"days:{region}|{status}", self._bucket(region, status, day)

        async def load() -> tuple[tuple[list[str], bool], int] | None:
            days = await self.collection.find_one({"_id": days_id})
            if days is None:
                return None
            bucket = await self.collection.find_one({"_id": bucket_id})
            return (list(days.get("days", [])), bool((bucket or {}).get("rows"))), int(days.get(REV, 0))

        async def save(days: list[str], rev: int | None) -> None:
            await write_revision(self.collection, days_id, rev or 0, {"$set": {"days": days}})

        def unlist(state: tuple[list[str], bool] | None) -> list[str] | None:
            if state is None or state[1] or day not in state[0]:
                return None
            return [d for d in state[0] if d != day]

        await read_modify_write(load, save, unlist, what=days_id)
