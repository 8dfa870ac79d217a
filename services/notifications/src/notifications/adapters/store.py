"""Notifications' MongoDB repositories: the contact directory, opt-outs, templates and the
staff inbox. (The send ledger is in `ledger.py`.)

Every hot read is by `_id` (FerretDB 1.x pushes down no other filter): a document per
customer, and index documents listing customers by building (`owners:<project>|<building>`),
by project (`buildings:<project>`), by region (`projects:<region>`), by phone (`phone:<number>`)
and by birthday (`bday:MM-DD`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from crm_runtime.batching import insert_new
from crm_runtime.pii import normalise_phone
from crm_runtime.revisions import REV, RevisionConflict, write_revision
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from notifications.domain.directory import Contact, Unit
from notifications.domain.templates import Template, template_key

log = logging.getLogger(__name__)
audit = logging.getLogger("crm.audit")

CONTACTS = "contacts"
INDEX = "directory_index"
OPTOUTS = "optouts"
TEMPLATES = "templates"
TEMPLATE_VERSIONS = "template_versions"
INBOX = "inbox"
# FerretDB 1.x: a bulk update of 100 statements can hang (docs/reliability.md).
BULK_STATEMENTS = 10


async def bulk_update(collection: Any, updates: list[UpdateOne], statements: int = BULK_STATEMENTS) -> None:
    for start in range(0, len(updates), statements):
        await collection.bulk_write(updates[start:start + statements], ordered=False)




def _contact_doc(c: Contact, as_of: datetime) -> dict[str, Any]:
    return {"region": c.region, "name": c.name, "phones": c.phones, "email": c.email, "language": c.language,
            "consent": c.consent, "units": [{"project": u.project, "building": u.building, "unit": u.unit}
                                            for u in c.units],
            "birthday": c.birthday.isoformat() if c.birthday else None, "as_of": as_of}


def _contact(doc: dict[str, Any]) -> Contact:
    return Contact(
        customer_id=doc["_id"], region=doc["region"], name=doc.get("name", ""), phones=doc.get("phones", []),
        email=doc.get("email"), language=doc.get("language", "zh-CN"), consent=doc.get("consent", {}),
        units=[Unit(u["project"], u["building"], u["unit"]) for u in doc.get("units", [])],
        birthday=date.fromisoformat(doc["birthday"]) if doc.get("birthday") else None,
        occupancy=doc.get("occupancy", {}),
    )


def _index_keys(c: Contact) -> dict[str, str]:
    """Index document id -> the value it lists (a customer id, or a building of a project)."""
    keys = {f"owners:{u.project}|{u.building}": c.customer_id for u in c.units}
    keys.update({f"phone:{p}": c.customer_id for p in c.phones})
    if c.birthday:
        keys[f"bday:{c.birthday.strftime('%m-%d')}"] = c.customer_id
    return keys


class Directory:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]):
        self.contacts = db[CONTACTS]
        self.index = db[INDEX]

    async def get(self, customer_id: str) -> Contact | None:
        doc = await self.contacts.find_one({"_id": customer_id})
        return _contact(doc) if doc else None

    async def get_many(self, customer_ids: Iterable[str], concurrency: int = 64) -> dict[str, Contact]:
        ids = list(dict.fromkeys(customer_ids))
        found: dict[str, Contact] = {}
        for start in range(0, len(ids), concurrency):
            docs = await asyncio.gather(*(self.contacts.find_one({"_id": i}) for i in ids[start:start + concurrency]))
            found.update({d["_id"]: _contact(d) for d in docs if d})
        return found

    async def upsert_many(self, records: list[tuple[Contact, datetime]]) -> int:
        """Store each customer's newest record (by event time) and its index entries, in a few
        round trips per batch; an older record arriving late is ignored. Returns how many
        records were applied."""
        latest: dict[str, tuple[Contact, datetime]] = {}
        for contact, as_of in records:
            kept = latest.get(contact.customer_id)
            if kept is None or as_of >= kept[1]:
                latest[contact.customer_id] = (contact, as_of)
        existed = list(await insert_new(self.contacts, [{"_id": cid, **_contact_doc(c, t)}
                                                   for cid, (c, t) in latest.items()]))
        olds = await asyncio.gather(*(self.contacts.find_one({"_id": cid}) for cid in existed))
        pulls: list[UpdateOne] = []
        updates: list[UpdateOne] = []
        for cid, old in zip(existed, olds, strict=True):
            contact, as_of = latest[cid]
            if old is None:
                continue
            old_as_of = old.get("as_of")
            if old_as_of is not None and old_as_of.replace(tzinfo=UTC) > as_of:
                del latest[cid]  # we already hold a newer record
                continue
            gone = set(_index_keys(_contact(old))) - set(_index_keys(contact))
            pulls += [UpdateOne({"_id": k}, {"$pull": {"ids": cid}}) for k in sorted(gone)]
            updates.append(UpdateOne({"_id": cid}, {"$set": _contact_doc(contact, as_of)}))
        await bulk_update(self.contacts, updates)
        await bulk_update(self.index, pulls)
        by_key: dict[str, list[str]] = {}
        for contact, _ in latest.values():
            for key, value in _index_keys(contact).items():
                by_key.setdefault(key, []).append(value)
            for u in contact.units:
                by_key.setdefault(f"buildings:{u.project}", []).append(u.building)
                by_key.setdefault(f"projects:{contact.region}", []).append(u.project)
        for key in by_key:
            by_key[key] = list(dict.fromkeys(by_key[key]))
        shared = await insert_new(self.index, [{"_id": k, "ids": v} for k, v in by_key.items()])
        await bulk_update(self.index, [UpdateOne({"_id": k}, {"$addToSet": {"ids": {"$each": by_key[k]}}})
                                       for k in shared])
        return len(latest)

    async def record_unit(self, customer_id: str, unit: Unit, occupancy: str | None) -> None:
        """A unit event: the customer owns that home (and maybe moved in)."""
        doc = await self.contacts.find_one({"_id": customer_id})
        if doc is None:
            return  # the archive has not told us about this customer yet
        change: dict[str, Any] = {"$addToSet": {"units": {"project": unit.project, "building": unit.building,
                                                          "unit": unit.unit}}}
        if occupancy:
            change["$set"] = {f"occupancy.{unit.key.replace('.', '_')}": occupancy}
        await self.contacts.update_one({"_id": customer_id}, change)
        for key, value in ((f"owners:{unit.project}|{unit.building}", customer_id),
                           (f"buildings:{unit.project}", unit.building), (f"projects:{doc['region']}", unit.project)):
            await self.index.update_one({"_id": key}, {"$addToSet": {"ids": value}}, upsert=True)

    async def _ids(self, key: str) -> list[str]:
        doc = await self.index.find_one({"_id": key})
        return list(doc.get("ids", [])) if doc else []

    async def owners(self, project: str | None, building: str | None, region: str | None = None) -> list[str]:
        """The owners of a building, of a project, or (no project) of every project of a region."""
        if project is None:
            projects = await self._ids(f"projects:{region}")
            lists = await asyncio.gather(*(self.owners(p, None) for p in projects))
            return list(dict.fromkeys(cid for ids in lists for cid in ids))
        buildings = [building] if building else await self._ids(f"buildings:{project}")
        lists = await asyncio.gather(*(self._ids(f"owners:{project}|{b}") for b in buildings))
        return list(dict.fromkeys(cid for ids in lists for cid in ids))

    async def by_phone(self, phone: str) -> list[str]:
        return await self._ids(f"phone:{normalise_phone(phone) or phone}")

    async def born_on(self, day: date) -> list[str]:
        return await self._ids(f"bday:{day.strftime('%m-%d')}")


class OptOuts:
    """The opt-out ledger: per customer, each opt-out with where it came from and its evidence."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]):
        self.collection = db[OPTOUTS]

    async def channels(self, customer_id: str) -> list[str]:
        doc = await self.collection.find_one({"_id": customer_id}, {"channels": 1})
        return list(doc.get("channels", [])) if doc else []

    async def record(self, customer_id: str, channel: str, source: str, evidence: dict[str, Any],
                     at: datetime, by: str | None = None) -> bool:
        """Add an opt-out; False if the same evidence was recorded already (a repeated callback)."""
        entry = {"channel": channel, "source": source, "evidence": evidence, "at": at, "by": by}
        for _ in range(20):
            doc = await self.collection.find_one({"_id": customer_id})
            if doc is None:
                try:
                    await self.collection.insert_one({"_id": customer_id, "channels": [channel], "entries": [entry],
                                                      REV: 0})
                    return True
                except DuplicateKeyError:
                    continue
            if any(e.get("evidence") == evidence and e.get("channel") == channel for e in doc.get("entries", [])):
                return False
            try:
                await write_revision(self.collection, customer_id, int(doc.get(REV, 0)), {"$set": {
                    "channels": sorted({*doc.get("channels", []), channel}),
                    "entries": [*doc.get("entries", []), entry]}})
                return True
            except RevisionConflict:
                continue
        raise RevisionConflict(customer_id)

    async def entries(self, customer_id: str) -> list[dict[str, Any]]:
        doc = await self.collection.find_one({"_id": customer_id})
        return list(doc.get("entries", [])) if doc else []


def _template(doc: dict[str, Any]) -> Template:
    return Template(doc["template_id"], doc["language"], doc["channel"], int(doc["version"]),
                    doc.get("subject", ""), doc["body"])


class TemplateStore:
    """The current version of each template (`_id` = id|language|channel) and every version
    ever saved (`_id` = key@version), so a message's version can always be shown."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]):
        self.current = db[TEMPLATES]
        self.versions = db[TEMPLATE_VERSIONS]
        # Read on every message: cached briefly, so another replica's edit is used within seconds.
        self._cache: dict[str, tuple[float, Template]] = {}
        self.cache_s = 10.0

    async def seed(self, defaults: list[Template]) -> None:
        now = datetime.now(UTC)
        docs = [{"_id": t.key, "template_id": t.template_id, "language": t.language, "channel": t.channel,
                 "version": t.version, "subject": t.subject, "body": t.body, "updated_by": "default",
                 "updated_at": now} for t in defaults]
        await insert_new(self.current, [{**d, REV: 0} for d in docs])
        await insert_new(self.versions, [{**d, "_id": f"{d['_id']}@{d['version']}"} for d in docs])

    async def get(self, template_id: str, language: str, channel: str) -> Template | None:
        key = template_key(template_id, language, channel)
        cached = self._cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.cache_s:
            return cached[1]
        doc = await self.current.find_one({"_id": key})
        if doc is None:
            return None
        template = _template(doc)
        self._cache[key] = (time.monotonic(), template)
        return template

    async def all(self) -> list[dict[str, Any]]:
        return [d async for d in self.current.find({}, {REV: 0}).sort("_id", 1)]

    async def history(self, template_id: str, language: str, channel: str) -> list[dict[str, Any]]:
        key = template_key(template_id, language, channel)
        current = await self.current.find_one({"_id": key})
        if current is None:
            return []
        docs = await asyncio.gather(*(self.versions.find_one({"_id": f"{key}@{v}"})
                                      for v in range(1, int(current["version"]) + 1)))
        return [d for d in docs if d]

    async def save(self, template_id: str, language: str, channel: str, subject: str, body: str,
                   by: str, at: datetime) -> Template | None:
        """A new version (the old ones stay); None when no such template exists."""
        key = template_key(template_id, language, channel)
        current = await self.current.find_one({"_id": key})
        if current is None:
            return None
        version = int(current["version"]) + 1
        doc = {"template_id": template_id, "language": language, "channel": channel, "version": version,
               "subject": subject, "body": body, "updated_by": by, "updated_at": at}
        await self.versions.insert_one({"_id": f"{key}@{version}", **doc})  # a concurrent edit loses here
        await write_revision(self.current, key, int(current.get(REV, 0)), {"$set": doc})
        self._cache.pop(key, None)
        audit.info("template edited", extra={"sub": by, "template": key, "version": version})
        return _template({**doc})

    def forget(self) -> None:
        self._cache.clear()


class StaffInbox:
    """What staff are told: the inbox of a user or shared by a role or department."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]):
        self.collection = db[INBOX]

    async def deliver(self, recipient: str, item: dict[str, Any]) -> None:
        # One document per message: the insert is the delivery, a repeat finds it there.
        try:
            await self.collection.insert_one({"_id": item["message_id"], "recipient": recipient, "read": False,
                                              **item})
        except DuplicateKeyError:
            return
        await self.collection.update_one({"_id": f"list:{recipient}"}, {"$addToSet": {"ids": item["message_id"]}},
                                         upsert=True)

    async def items(self, recipients: list[str], limit: int = 100) -> list[dict[str, Any]]:
        lists = await asyncio.gather(*(self.collection.find_one({"_id": f"list:{r}"}) for r in recipients))
        ids = [i for doc in lists if doc for i in doc.get("ids", [])]
        docs = await asyncio.gather(*(self.collection.find_one({"_id": i}) for i in ids[-limit:]))
        return sorted((d for d in docs if d), key=lambda d: d.get("created_at") or datetime.min, reverse=True)

    async def mark_read(self, message_id: str, recipients: list[str]) -> bool:
        doc = await self.collection.find_one({"_id": message_id})
        if doc is None or doc.get("recipient") not in recipients:
            return False
        await self.collection.update_one({"_id": message_id}, {"$set": {"read": True}})
        return True


class Caps:
    """The household daily cap, exact on MongoDB and FerretDB alike: a message that is sent
    first claims one of the day's `cap` slots, a document `<household>@<day>#<k>` for k in
    0..cap-1 created by a unique insert (atomic on both stores; a counter's `$inc` is not
    on FerretDB 1.x, and two replicas counting at once let a sixth message through).
    A send that fails gives its slot back; a message claiming again finds its own slot."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]):
        self.collection = db["caps"]

    @staticmethod
    def _slot(household: str, day: date, k: int) -> str:
        return f"{household}@{day.isoformat()}#{k}"

    async def held(self, household: str, day: date, cap: int) -> dict[str, str]:
        """Slot id -> the message holding it, for the day's taken slots."""
        ids = [self._slot(household, day, k) for k in range(cap)]
        docs = await asyncio.gather(*(self.collection.find_one({"_id": i}) for i in ids))
        return {d["_id"]: str(d.get("mid")) for d in docs if d}

    async def sent_on(self, household: str, day: date, cap: int) -> int:
        return len(await self.held(household, day, cap))

    async def claim(self, household: str, day: date, mid: str, cap: int) -> str | None:
        """A slot for `mid` (its own, if it holds one already), or None: the cap is reached."""
        held = await self.held(household, day, cap)
        for slot, holder in held.items():
            if holder == mid:
                return slot
        for k in range(cap):
            slot = self._slot(household, day, k)
            if slot in held:
                continue
            try:
                await self.collection.insert_one({"_id": slot, "mid": mid, "at": datetime.now(UTC)})
                return slot
            except DuplicateKeyError:
                continue  # another sender took it just now
        return None

    async def claim_first(self, wanted: list[tuple[str, date, str]], cap: int) -> dict[str, str | None]:
        """Claims for many messages (household, day, mid) in one insert: each tries its
        household's first slot; where that is taken, `claim` one by one."""
        by_mid = {mid: (household, day) for household, day, mid in wanted}
        docs: list[dict[str, Any]] = [{"_id": self._slot(h, d, 0), "mid": mid, "at": datetime.now(UTC)}
                                      for mid, (h, d) in by_mid.items()]
        taken = set(await insert_new(self.collection, docs))
        got: dict[str, str | None] = {str(d["mid"]): str(d["_id"]) for d in docs if d["_id"] not in taken}
        rest = [mid for mid in by_mid if mid not in got]
        claims = await asyncio.gather(*(self.claim(*by_mid[mid], mid, cap) for mid in rest))
        got.update(zip(rest, claims, strict=True))
        return got

    async def release(self, slot: str | None, mid: str) -> None:
        """Give a slot back (its send failed), if `mid` still holds it."""
        if not slot:
            return
        doc = await self.collection.find_one({"_id": slot})
        if doc is not None and doc.get("mid") == mid:
            await self.collection.delete_one({"_id": slot})
