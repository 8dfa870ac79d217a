"""Broadcasts: one milestone, every owner of a project (or of one building).

When the cause arrives every owner's message is planned at once (a ledger entry each,
stored in chunks); at the broadcast's time the runner, on the replica holding the
`broadcasts` lease, sends chunk after chunk behind transactional messages under the
provider's rate limit. A chunk's progress is recounted from its entries' statuses, so it
advances only for sends the provider accepted, and a runner that dies is resumed by the
next lease holder from the chunk it had reached.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from crm_contracts.envelope import CloudEvent
from crm_runtime.leases import Lease

from notifications.adapters.ledger import message_id
from notifications.deps import NotificationsDeps
from notifications.domain import triggers as t
from notifications.domain.directory import choose_channel
from notifications.domain.gate import Decision, decide
from notifications.domain.templates import RenderFailed, Template
from notifications.handlers.bulk import send_group
from notifications.handlers.messages import apply_decision, customer_params, new_entry

log = logging.getLogger(__name__)

BROADCAST_TIMER = "broadcast"
GROUPS_IN_FLIGHT = 16


async def plan_broadcast(deps: NotificationsDeps, intent: t.Intent, cause: CloudEvent) -> str:
    """Plan every owner's message; a redelivered cause plans nothing new."""
    assert isinstance(intent.audience, t.Owners)
    bid = intent.cause_key
    existing = await deps.ledger.broadcast(bid)
    if existing is not None:
        await deps.timers.schedule(f"broadcast:{bid}", BROADCAST_TIMER, existing["not_before"], {"id": bid})
        return bid
    now = deps.clock()
    start = max(now, intent.not_before) if intent.not_before else now
    owners = await deps.directory.owners(intent.audience.project, intent.audience.building, intent.region)
    contacts = await deps.directory.get_many(owners)
    templates: dict[tuple[str, str], Template | None] = {}
    policy = deps.policy_for(intent.region)
    members: list[dict[str, Any]] = []
    for customer_id in owners:
        contact = contacts.get(customer_id)
        for group in intent.channels:
            problem: str | None
            if contact is None:
                channel, problem, language = group[0], "customer not in the directory", "zh-CN"
            else:
                (channel, problem), language = choose_channel(contact, group), contact.language
            if (language, channel) not in templates:
                templates[(language, channel)] = await deps.templates.get(intent.template_id, language, channel)
            template = templates[(language, channel)]
            mid = message_id(bid, customer_id, channel)
            kwargs: dict[str, Any] = dict(mid=mid, intent=intent, cause=cause, channel=channel, language=language,
                                          now=now, customer_id=customer_id, broadcast_id=bid,
                                          to=(contact.address_for(channel) if contact else None) or "",
                                          household=contact.household if contact else None)
            try:
                entry = new_entry(**kwargs, template=template, params=customer_params(intent, contact, language))
            except RenderFailed as exc:
                entry, problem = new_entry(**kwargs), f"template does not render: {exc}"
            if template is None:
                problem = problem or f"no template {intent.template_id} for {language}/{channel}"
            if problem:
                decision = Decision.suppress(problem)
            else:
                assert contact is not None
                # Opt-outs and caps are checked again when each one is sent.
                decision = decide(channel=channel, message_class=intent.message_class, now=start, policy=policy,
                                  consented=True, opted_out_channels=(), household_sent_on=lambda day: 0,
                                  expires_at=intent.expires_at)
                if decision.action == "send":
                    decision = Decision.defer(start, "broadcast time") if start > now else decision
            members.append(apply_decision(entry, decision, now))
    due = [m["due_at"] for m in members if m["status"] == "scheduled"]
    not_before = min(due) if due else start
    await deps.ledger.create_broadcast({
        "_id": bid, "region": intent.region, "template_id": intent.template_id, "project": intent.audience.project,
        "building": intent.audience.building, "cause_event_id": cause.id, "total": len(members),
        "not_before": not_before, "status": "scheduled", "next_chunk": 0, "created_at": now}, members)
    await deps.timers.schedule(f"broadcast:{bid}", BROADCAST_TIMER, not_before, {"id": bid})
    log.info("broadcast planned", extra={"broadcast": bid, "messages": len(members), "region": intent.region})
    return bid


async def start_broadcast(deps: NotificationsDeps, bid: str) -> None:
    """The broadcast's time came (a timer): hand it to the runner."""
    await deps.ledger.set_broadcast(bid, {"status": "running"})


def group_size(rate_per_s: float) -> int:
    """Messages per provider call and pacing grant: a tenth of a second's worth."""
    return max(1, min(100, int(rate_per_s / 10)))


async def run_broadcast(deps: NotificationsDeps, bid: str, lease: Lease | None = None) -> dict[str, int]:
    """Send a running broadcast from the chunk it reached; returns the final tallies.

    Groups of a chunk are sent a few at a time, so the store work of one overlaps the
    pacing of the next and the provider's rate, not the store, sets the pace."""
    b = await deps.ledger.broadcast(bid)
    if b is None:
        return {}
    slots = asyncio.Semaphore(GROUPS_IN_FLIGHT)
    size = group_size(deps.limiter.rate_per_s)

    async def send(mids: list[str], planned: dict[str, dict[str, Any]]) -> dict[str, str] | None:
        try:
            return await send_group(deps, mids, {m: planned[m] for m in mids if m in planned})
        except Exception:
            log.exception("broadcast group failed; the next run retries it")
            return None
        finally:
            slots.release()

    async def finish(n: int, groups: list[asyncio.Task[dict[str, str] | None]]) -> bool:
        """Tally a chunk once all its groups are done (chunks finish in order)."""
        counts: dict[str, int] = {}
        for result in await asyncio.gather(*groups):
            if result is None:
                return False  # this chunk again next round
            for st in result.values():
                counts[st] = counts.get(st, 0) + 1
        await deps.ledger.set_counts(bid, n, counts)
        await deps.ledger.set_broadcast(bid, {"next_chunk": n + 1})
        return True

    # The next chunk's groups start while the last ones of a chunk are still out: the
    # pipeline never drains at a chunk's end.
    open_chunks: deque[tuple[int, list[asyncio.Task[dict[str, str] | None]]]] = deque()
    try:
        for n in range(int(b.get("next_chunk", 0)), int(b.get("chunks", 0))):
            if lease is not None and not await lease.acquire_or_renew():
                return {}  # another replica runs broadcasts now
            ids, planned = await deps.ledger.chunk_members(bid, n)
            groups = []
            for start in range(0, len(ids), size):
                await slots.acquire()
                groups.append(asyncio.create_task(send(ids[start:start + size], planned)))
            open_chunks.append((n, groups))
            while open_chunks and all(g.done() for g in open_chunks[0][1]):
                if not await finish(*open_chunks.popleft()):
                    return {}
        while open_chunks:
            if not await finish(*open_chunks.popleft()):
                return {}
    finally:
        for _, groups in open_chunks:  # stopped early: let what is out finish, uncounted
            await asyncio.gather(*groups, return_exceptions=True)
    await deps.ledger.set_broadcast(bid, {"status": "done", "finished_at": deps.clock()})
    progress = await deps.ledger.progress(bid)
    return dict((progress or {}).get("counts", {}))


async def run_active(deps: NotificationsDeps, lease: Lease) -> int:
    """One round of the runner: every broadcast under way, while holding the lease."""
    if not await lease.acquire_or_renew():
        return 0
    ran = 0
    # One document per broadcast (a milestone): a small collection, so a scan is cheap.
    for bid in [b["_id"] async for b in deps.ledger.broadcasts.find({"status": "running"}, {"_id": 1})]:
        await run_broadcast(deps, bid, lease)
        ran += 1
    await deps.ledger.recount_stale()
    return ran


async def runner(deps: NotificationsDeps, lease: Lease, poll_s: float = 1.0) -> None:
    while True:
        try:
            await run_active(deps, lease)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("broadcast runner round failed")
        await asyncio.sleep(poll_s)


