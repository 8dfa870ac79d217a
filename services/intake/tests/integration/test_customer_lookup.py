"""The front desk recognises a caller as the number is typed: the directory's customer for
that phone in the agent's region, with numbers masked for roles that do not call back,
and the number itself in no log line."""

from __future__ import annotations

import logging
import random
import uuid

import pytest
from intake.adapters.store import MongoDirectory
from intake.domain.customers import DirectoryEntry

from .conftest import token

pytestmark = pytest.mark.stack


async def test_a_caller_is_found_by_phone_in_the_region_and_masked_for_auditors(intake, caplog):
    caplog.set_level(logging.DEBUG)
    mobile = f"139{random.randrange(10**8):08d}"
    customer_id = f"cust-{uuid.uuid4().hex[:8]}"
    directory = MongoDirectory(intake.app.state.ctx.db)
    await directory.save(DirectoryEntry.build(customer_id, "shenzhen", names=["陈明"], phones=[mobile],
                                              units=[("翠湖苑", "5", "802")]))
    typed = f"+86 {mobile[:3]} {mobile[3:7]} {mobile[7:]}"

    r = await intake.get("/v1/customers/lookup", params={"phone": typed, "region": "shenzhen"}, headers=token())
    assert r.status_code == 200, r.text
    found = r.json()
    assert (found["customer_id"], found["name"], found["phones"]) == (customer_id, "陈明", [mobile])
    assert found["units"] == [{"project": "翠湖苑", "building": "5", "unit": "802"}]

    auditor = await intake.get("/v1/customers/lookup", params={"phone": mobile, "region": "shenzhen"},
                               headers=token(roles=["auditor"]))
    assert auditor.json()["phones"] == [f"{mobile[:3]}****{mobile[-4:]}"]

    # Another region's directory does not know this customer; another region's staff may not ask.
    elsewhere = await intake.get("/v1/customers/lookup", params={"phone": mobile, "region": "beijing"},
                                 headers=token(regions=["beijing"]))
    assert elsewhere.status_code == 404 and elsewhere.json()["errors"][0]["field"] == "phone"
    refused = await intake.get("/v1/customers/lookup", params={"phone": mobile, "region": "shenzhen"},
                               headers=token(regions=["beijing"]))
    assert refused.status_code == 403
    unknown = await intake.get("/v1/customers/lookup", params={"phone": "13700000000", "region": "shenzhen"},
                               headers=token())
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["field"] == "phone"
    junk = await intake.get("/v1/customers/lookup", params={"phone": "12ab", "region": "shenzhen"}, headers=token())
    assert junk.status_code == 422 and junk.json()["errors"][0]["field"] == "phone"

    assert not [rec for rec in caplog.records if mobile in rec.getMessage() or mobile[3:7] + mobile[7:] in str(rec.__dict__)]
