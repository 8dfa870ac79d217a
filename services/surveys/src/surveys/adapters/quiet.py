"""The quiet period made exact on FerretDB and MongoDB: claims per customer and household.

A survey that counts for the quiet period claims its customer and its household before
it is stored. A claim document (`c:<customer>|<year>`, `h:<household>|<year>`) lists the
surveys due in that year (China Standard Time) and is only written through a revision
claim (`crm_runtime.rmw`), the conflict check included in the same write: two surveys of
one household handled at once meet in one document, and the second to write sees the
first. A survey is entered in every year its window `[due - N, due + N]` touches, so two
surveys less than N days apart always share a document.

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


def claim_ids(customer_id: str, household: str | None, due_at: datetime, quiet_days: int) -> list[str]:
    """The documents a survey is entered in: its customer's, then its household's."""
    window = timedelta(days=quiet_days)
    years = sorted({(due_at - window).astimezone(CST).year, (due_at + window).astimezone(CST).year})
    keys = [f"c:{customer_id}"] + ([f"h:{household}"] if household else [])
    return [f"{key}|{year}" for key in keys for year in years]


def _entries(doc: dict[str, Any] | None) -> list[PastSurvey]:
    return [PastSurvey(e["survey_id"], e["due_at"]) for e in (doc or {}).get("entries", [])]


class QuietClaims:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]):
        self.collection = db[QUIET]

    async def recent(self, customer_id: str, household: str | None, due_at: datetime, quiet_days: int,
                     ) -> tuple[tuple[PastSurvey, ...], tuple[PastSurvey, ...]]:
        """The customer's and the household's claimed surveys around `due_at` (a plain read,
        to decide; `claim` is what makes it exact)."""
        mine: list[PastSurvey] = []
        home: list[PastSurvey] = []
        for doc_id in claim_ids(customer_id, household, due_at, quiet_days):
            doc = await self.collection.find_one({"_id": doc_id})
            (mine if doc_id.startswith("c:") else home).extend(_entries(doc))
        return tuple(mine), tuple(home)

    async def claim(self, survey_id: str, customer_id: str, household: str | None, due_at: datetime,
                    quiet_days: int) -> tuple[str, PastSurvey] | None:
        """Enter the survey in its claim documents, unless one holds another survey within
        the quiet period: then nothing stays claimed and that (`customer` or `household`,
        survey) is returned. Idempotent: a survey already entered is not entered twice."""
        claimed: list[str] = []
        for doc_id in claim_ids(customer_id, household, due_at, quiet_days):
            conflict = await self._claim_one(doc_id, survey_id, due_at, quiet_days)
            if conflict is not None:
                for done in claimed:
                    await self._release_one(done, survey_id)
                return ("customer" if doc_id.startswith("c:") else "household"), conflict
            claimed.append(doc_id)
        return None

    async def _claim_one(self, doc_id: str, survey_id: str, due_at: datetime, quiet_days: int,
                         ) -> PastSurvey | None:
        found: list[PastSurvey] = []

        def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            found.clear()
            entries = (doc or {}).get("entries", [])
            if any(e["survey_id"] == survey_id for e in entries):
                return None
            conflict = quiet_conflict(survey_id, due_at, _entries(doc), quiet_days)
            if conflict is not None:
                found.append(conflict)
                return None
            return {"entries": [*entries, {"survey_id": survey_id, "due_at": due_at}]}

        await update_document(self.collection, doc_id, change)
        return found[0] if found else None

    async def release(self, survey_id: str, customer_id: str, household: str | None, due_at: datetime,
                      quiet_days: int) -> None:
        """An excluded, cancelled or held survey no longer counts (idempotent)."""
        for doc_id in claim_ids(customer_id, household, due_at, quiet_days):
            await self._release_one(doc_id, survey_id)

    async def _release_one(self, doc_id: str, survey_id: str) -> None:
        def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            entries = (doc or {}).get("entries", [])
            if not any(e["survey_id"] == survey_id for e in entries):
                return None
            return {"entries": [e for e in entries if e["survey_id"] != survey_id]}

        await update_document(self.collection, doc_id, change)

    async def claim_new(self, claims: Iterable[tuple[str, str, datetime]]) -> set[str]:
        """Bulk claims for a campaign: (document id, survey id, due) each inserted as a new
        document; returns the ids that existed already (to claim one by one)."""
        docs = [{"_id": doc_id, "entries": [{"survey_id": sid, "due_at": due}], "rev": 0}
                for doc_id, sid, due in claims]
        if not docs:
            return set()
        try:
            await self.collection.insert_many(docs, ordered=False)
            return set()
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(err.get("code") != 11000 for err in errors):
                raise
            return {docs[err["index"]]["_id"] for err in errors}
