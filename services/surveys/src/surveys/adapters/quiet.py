"""The quiet period made exact on FerretDB and MongoDB: claims per customer and household.

A survey that counts for the quiet period claims its customer and its household before
it is stored. A claim document (`h:<household>|<year>`) lists the surveys (customer,
household, due) due around that year (China Standard Time) and is only written through a
revision claim (`crm_runtime.rmw`), the conflict check included in the same write: two
surveys of one household, or of one customer, handled at once meet in one document, and
the second to write sees the first. A survey is entered in every year its window
`[due - N, due + N]` touches, so two surveys less than N days apart share a document.
The documents a survey claimed are kept on it (`quiet_claims`) to release them.

Per-year documents stay small, and the next year's campaign finds its keys fresh and
inserts them in bulk (`claim_new`): a unique insert is a claim on both stores too. A key
that exists already (an event-driven survey got there first) goes the per-document way.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from crm_runtime.rmw import update_document
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from surveys.adapters.worklist import CST
from surveys.domain.eligibility import PastSurvey, quiet_conflict

QUIET = "quiet_claims"


def claim_ids(customer_id: str, homes: Iterable[str], household: str | None, due_at: datetime,
              quiet_days: int, *, one_sided: bool = False) -> list[str]:
    """The documents a survey is entered in: one per year its window touches, for each of
    the customer's homes and the survey's household (`c:<customer>` for a customer with
    none). A customer's surveys thus share the documents of the customer's homes, and a
    household's surveys that household's: an owner of one home writes one document.

    `one_sided`: only the year of the due date. An annual campaign's surveys do so (half
    the documents for a campaign near the new year); they still meet every other survey
    less than N days away, whose window holds their due date, and no two campaigns of a
    region are less than N days apart (`campaign.start`)."""
    window = timedelta(days=0 if one_sided else quiet_days)
    years = sorted({(due_at - window).astimezone(CST).year, (due_at + window).astimezone(CST).year})
    keys = sorted({*homes, *([household] if household else [])})
    prefixed = [f"h:{k}" for k in keys] or [f"c:{customer_id}"]
    return [f"{key}|{year}" for key in prefixed for year in years]


def _split(docs: Iterable[dict[str, Any] | None], customer_id: str, household: str | None,
           ) -> tuple[tuple[PastSurvey, ...], tuple[PastSurvey, ...]]:
    """The entries of the customer's surveys, and of the household's."""
    mine: dict[str, PastSurvey] = {}
    home: dict[str, PastSurvey] = {}
    for doc in docs:
        for e in (doc or {}).get("entries", []):
            if e["customer_id"] == customer_id:
                mine[e["survey_id"]] = PastSurvey(e["survey_id"], e["due_at"])
            if household and e.get("household") == household:
                home[e["survey_id"]] = PastSurvey(e["survey_id"], e["due_at"])
    return tuple(mine.values()), tuple(home.values())


class QuietClaims:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]):
        self.collection = db[QUIET]

    async def recent(self, ids: Iterable[str], customer_id: str, household: str | None,
                     ) -> tuple[tuple[PastSurvey, ...], tuple[PastSurvey, ...]]:
        """The customer's and the household's claimed surveys in documents `ids` (a plain
        read, to decide; `claim` is what makes it exact)."""
        return _split([await self.collection.find_one({"_id": i}) for i in ids], customer_id, household)

    async def claim(self, ids: Iterable[str], survey_id: str, customer_id: str, household: str | None,
                    due_at: datetime, quiet_days: int) -> tuple[str, PastSurvey] | None:
        """Enter the survey in documents `ids`, unless one holds another survey of the
        customer or household within the quiet period: then nothing stays claimed and
        (`customer` or `household`, that survey) is returned. Idempotent."""
        entry = {"survey_id": survey_id, "customer_id": customer_id, "household": household, "due_at": due_at}
        claimed: list[str] = []
        for doc_id in ids:
            conflict = await self._claim_one(doc_id, entry, quiet_days)
            if conflict is not None:
                await self.release(claimed, survey_id)
                return conflict
            claimed.append(doc_id)
        return None

    async def _claim_one(self, doc_id: str, entry: dict[str, Any], quiet_days: int,
                         ) -> tuple[str, PastSurvey] | None:
        found: list[tuple[str, PastSurvey]] = []

        def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            found.clear()
            entries = (doc or {}).get("entries", [])
            if any(e["survey_id"] == entry["survey_id"] for e in entries):
                return None
            mine, home = _split([doc], entry["customer_id"], entry["household"])
            for whose, past in (("customer", mine), ("household", home)):
                conflict = quiet_conflict(entry["survey_id"], entry["due_at"], past, quiet_days)
                if conflict is not None:
                    found.append((whose, conflict))
                    return None
            return {"entries": [*entries, entry]}

        await update_document(self.collection, doc_id, change)
        return found[0] if found else None

    async def release(self, ids: Iterable[str], survey_id: str) -> None:
        """An excluded, cancelled or held survey no longer counts (idempotent)."""
        for doc_id in ids:
            def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
                entries = (doc or {}).get("entries", [])
                if not any(e["survey_id"] == survey_id for e in entries):
                    return None
                return {"entries": [e for e in entries if e["survey_id"] != survey_id]}

            await update_document(self.collection, doc_id, change)

    async def claim_new(self, claims: Iterable[tuple[str, dict[str, Any]]]) -> set[str]:
        """Bulk claims for a campaign: (document id, entry) each inserted as a new document;
        returns the ids that existed already, or came twice (to claim one by one)."""
        docs: dict[str, dict[str, Any]] = {}
        again: set[str] = set()
        for doc_id, entry in claims:
            if doc_id in docs:
                again.add(doc_id)
            else:
                docs[doc_id] = {"_id": doc_id, "entries": [entry], "rev": 0}
        if not docs:
            return again
        try:
            await self.collection.insert_many(list(docs.values()), ordered=False)
            return again
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(err.get("code") != 11000 for err in errors):
                raise
            listed = list(docs)
            return again | {listed[err["index"]] for err in errors}
