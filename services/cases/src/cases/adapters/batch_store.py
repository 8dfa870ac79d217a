"""The store side of a batch of contacts: every read and write of `on_contacts_received`
in a few commands per batch instead of a few dozen per contact.

Same documents as the single path (store.py, queue.py, worklist.py): only the number of
round trips changes. Reads go through `find_by_ids` (concurrent by `_id` on FerretDB,
`$in` on MongoDB); shared documents (queue buckets, work-list buckets, collective facts)
are written once per batch each, through revision claims (bulk.update_documents).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from crm_contracts.regions import case_number
from crm_runtime import known
from crm_runtime.batching import find_by_ids, group_by_key, insert_new, update_by_ids
from crm_runtime.leases import Timers
from crm_runtime.outbox import Outbox, OutgoingEvent
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from cases.adapters.bulk import READS, Change, insert_with_outbox, schedule_timers, update_documents
from cases.adapters.documents import case_from_doc
from cases.adapters.fact_buckets import FIELDS, bucket_facts, list_future, readable, with_facts
from cases.adapters.queue import (
    PART_ROWS,
    QUEUE,
    REPAIRS,
    Location,
    bucket_id,
    listed,
    location_of,
    parts_of,
    queue_row,
)
from cases.adapters.store import (
    ARRIVALS,
    CASE_NUMBERS,
    CASES,
    CONTACTS,
    COUNTERS,
    CUSTOMER_CASES,
    FACTS,
    _fact,
    case_document,
)
from cases.adapters.worklist import WORKLIST, _stored, _utc
from cases.domain.collective import ContactFact
from cases.domain.procedure import Case

# First sight of each contact (one tiny document per contact id): the contact itself is
# stored once it is handled, by an insert, instead of inserted first and rewritten last
# (an update on FerretDB rewrites the whole document: ~10x an insert).
# Contacts stored before arrivals were recorded have none: those received before this time
# (set on the first batch, if the database held contacts then) are looked up as before.
ARRIVALS_SINCE = "arrivals:since"
ROLLOUT = timedelta(hours=1)  # replicas of the version before may still store contacts meanwhile
NO_LEGACY = datetime(1970, 1, 1, tzinfo=UTC)


def fact_bucket(query_key: str, day: date) -> str:
    return f"{query_key}|{day.isoformat()}"


def days_between(since: datetime, until: datetime) -> list[date]:
    days, day = [], since.astimezone(UTC).date()
    while day <= until.astimezone(UTC).date():
        days.append(day)
        day += timedelta(days=1)
    return days


class ContactBatchStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], outbox: Outbox, timers: Timers):
        self.db = db
        self.outbox = outbox
        self.timers = timers
        self._arrivals_since: datetime | None = None

    # ------------------------------------------------------------------------ reads

    async def contacts(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        return await find_by_ids(self.db[CONTACTS], ids, {"handled": 1, "case_id": 1}, concurrency=READS)

    async def open_cases_of(self, customer_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """Each customer's open cases (region, category, project), as stored."""
        index = await find_by_ids(self.db[CUSTOMER_CASES], customer_ids, concurrency=READS)
        ids = [cid for doc in index.values() for cid in doc.get("case_ids", [])]
        found = await find_by_ids(self.db[CASES], ids, {"is_open": 1, "category": 1, "project": 1, "region": 1},
                                  concurrency=READS)
        return {customer: [found[cid] for cid in doc.get("case_ids", []) if cid in found and found[cid].get("is_open")]
                for customer, doc in index.items()}

    async def cases(self, case_ids: Iterable[str]) -> dict[str, Case]:
        docs = await find_by_ids(self.db[CASES], case_ids, {"outbox": 0}, concurrency=READS)
        return {cid: case_from_doc(doc) for cid, doc in docs.items()}

    async def fact_buckets(self, bucket_ids: Iterable[str], *, filing: Iterable[str] = ()
                           ) -> dict[str, dict[str, Any] | None]:
        """The buckets worth reading (of a day not begun, only those listed: see
        fact_buckets), None for one absent. Those of `filing` (the batch files facts under
        them) that this process wrote last are not read but taken as it wrote them
        (crm_runtime.known): a batch files most of its facts where the batch before did.
        Another replica's write since is caught by the revision claim in `add_facts`, and
        so only for buckets `add_facts` writes."""
        facts = self.db[FACTS]
        wanted = await readable(facts, bucket_ids)
        mine = known.recall(facts, set(filing).intersection(wanted))
        read = await find_by_ids(facts, [b for b in wanted if b not in mine], concurrency=READS)
        return {b: mine.get(b) or read.get(b) for b in wanted}

    @staticmethod
    def facts_of(buckets: Iterable[dict[str, Any] | None]) -> list[ContactFact]:
        return [_fact(f) for bucket in buckets for f in bucket_facts(bucket)]

    # ------------------------------------------------------------------------ writes

    async def record_arrivals(self, arrivals: Sequence[tuple[str, datetime]]) -> set[str]:
        """First sight of each (contact id, received at). Returns the contacts that may have
        been seen before: an arrival already recorded, or a contact old enough to have been
        stored before arrivals were (see ARRIVALS_SINCE)."""
        seen = await insert_new(self.db[ARRIVALS], [{"_id": cid} for cid, _ in arrivals])
        since = await self._legacy_before()
        return seen | {cid for cid, at in arrivals if _aware(at) < since}

    async def _legacy_before(self) -> datetime:
        if self._arrivals_since is None:
            counters = self.db[COUNTERS]
            doc = await counters.find_one({"_id": ARRIVALS_SINCE})
            if doc is None:
                held = await self.db[CONTACTS].find_one({}, {"_id": 1}) is not None
                mine = {"_id": ARRIVALS_SINCE, "at": datetime.now(UTC) + ROLLOUT if held else NO_LEGACY}
                lost = await insert_new(counters, [mine])  # two replicas at once: the first one's
                doc = await counters.find_one({"_id": ARRIVALS_SINCE}) if lost else mine
            at = (doc or {}).get("at")
            self._arrivals_since = _aware(at) if isinstance(at, datetime) else NO_LEGACY
        return self._arrivals_since

    async def numbers_for(self, wanted: Sequence[tuple[str, str, int]], *, may_have: Iterable[str] = ()
                          ) -> dict[str, str]:
        """A number for each (case id, region, year): the one it already has, else the next
        of its region and year, one counter claim per region and year for the whole batch.
        As in `CaseRepository.allocate_number`, the unique insert of the number decides
        (the counter's $inc is a hint on FerretDB); a number lost to a race is a gap.
        Only the cases of `may_have` (their contact was seen by an earlier delivery) are
        looked up first; another replica numbering a case at the same moment is caught
        when its `case:<id>` is inserted, and its number kept."""
        numbers = self.db[CASE_NUMBERS]
        held = await find_by_ids(numbers, [f"case:{cid}" for cid in may_have], concurrency=READS)
        out = {cid: str(held[f"case:{cid}"]["number"]) for cid, _, _ in wanted if f"case:{cid}" in held}
        pending = [w for w in wanted if w[0] not in out]
        while pending:
            claimed: dict[str, str] = {}
            for (region, year), group in group_by_key(pending, lambda w: (w[1], w[2])).items():
                counter = await self.db[COUNTERS].find_one_and_update(
                    {"_id": f"{region}:{year}"}, {"$inc": {"seq": len(group)}}, upsert=True,
                    return_document=ReturnDocument.AFTER)
                first = int(counter["seq"]) - len(group) + 1 if counter else 1
                claimed.update({cid: case_number(region, year, first + i) for i, (cid, _, _) in enumerate(group)})
            lost = await insert_new(numbers, [{"_id": n, "case_id": cid} for cid, n in claimed.items()])
            won = {cid: n for cid, n in claimed.items() if n not in lost}
            tied = await insert_new(numbers, [{"_id": f"case:{cid}", "number": n} for cid, n in won.items()])
            if tied:  # another delivery of the same contact numbered it meanwhile: keep that one
                theirs = await find_by_ids(numbers, tied, concurrency=READS)
                for key, doc in theirs.items():
                    cid = key.removeprefix("case:")
                    await numbers.delete_one({"_id": won.pop(cid), "case_id": cid})  # ours is a gap
                    out[cid] = str(doc["number"])
            out.update(won)
            pending = [w for w in pending if w[0] not in out]
        return out

    async def insert_cases(self, entries: Sequence[tuple[Case, list[OutgoingEvent]]], *,
                           listed: Mapping[str, Sequence[str]] | None = None) -> set[str]:
        """Store new cases with their events, list them in the staff queue and under their
        customer (unless `listed` there already: customer -> case ids). Returns the ids
        inserted now (the others existed: an earlier delivery, whose repair note re-queues
        them if it died before queueing)."""
        if not entries:
            return set()
        docs = {case.case_id: case_document(case) for case, _ in entries}
        now = datetime.now(UTC)
        # A note per case before it is written, as QueueIndex.note_repair (see queue.py).
        await insert_new(self.db[REPAIRS], [{"_id": f"{cid}@0", "case_id": cid, "rev": 0, "previous": None,
                                             "at": now} for cid in docs])
        loaded = await self._plan_queue(list(docs.values()))  # each case's part, before it is stored
        existed = await insert_with_outbox(self.outbox, self.db[CASES],
                                           [(docs[case.case_id], events) for case, events in entries])
        inserted = [doc for cid, doc in docs.items() if cid not in existed]
        await self._queue(inserted, loaded)
        if inserted:
            await self.db[REPAIRS].delete_many({"_id": {"$in": [f"{d['_id']}@0" for d in inserted]}})
        done = listed or {}
        await self.list_under_customers([case for case, _ in entries
                                         if case.case_id not in done.get(case.customer_id or "", ())])
        return {doc["_id"] for doc in inserted}

    async def _plan_queue(self, docs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Give each case its part of its hour (`queue_at.part`, see queue.py): the hour's
        last part while it holds under PART_ROWS rows, then new ones. Returns the hour lists
        and last parts read for it (the writes after reuse them; their revision claims
        catch a change since). Two writers filling one part at once overfill it a little."""
        located = [doc for doc in docs if doc.get("queue_at")]
        queue = self.db[QUEUE]
        hour_lists = await find_by_ids(queue, {f"hours:{d['queue_at']['region']}" for d in located}, concurrency=READS)
        by_hour = group_by_key(located, lambda d: (d["queue_at"]["region"], d["queue_at"]["hour"]))
        last = {key: parts_of(hour_lists.get(f"hours:{key[0]}"), key[1]) - 1 for key in by_hour}
        parts = await find_by_ids(queue, [bucket_id(r, h, p) for (r, h), p in last.items()], concurrency=READS)
        for (region, hour), group in by_hour.items():
            part = last[(region, hour)]
            bucket = parts.get(bucket_id(region, hour, part)) or {}
            held = len(bucket.get("rows", {})) + len(bucket.get("gone", {}))
            for doc in group:
                if held >= PART_ROWS:
                    part, held = part + 1, 0
                held += 1
                if part:
                    doc["queue_at"] = {**doc["queue_at"], "part": part}
        return {**hour_lists, **parts}

    async def _queue(self, docs: Sequence[dict[str, Any]], loaded: dict[str, dict[str, Any]]) -> None:
        rows = [(doc, location) for doc in docs if (location := location_of(doc.get("queue_at")))]
        by_bucket = group_by_key(rows, lambda r: bucket_id(*r[1]))

        def place_all(group: list[tuple[dict[str, Any], Location]]) -> Change:
            def change(bucket: dict[str, Any] | None) -> dict[str, Any] | None:
                # Only the new rows travel (`rows.<case id>`): a bucket holds hundreds. A
                # case the bucket knows of already (any revision, or gone) is newer than
                # this rev 0 row, as queue.placed decides, without copying the bucket per row.
                known = {*(bucket or {}).get("rows", {}), *(bucket or {}).get("gone", {})}
                rows = {f"rows.{doc['_id']}": {**queue_row(doc), "rev": 0} for doc, _ in group
                        if doc["_id"] not in known}
                if bucket is None:
                    return {"rows": {k.removeprefix("rows."): v for k, v in rows.items()}, "gone": {}}
                return rows or None
            return change

        queue = self.db[QUEUE]
        await update_documents(queue, {b: place_all(group) for b, group in by_bucket.items()},
                               loaded={b: loaded[b] for b in by_bucket if b in loaded})
        # Then the hour lists (parts first, as QueueIndex.place: see forget_hour).
        needed: dict[str, dict[int, int]] = {}
        for _, (region, hour, part) in rows:
            hours = needed.setdefault(f"hours:{region}", {})
            hours[hour] = max(hours.get(hour, 1), part + 1)
        await update_documents(queue, {hid: partial(listed, parts=want) for hid, want in needed.items()},
                               loaded={h: loaded[h] for h in needed if h in loaded})

    async def list_new_customers(self, opening: Mapping[str, Sequence[str]]) -> set[str]:
        """Insert each customer's index with these case ids, unless the customer has one;
        returns the customers that had one (left as they were)."""
        return await insert_new(self.db[CUSTOMER_CASES], [{"_id": customer, "case_ids": list(ids)}
                                                          for customer, ids in opening.items()])

    async def list_under_customers(self, cases: Sequence[Case]) -> None:
        by_customer = group_by_key([c for c in cases if c.customer_id], lambda c: c.customer_id)
        if not by_customer:
            return
        index = self.db[CUSTOMER_CASES]
        # Most customers of a backlog have no case yet: insert, and add to those that have.
        known = await insert_new(index, [{"_id": cust, "case_ids": [c.case_id for c in group]}
                                         for cust, group in by_customer.items()])
        await update_by_ids(index, [(cust, {"$addToSet": {"case_ids": {"$each": [c.case_id for c in group]}}})
                                    for cust, group in by_customer.items() if cust in known])

    async def schedule_sla(self, timers: Sequence[tuple[str, str, datetime, dict[str, Any]]]) -> None:
        await schedule_timers(self.timers, timers)

    async def add_facts(self, facts: Sequence[tuple[str, dict[str, Any]]],
                        loaded: Mapping[str, dict[str, Any] | None]) -> set[str]:
        """File each (query key, contact) under its matter and day; `loaded` holds the
        buckets read for detection (reused: the revision claim, or the unique insert of a
        new one, catches a change since). Returns the buckets another writer had changed
        since (their facts filed all the same, on what that writer wrote)."""
        by_bucket = group_by_key(facts, lambda f: fact_bucket(f[0], f[1]["received_at"].astimezone(UTC).date()))
        await list_future(self.db[FACTS], by_bucket)

        def add_all(group: list[tuple[str, dict[str, Any]]]) -> Change:
            new = {c["_id"]: {k: c.get(k) for k in FIELDS} for _, c in group}
            return lambda bucket: with_facts(bucket, list(new.values()))

        return await update_documents(self.db[FACTS], {b: add_all(g) for b, g in by_bucket.items()},
                                      loaded={b: loaded[b] for b in by_bucket if b in loaded}, remember=True)

    async def place_work(self, rows: Sequence[dict[str, Any]]) -> None:
        """List contacts that opened no case as unanswered work (ContactWorklist.place for
        a first placing, all rows of a bucket at once)."""
        if not rows:
            return
        rows = [{k: _stored(v) for k, v in row.items()} for row in rows]
        by_bucket = group_by_key(rows, lambda r: f"{r['region']}|{r['status']}|"
                                                 f"{_utc(r['received_at']).date().isoformat()}")

        def put_all(group: list[dict[str, Any]]) -> Change:
            def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
                current = (doc or {}).get("rows", {})
                if all(current.get(r["contact_id"]) == r for r in group):
                    return None
                return {"rows": {**current, **{r["contact_id"]: r for r in group}}}
            return change

        worklist = self.db[WORKLIST]
        await update_documents(worklist, {b: put_all(g) for b, g in by_bucket.items()})
        days: dict[str, set[str]] = {}
        for r in rows:
            days.setdefault(f"days:{r['region']}|{r['status']}", set()).add(_utc(r["received_at"]).date().isoformat())
        def list_days(days_id: str, new: set[str]) -> Change:
            # Written even when listed, as ContactWorklist.place does (see its `_prune`).
            return lambda doc: {"days": sorted({*(doc or {}).get("days", []), *new}), "touched": days_id}

        await update_documents(worklist, {d: list_days(d, new) for d, new in days.items()})

    async def store_handled(self, docs: Sequence[dict[str, Any]]) -> None:
        """The batch's last write: each contact's document, handled (`handled`, `case_id`,
        `status` set). One stored already (by the single path, or an earlier version, not
        handled then) gets those three fields, as ContactLog.mark_handled sets them."""
        existed = await insert_new(self.db[CONTACTS], docs)
        if existed:
            await update_by_ids(self.db[CONTACTS], [
                (d["_id"], {"$set": {k: d[k] for k in ("case_id", "handled", "status")}})
                for d in docs if d["_id"] in existed])


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # as pymongo returns it
