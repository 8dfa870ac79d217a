"""The annual satisfaction survey: one campaign per region and year, over its owners.

Starting a campaign stores it and a timer due now; the timer (durable, so a restart
resumes) reads the region's customers once (their homes' fit-outs are copied onto them),
decides each owner's eligibility in memory and stores the surveys in batches of 500, a
few batches in flight while the read goes on: per batch
one bulk insert of the quiet-period claims, one of the surveys, and one outbox document
with the batch's events. A rerun writes the same documents (ids and link nonces derive
from the survey) and skips those stored, so the result is the same however often it
runs. One survey per household: the first co-owner read gets it, the others count as
already surveyed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from crm_runtime.outbox import OutgoingEvent

from surveys.adapters.quiet import claim_ids
from surveys.deps import SurveysDeps
from surveys.domain import coverage, eligibility, tokens
from surveys.domain.eligibility import Decision, Facts, PastSurvey
from surveys.domain.schedule import Planned, annual_survey, campaign_id, reminder_at
from surveys.handlers.answering import expire
from surveys.handlers.events import scheduled
from surveys.handlers.lifecycle import _apply_decision, document, mutate, with_conflict

log = logging.getLogger(__name__)

BATCH = 500
IN_FLIGHT = 3  # batches being written at once: the store works on them while Python plans the next


class CampaignTooClose(ValueError):
    """Another campaign of the region falls due within the quiet period of this one."""

    def __init__(self, other: str):
        super().__init__(other)
        self.other = other


async def start(deps: SurveysDeps, region: str, year: int, actor: str) -> dict[str, Any]:
    cid = campaign_id(region, year)
    now = deps.now()
    if await deps.campaigns.get(cid) is None:
        due = annual_survey(deps.policy, region=region, year=year, customer_id="-", starts_at=now, project=None,
                            building=None, unit=None, product_type=None).due_at
        for other in (campaign_id(region, year - 1), campaign_id(region, year + 1)):
            found = await deps.campaigns.get(other)
            other_due = found["starts_at"] + timedelta(days=deps.policy.annual_days) if found else None
            if other_due is not None and abs(other_due - due) < timedelta(days=deps.policy.quiet_days):
                raise CampaignTooClose(other)
    if await deps.campaigns.create({"_id": cid, "region": region, "year": year, "status": "running",
                                    "starts_at": now, "created_by": actor, "created_at": now}):
        await deps.timers.schedule(f"campaign.run:{cid}", "campaign.run", now, {"campaign_id": cid})
    campaign = await deps.campaigns.get(cid)
    assert campaign is not None
    return campaign


@dataclass
class _Batch:
    plans: list[tuple[Planned, list[str], Facts, Decision]] = field(default_factory=list)  # with the homes


async def run(deps: SurveysDeps, timer: dict[str, Any]) -> dict[str, int]:
    campaign = await deps.campaigns.get(timer["payload"]["campaign_id"])
    if campaign is None or campaign["status"] != "running":
        return {}
    started = time.monotonic()
    region, year, cid = campaign["region"], int(campaign["year"]), campaign["_id"]
    taken: dict[str, str] = {}  # household -> the survey of this campaign that has it
    counts: Counter[str] = Counter()
    due: Counter[str] = Counter()
    inserted = 0
    slots = asyncio.Semaphore(IN_FLIGHT)
    writing: set[asyncio.Task[int]] = set()
    batch = _Batch()

    async def write(b: _Batch) -> int:
        try:
            return await _store_batch(deps, cid, b, counts, due)
        finally:
            slots.release()

    read_s = 0.0  # waiting for the store's next batch of customers
    customers = aiter(deps.directory.region_customers(region))
    while True:
        # The read streams while earlier batches are written: the store does both at once.
        waited = time.monotonic()
        customer = await anext(customers, None)
        read_s += time.monotonic() - waited
        if customer is None:
            break
        units = customer.get("units") or []
        if not units:
            continue  # not an owner
        fit_outs = {f["key"]: f["fit_out"] for f in customer.get("fit_outs") or []}
        planned = annual_survey(deps.policy, region=region, year=year, customer_id=customer["_id"],
                                starts_at=campaign["starts_at"], project=units[0]["project"],
                                building=units[0]["building"], unit=units[0]["unit"],
                                product_type=coverage.product_type(deps.product_forms, units[0]["project"],
                                                                   units[0]["building"], fit_outs.get(units[0]["key"])))
        # Co-owners of one home get one survey between them: the first read has it.
        household_recent = ((PastSurvey(taken[planned.household], planned.due_at),)
                            if planned.household in taken else ())
        facts = Facts(known=bool(customer.get("known")), consent=bool(customer.get("consent")),
                      open_complaints=await _open_complaints(deps, customer), household_recent=household_recent)
        decision = eligibility.decide(planned, facts, deps.policy)
        if decision.outcome == "schedule" and planned.household:
            taken.setdefault(planned.household, planned.survey_id)
        batch.plans.append((planned, [u["key"] for u in units if u.get("key")], facts, decision))
        if len(batch.plans) >= BATCH:
            await slots.acquire()
            writing.add(asyncio.ensure_future(write(batch)))
            batch = _Batch()
    if batch.plans:
        await slots.acquire()
        writing.add(asyncio.ensure_future(write(batch)))
    inserted = sum(await asyncio.gather(*writing))
    write_s = time.monotonic() - started - read_s  # planning and writing, apart from waiting for reads
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
                                      "due_at": sample.due_at, "run_s": round(elapsed, 2),
                                      "read_s": round(read_s, 2), "write_s": round(write_s, 2)})
    log.info("annual campaign scheduled", extra={"campaign_id": cid, **counts, "seconds": round(elapsed, 1)})
    return dict(counts)


async def _store_batch(deps: SurveysDeps, cid: str, batch: _Batch, counts: Counter[str],
                       due: Counter[str]) -> int:
    """Claim the quiet period of a batch's surveys (new claim documents in one bulk insert;
    documents that exist, one by one), then store the surveys and their events."""
    quiet_days = deps.policy.quiet_days
    claims: dict[str, list[str]] = {}
    entries: list[tuple[str, dict[str, Any]]] = []
    for p, homes, _, decision in batch.plans:
        if decision.outcome == "schedule":
            claims[p.survey_id] = claim_ids(p.customer_id, homes, p.household, p.due_at, quiet_days, one_sided=True)
            entry = {"survey_id": p.survey_id, "customer_id": p.customer_id, "household": p.household,
                     "due_at": p.due_at}
            entries += [(doc_id, entry) for doc_id in claims[p.survey_id]]
    existed = await deps.quiet.claim_new(entries)
    docs: list[dict[str, Any]] = []
    outgoing: list[OutgoingEvent] = []
    for planned, _, facts, decision in batch.plans:
        ids = claims.get(planned.survey_id, [])
        if existed.intersection(ids):
            conflict = await deps.quiet.claim(ids, planned.survey_id, planned.customer_id, planned.household,
                                              planned.due_at, quiet_days)
            if conflict is not None:
                await deps.quiet.release(ids, planned.survey_id)  # those inserted in bulk too
                decision, ids = eligibility.decide(planned, with_conflict(facts, conflict), deps.policy), []
        doc = document(planned, deps.now())
        doc["nonce"] = tokens.derived_nonce(deps.link_secret, planned.survey_id)
        fields, events = _apply_decision(doc, decision, deps, "0")
        doc.update(fields, quiet_claims=ids)
        counts[doc["status"]] += 1
        if doc["status"] == "scheduled":
            due[deps.coverage.key(doc["region"], "annual", doc.get("project"), doc.get("product_type"))] += 1
        if doc["status"] == "deferred":
            await deps.directory.add_survey_id(planned.customer_id, doc["_id"])  # released with the complaint
        docs.append(doc)
        outgoing += events
    return await deps.surveys.insert_campaign_batch(f"{cid}|{docs[0]['_id']}", docs, outgoing)


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
