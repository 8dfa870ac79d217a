"""The staff queue against the real store: a case write whose queue move never happened
(its process died in between) is finished by the repair, from the case itself."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cases.adapters.store import CaseRepository, ConcurrentUpdate
from cases.handlers import outgoing
from crm_runtime.testing import eventually

from .conftest import send_contact, token

pytestmark = pytest.mark.stack


class Died(Exception):
    pass


async def queue_status(cases, region: str, case_id: str) -> str | None:
    r = await cases.get("/v1/cases", params={"region": region}, headers=token(regions=[region]))
    return next((i["status"] for i in r.json()["items"] if i["case_id"] == case_id), None)


async def test_a_case_write_whose_queue_move_died_is_repaired(stack, cases):
    region = "wuhan"
    sent = await send_contact(stack, region=region)
    ctx = cases.app.state.ctx
    repo = CaseRepository(ctx.db, ctx.outbox)

    contact = await eventually(lambda: ctx.db["contacts"].find_one({"_id": sent["contact_id"], "handled": True}),
                               timeout=30)
    case_id = contact["case_id"]
    assert await queue_status(cases, region, case_id) == "received"

    # The agent validates the case; the process dies after the case is written, before the
    # queue row moves.
    async def die(*args, **kwargs):
        raise Died()

    repo.queue_index.place = die
    for _ in range(20):  # the relay also writes the case (it removes what it published)
        case, rev = await repo.get_with_rev(case_id)
        case.validate("valid", "属实 / confirmed", actor="agent-1", at=datetime.now(UTC))
        try:
            await repo.save(case, rev, outgoing(case, case.pull_events()))
        except ConcurrentUpdate:
            continue
        except Died:
            break
    else:
        pytest.fail("the case could not be written")
    assert (await CaseRepository(ctx.db, ctx.outbox).get(case_id)).status.value == "validated"
    assert await queue_status(cases, region, case_id) == "received"  # stale

    assert await CaseRepository(ctx.db, ctx.outbox).repair_queue(older_than_s=0) >= 1
    assert await queue_status(cases, region, case_id) == "validated"
    assert await ctx.db["queue_repairs"].count_documents({"case_id": case_id}) == 0
