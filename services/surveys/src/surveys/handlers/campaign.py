"""The annual satisfaction survey: one campaign per region and year, over its owners.

Starting a campaign stores it and a timer due now; the timer (durable, so a restart
resumes) reads the region's customers and homes once, decides each owner's eligibility
in memory and inserts the surveys in batches with their events. A rerun skips the
surveys already stored, so the result is the same however often it runs. One survey per
household: the first co-owner read gets it, the others count as already surveyed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

from crm_runtime.outbox import OutgoingEvent

from surveys.deps import SurveysDeps
from surveys.domain import eligibility
from surveys.domain.eligibility import Facts, PastSurvey
from surveys.domain.schedule import annual_survey, campaign_id, reminder_at
from surveys.handlers.answering import expire
from surveys.handlers.events import scheduled
from surveys.handlers.lifecycle import _apply_decision, document, mutate

log = logging.getLogger(__name__)

BATCH = 500


async def start(deps: SurveysDeps, region: str, year: int, actor: str) -> dict[str, Any]:
    cid = campaign_id(region, year)
    now = deps.now()
    if await deps.campaigns.create({"_id": cid, "region": region, "year": year, "status": "running",
                                    "starts_at": now, "created_by": actor, "created_at": now}):
        await deps.timers.schedule(f"campaign.run:{cid}", "campaign.run", now, {"campaign_id": cid})
    campaign = await deps.campaigns.get(cid)
    assert campaign is not None
    return campaign


async def run(deps: SurveysDeps, timer: dict[str, Any]) -> dict[str, int]:
    campaign = await deps.campaigns.get(timer["payload"]["campaign_id"])
    if campaign is None or campaign["status"] != "running":
        return {}
    started = time.monotonic()
    region, year, cid = campaign["region"], int(campaign["year"]), campaign["_id"]
    homes = await deps.directory.region_homes(region)
    taken: dict[str, str] = {}  # household -> the survey of this campaign that has it
    batch: list[tuple[dict[str, Any], list[OutgoingEvent]]] = []
    counts: Counter[str] = Counter()
    due: Counter[str] = Counter()
    inserted = 0
    writing: asyncio.Future[int] | None = None
    async for customer in deps.directory.region_customers(region):
        units = customer.get("units") or []
        if not units:
            continue  # not an owner
        home = homes.get(units[0]["key"], {})
        planned = annual_survey(deps.policy, region=region, year=year, customer_id=customer["_id"],
                                starts_at=campaign["starts_at"], project=units[0]["project"],
                                building=units[0]["building"], unit=units[0]["unit"],
                                product_type=home.get("fit_out"))
        household_recent = [PastSurvey(e["survey_id"], e["due_at"]) for e in home.get("recent", [])]
        if planned.household in taken:
            household_recent.append(PastSurvey(taken[planned.household], planned.due_at))
        facts = Facts(known=bool(customer.get("known")), consent=bool(customer.get("consent")),
                      open_complaints=await _open_complaints(deps, customer),
                      recent=tuple(PastSurvey(e["survey_id"], e["due_at"]) for e in customer.get("recent", [])),
                      household_recent=tuple(household_recent))
        decision = eligibility.decide(planned, facts, deps.policy)
        doc = document(planned, deps.now())
        fields, outgoing = _apply_decision(doc, decision, deps, "0")
        doc.update(fields)
        counts[doc["status"]] += 1
        if doc["status"] == "scheduled":
            taken.setdefault(planned.household or "", doc["_id"])
            due[deps.coverage.key(region, "annual", doc.get("project"), doc.get("product_type"))] += 1
        if doc["status"] == "deferred":
            await deps.directory.add_survey_id(customer["_id"], doc["_id"])  # released with the complaint
        batch.append((doc, outgoing))
        if len(batch) >= BATCH:
            # One batch is stored while the next is prepared: the store and Python work side by side.
            inserted += await writing if writing else 0
            writing = asyncio.ensure_future(deps.surveys.insert_many(batch))
            batch = []
    inserted += (await writing if writing else 0) + await deps.surveys.insert_many(batch)
    # One counter per project and product type, each its own document: side by side.
    await asyncio.gather(*(deps.coverage.count(
        {"_id": cid, "region": region, "kind": "annual", "project": key.split("|")[2],
         "product_type": key.split("|")[3]}, "due", n, once=f"{cid}:due") for key, n in due.items()))
    starts = campaign["starts_at"]
    sample = annual_survey(deps.policy, region=region, year=year, customer_id="-", starts_at=starts,
                           project=None, building=None, unit=None, product_type=None)
    remind = reminder_at(deps.policy, sample)
    if remind:
        await deps.timers.schedule(f"campaign.remind:{cid}", "campaign.remind", remind, {"campaign_id": cid})
    await deps.timers.schedule(f"campaign.close:{cid}", "campaign.close", sample.expires_at, {"campaign_id": cid})
    elapsed = time.monotonic() - started
    await deps.campaigns.update(cid, {"status": "scheduled", "counts": dict(counts), "inserted": inserted,
                                      "due_at": sample.due_at, "run_s": round(elapsed, 2)})
    log.info("annual campaign scheduled", extra={"campaign_id": cid, **counts, "seconds": round(elapsed, 1)})
    return dict(counts)


async def _open_complaints(deps: SurveysDeps, customer: dict[str, Any]) -> tuple[str, ...]:
    cases = [await deps.directory.case(c) for c in customer.get("case_ids", [])]
    return tuple(c["_id"] for c in cases if c and c.get("open") and c.get("complaint", True))


async def remind(deps: SurveysDeps, timer: dict[str, Any]) -> None:
    async for doc in deps.surveys.of_campaign(timer["payload"]["campaign_id"]):
        if doc["status"] == "scheduled" and not doc.get("reminders"):
            await mutate(deps, doc["_id"], lambda d: None if d["status"] != "scheduled" or d.get("reminders") else (
                {"reminders": 1}, [scheduled(d, deps.link_secret, tag="reminder:1", reminder=1)]))


async def close(deps: SurveysDeps, timer: dict[str, Any]) -> None:
    cid = timer["payload"]["campaign_id"]
    ids = [doc["_id"] async for doc in deps.surveys.of_campaign(cid) if doc["status"] in ("scheduled", "deferred")]
    for sid in ids:
        await expire(deps, sid)
    await deps.campaigns.update(cid, {"status": "closed"})
