"""How collective facts are kept: one bucket per matter and day, each fact packed in one
string, and which buckets of days that have not begun exist.

Packed: FerretDB's cost of reading or rewriting a document grows with the values in it; a
bucket of 25 facts as nested documents cost 3 ms a read and 4 ms an update, the same facts
as 25 strings a third of that and half (measured on the embedded store, 400 buckets).
Buckets written before (`facts`, a list of documents) are still read, and rewritten packed.

Days not begun:

Detection reads a matter's buckets of the day before, the day and the day after a contact
(its window is 24 h either side), one read per matter and day, since FerretDB answers an
`$in` by reading the whole collection. The day after is almost always empty: only a
contact stamped in the future (a partner's clock ahead) is filed there. So a writer that
files a fact under a day that has not begun lists its bucket here first, and a reader reads
a bucket of such a day only if it is listed: one read per batch instead of one per matter.
The margins keep it right with clocks an hour apart; a listed day that has begun long since
is dropped at the next listing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from crm_runtime.rmw import update_document
from pymongo.asynchronous.collection import AsyncCollection

FIELDS = ("_id", "received_at", "project", "category", "building", "customer_id", "channel", "mentions_media",
          "case_id")
FUTURE = "~future-days"  # a document of the facts collection (a bucket id has a `|`)
CLOCK_MARGIN = timedelta(hours=1)


def day_of(bucket_id: str) -> date:
    return date.fromisoformat(bucket_id.rsplit("|", 1)[1])


def not_begun(bucket_id: str, now: datetime) -> bool:
    """For a reader: a bucket of a day after today, even on a clock an hour ahead."""
    return day_of(bucket_id) > (now + CLOCK_MARGIN).astimezone(UTC).date()


def to_list(bucket_id: str, now: datetime) -> bool:
    """For a writer: a bucket some reader may take for one of a day not begun."""
    return day_of(bucket_id) > (now - CLOCK_MARGIN).astimezone(UTC).date()


async def list_future(facts: AsyncCollection[dict[str, Any]], bucket_ids: Iterable[str]) -> None:
    """List buckets of days not begun, before their facts are filed."""
    now = datetime.now(UTC)
    new = {b for b in bucket_ids if to_list(b, now)}
    if not new:
        return

    def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        listed = set((doc or {}).get("buckets", []))
        if new <= listed:
            return None
        keep = {b for b in listed if day_of(b) >= (now - timedelta(days=2)).date()}
        return {"buckets": sorted(keep | new)}

    await update_document(facts, FUTURE, change, attempts=50)


async def readable(facts: AsyncCollection[dict[str, Any]], bucket_ids: Iterable[str]) -> list[str]:
    """The buckets worth reading: all of days begun, those listed of the others."""
    now = datetime.now(UTC)
    wanted = list(bucket_ids)
    ahead = {b for b in wanted if not_begun(b, now)}
    if ahead:
        listed = set((await facts.find_one({"_id": FUTURE}) or {}).get("buckets", []))
        ahead -= listed
    return [b for b in wanted if b not in ahead]


def pack(fact: Mapping[str, Any]) -> str:
    values = [fact.get(k) for k in FIELDS]
    values[1] = fact["received_at"].astimezone(UTC).isoformat()
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


def bucket_facts(bucket: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The bucket's facts as documents (`FIELDS`), packed or written before packing."""
    out = [dict(f) for f in (bucket or {}).get("facts", [])]
    for packed in (bucket or {}).get("packed", []):
        fact = dict(zip(FIELDS, json.loads(packed), strict=True))
        fact["received_at"] = datetime.fromisoformat(fact["received_at"])
        out.append(fact)
    return out


def with_facts(bucket: Mapping[str, Any] | None, new: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The fields to set: the bucket's facts with `new` (a fact filed again replaces itself)."""
    ids = {f["_id"] for f in new}
    kept = [f for f in bucket_facts(bucket) if f["_id"] not in ids]
    return {"packed": [pack(f) for f in [*kept, *new]], "facts": []}
