"""Every channel ends as one ContactReceived on the real Kafka topic, callers are
recognised, repeats fold, and bad input is refused without storing anything."""

from __future__ import annotations

import asyncio
import json
import smtplib
import time
import uuid
from datetime import datetime
from email.message import EmailMessage

import pytest
from crm_contracts import topics
from crm_runtime.testing import event_of_type, eventually, make_event, produce, wait_for_messages
from intake.entrypoints.http import forum_signature

from .conftest import FORUM_SECRET, token

pytestmark = pytest.mark.stack
RECEIVED = "crm.intake.contact.received.v1"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def front_desk(**overrides):
    body = {"channel": "front_desk", "region": "shenzhen", "subject": "卫生间漏水",
            "body": "3栋1201卫生间天花板漏水，已经好几天了，请尽快派人维修。",
            "customer": {"name": "王芳", "phone": "13912345678"}, "project": "碧水湾",
            "building": "3", "unit": "1201"}
    body.update(overrides)
    return body


async def received(stack, contact_id: str, count: int = 1, timeout: float = 30):
    return await wait_for_messages(stack.bootstrap, topics.INTAKE_CONTACTS,
                                   event_of_type(RECEIVED, contact_id=contact_id), count=count, timeout=timeout)


async def test_front_desk_contact_reaches_the_topic_with_a_kind_hint(stack, intake):
    r = await intake.post("/v1/contacts", json=front_desk(), headers=token())
    assert r.status_code == 202, r.text
    contact_id = r.json()["contact_id"]
    [seen] = await received(stack, contact_id)
    event = seen.json()
    assert event["region"] == "shenzhen" and seen.key == contact_id.encode()
    assert event["data"]["channel"] == "front_desk"
    assert event["data"]["kind_hint"] == "repair"
    assert event["data"]["customer_id"].startswith("prov-")  # an unknown caller still gets an id
    # ...and how to reach them travels with the contact, since no directory holds it yet.
    assert event["data"]["reply_to"]["phone"] == "13912345678"


async def test_the_same_idempotency_key_returns_the_first_contact_and_publishes_once(stack, intake):
    key = str(uuid.uuid4())
    first = await intake.post("/v1/contacts", json=front_desk(subject="门锁坏了"), headers={**token(), "Idempotency-Key": key})
    again = await intake.post("/v1/contacts", json=front_desk(subject="门锁坏了"), headers={**token(), "Idempotency-Key": key})
    assert first.json()["contact_id"] == again.json()["contact_id"]
    assert again.json()["created"] is False
    await received(stack, first.json()["contact_id"])
    await asyncio.sleep(1.0)
    with pytest.raises(AssertionError):
        await received(stack, first.json()["contact_id"], count=2, timeout=2)


async def test_hotline_call_typed_in_by_an_agent_with_a_repeated_source_ref(stack, intake):
    body = front_desk(channel="hotline", source_ref=f"call-{uuid.uuid4().hex[:6]}")
    a = await intake.post("/v1/contacts", json=body, headers=token())
    b = await intake.post("/v1/contacts", json=body, headers=token())
    assert a.json()["contact_id"] == b.json()["contact_id"]
    [seen] = await received(stack, a.json()["contact_id"])
    assert seen.json()["data"]["source_ref"] == body["source_ref"]


async def test_every_hotline_partner_event_delivered_twice_makes_one_contact(stack, intake):
    call_id = f"call-{uuid.uuid4().hex[:8]}"
    data = {"call_id": call_id, "caller_phone": "+86 137 0000 1111", "started_at": "2026-03-01T09:30:00+08:00",
            "duration_s": 180, "summary": "业主投诉小区绿化没有按合同承诺实施，要求给个说法"}
    event = make_event("crm.partner.hotline.call-recorded.v1", data, subject=call_id)
    await produce(stack.bootstrap, topics.PARTNER_HOTLINE, event)
    await produce(stack.bootstrap, topics.PARTNER_HOTLINE, event)  # the same event again
    # The telephony system re-sent the call as a new event: still the same contact.
    await produce(stack.bootstrap, topics.PARTNER_HOTLINE,
                  make_event("crm.partner.hotline.call-recorded.v1", data, subject=call_id))
    [seen] = await wait_for_messages(stack.bootstrap, topics.INTAKE_CONTACTS,
                                     event_of_type(RECEIVED, source_ref=call_id), timeout=30)
    assert seen.json()["data"]["channel"] == "hotline"
    assert seen.json()["data"]["kind_hint"] == "complaint"
    # Another call on the same key, behind the copies: once its contact is on the topic, the
    # copies have been handled, and any contact they wrongly made was published before it.
    behind = f"call-{uuid.uuid4().hex[:8]}"
    await produce(stack.bootstrap, topics.PARTNER_HOTLINE, make_event(
        "crm.partner.hotline.call-recorded.v1", {**data, "call_id": behind}, subject=behind), key=call_id.encode())
    await wait_for_messages(stack.bootstrap, topics.INTAKE_CONTACTS, event_of_type(RECEIVED, source_ref=behind),
                            timeout=30)
    with pytest.raises(AssertionError):
        await wait_for_messages(stack.bootstrap, topics.INTAKE_CONTACTS,
                                event_of_type(RECEIVED, source_ref=call_id), count=2, timeout=2)


async def test_forum_post_from_the_partner_topic(stack, intake):
    post_id = f"post-{uuid.uuid4().hex[:8]}"
    event = make_event("crm.partner.forum.post-published.v1", {
        "post_id": post_id, "author": "业主小李", "title": "建议小区增加充电桩",
        "body": "希望物业能在地下车库增加一些新能源车充电桩", "url": f"https://forum.example.cn/p/{post_id}",
        "published_at": "2026-03-02T20:00:00+08:00"}, subject=post_id, region="shanghai")
    await produce(stack.bootstrap, topics.PARTNER_FORUM, event)
    [seen] = await wait_for_messages(stack.bootstrap, topics.INTAKE_CONTACTS,
                                     event_of_type(RECEIVED, source_ref=post_id), timeout=30)
    assert seen.json()["region"] == "shanghai"
    assert seen.json()["data"]["kind_hint"] == "suggestion"


def signed(body: bytes, *, secret: str = FORUM_SECRET, age_s: int = 0) -> dict[str, str]:
    ts = str(int(time.time()) - age_s)
    return {"X-Forum-Timestamp": ts, "X-Forum-Signature": forum_signature(secret, ts, body),
            "Content-Type": "application/json"}


async def test_forum_webhook_accepts_signed_posts_and_refuses_forged_and_stale_ones(stack, intake):
    post_id = f"post-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"post_id": post_id, "author": "Owner Li", "title": "Great job on the garden",
                       "body": "Thank you, the new landscaping looks great!", "url": "https://forum.example.cn/p/1",
                       "published_at": "2026-03-02T20:00:00+08:00", "region": "shenzhen"}).encode()
    forged = await intake.post("/v1/channels/forum/webhook", content=body, headers=signed(body, secret="guess"))
    assert forged.status_code == 401 and forged.json()["errors"][0]["field"] == "X-Forum-Signature"
    stale = await intake.post("/v1/channels/forum/webhook", content=body, headers=signed(body, age_s=600))
    assert stale.status_code == 401 and stale.json()["errors"][0]["field"] == "X-Forum-Timestamp"
    tampered = await intake.post("/v1/channels/forum/webhook", content=body.replace(b"great", b"awful"),
                                 headers=signed(body))
    assert tampered.status_code == 401
    ok = await intake.post("/v1/channels/forum/webhook", content=body, headers=signed(body))
    assert ok.status_code == 202, ok.text
    [seen] = await received(stack, ok.json()["contact_id"])
    assert seen.json()["data"]["kind_hint"] == "praise"


async def test_a_letter_with_a_scanned_attachment(stack, intake):
    contact = front_desk(channel="letter", letter_form="fax", source_ref=f"fax-{uuid.uuid4().hex[:6]}")
    r = await intake.post("/v1/contacts", headers=token(),
                          data={"contact": json.dumps(contact)},
                          files=[("files", ("scan.pdf", PDF, "application/pdf"))])
    assert r.status_code == 202, r.text
    [seen] = await received(stack, r.json()["contact_id"])
    [attachment] = seen.json()["data"]["attachments"]
    assert attachment["filename"] == "scan.pdf" and attachment["content_type"] == "application/pdf"
    assert attachment["size"] == len(PDF)
    download = await intake.get(f"/v1/contacts/{r.json()['contact_id']}/attachments/{attachment['attachment_id']}",
                                headers=token())
    assert download.status_code == 200 and download.content == PDF


async def test_bad_attachments_are_refused_and_nothing_is_stored(stack, intake):
    db = intake.app.state.ctx.db
    before = await db["contacts"].count_documents({})
    contact = front_desk(channel="letter", letter_form="post")
    exe = await intake.post("/v1/contacts", headers=token(), data={"contact": json.dumps(contact)},
                            files=[("files", ("virus.pdf", b"MZ\x90\x00 not a pdf", "application/pdf"))])
    assert exe.status_code == 415 and exe.json()["errors"][0]["field"] == "files[0]"
    big = await intake.post("/v1/contacts", headers=token(), data={"contact": json.dumps(contact)},
                            files=[("files", ("big.pdf", PDF + b"0" * 300_000, "application/pdf"))])
    assert big.status_code == 413
    assert await db["contacts"].count_documents({}) == before
    assert await db["attachments.files"].count_documents({"filename": {"$in": ["virus.pdf", "big.pdf"]}}) == 0


@pytest.mark.parametrize(("body", "status", "field"), [
    (front_desk(region="atlantis"), 422, "region"),
    (front_desk(channel="pigeon"), 422, "channel"),
    (front_desk(subject=""), 422, "subject"),
    (front_desk(customer={"email": "not-an-email"}), 422, "customer.email"),
    (front_desk(letter_form="post"), 422, "letter_form"),  # a form, but not a letter
    (front_desk(received_at="2026-03-01T09:30:00"), 422, "received_at"),
])
async def test_bad_input_names_the_field_and_stores_nothing(stack, intake, body, status, field):
    db = intake.app.state.ctx.db
    before = await db["contacts"].count_documents({})
    r = await intake.post("/v1/contacts", json=body, headers=token())
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert any(field in e["field"] or field in e["message"] for e in r.json()["errors"]), r.json()
    assert await db["contacts"].count_documents({}) == before


async def test_an_oversized_body_gets_413(intake):
    r = await intake.post("/v1/contacts", json=front_desk(body="长" * 600_000), headers=token())
    assert r.status_code == 413


async def test_a_contact_is_visible_only_to_staff_of_its_region(stack, intake):
    r = await intake.post("/v1/contacts", json=front_desk(), headers=token())
    contact_id = r.json()["contact_id"]
    mine = await intake.get(f"/v1/contacts/{contact_id}", headers=token())
    assert mine.status_code == 200 and mine.json()["body"].startswith("3栋1201")
    other = await intake.get(f"/v1/contacts/{contact_id}", headers=token(regions=["beijing"]))
    assert other.status_code == 403
    refused = await intake.post("/v1/contacts", json=front_desk(), headers=token(regions=["beijing"]))
    assert refused.status_code == 403


PHONE_FORMATS = ["13800138000", "+86 138 0013 8000", "0086-138-0013-8000", "(+86)13800138000",
                 "138-0013-8000", "＋８６　１３８００１３８０００"]


async def test_callers_are_recognised_in_every_phone_format(stack, intake):
    customer_id = f"cust-{uuid.uuid4().hex[:8]}"
    upsert = make_event("crm.partner.customer.upserted.v1", {
        "customer_id": customer_id, "name": "陈明", "phones": ["138 0013 8000"], "email": "chen.ming@example.cn",
        "preferred_language": "zh-CN", "consent": {"sms": True, "email": True, "letter": False},
        "units": [{"project": "翠湖苑", "building": "5", "unit": "802"}]}, subject=customer_id)
    r = await intake.post("/v1/partner-events", json=[json.loads(upsert.model_dump_json())],
                          headers=token(roles=["partner"]))
    assert r.status_code == 202, r.text
    db = intake.app.state.ctx.db
    await eventually(lambda: db["customers"].find_one({"_id": customer_id}), timeout=30)

    for phone in PHONE_FORMATS:
        r = await intake.post("/v1/contacts", headers=token(), json={
            "channel": "hotline", "region": "shenzhen", "subject": "咨询交房时间",
            "body": f"请问什么时候交房？来电 {phone}", "customer": {"phone": phone}})
        [seen] = await received(stack, r.json()["contact_id"])
        data = seen.json()["data"]
        assert (data["customer_id"], data["customer_match"]) == (customer_id, "exact"), phone
        assert data.get("reply_to") is None  # a known customer: no personal data in the event
        # Filled in from the directory: the contact did not name the unit.
        assert (data["project"], data["building"], data["unit"]) == ("翠湖苑", "5", "802")

    by_name = await intake.post("/v1/contacts", headers=token(), json=front_desk(
        customer={"name": "陈先生"}, project="翠湖苑", building="5", unit="802"))
    [seen] = await received(stack, by_name.json()["contact_id"])
    assert (seen.json()["data"]["customer_id"], seen.json()["data"]["customer_match"]) == (customer_id, "probable")


async def test_a_late_older_customer_record_does_not_undo_the_newer_one(stack, intake):
    customer_id = f"cust-{uuid.uuid4().hex[:8]}"
    old_phone, new_phone = (f"1370000{uuid.uuid4().int % 10000:04d}", f"1360000{uuid.uuid4().int % 10000:04d}")

    def record(phone: str, when: str):
        return make_event("crm.partner.customer.upserted.v1", {
            "customer_id": customer_id, "name": "林芳", "phones": [phone], "preferred_language": "zh-CN",
            "consent": {"sms": True, "email": False, "letter": False}, "units": []},
            subject=customer_id, time_=datetime.fromisoformat(when))

    # The customer changed phone on the 3rd; the record of the 2nd arrives after it.
    await produce(stack.bootstrap, topics.PARTNER_CUSTOMERS, record(new_phone, "2026-03-03T09:00:00+08:00"))
    db = intake.app.state.ctx.db
    await eventually(lambda: db["customers"].find_one({"_id": customer_id}), timeout=30)
    await produce(stack.bootstrap, topics.PARTNER_CUSTOMERS, record(old_phone, "2026-03-02T09:00:00+08:00"))
    marker = make_event("crm.partner.customer.upserted.v1", {  # behind the late record on the same key
        "customer_id": customer_id + "-x", "name": "标记", "phones": [], "units": []}, subject=customer_id)
    await produce(stack.bootstrap, topics.PARTNER_CUSTOMERS, marker)
    await eventually(lambda: db["customers"].find_one({"_id": customer_id + "-x"}), timeout=30)

    for phone, expected in ((new_phone, (customer_id, "exact")), (old_phone, (None, "unknown"))):
        r = await intake.post("/v1/contacts", headers=token(), json=front_desk(customer={"phone": phone}))
        [seen] = await received(stack, r.json()["contact_id"])
        data = seen.json()["data"]
        got = (None if data["customer_id"].startswith("prov-") else data["customer_id"], data["customer_match"])
        assert got == expected, phone


async def test_an_archive_resent_with_new_phones_moves_every_customer(stack, intake):
    """A region's archive comes in bulk, and comes again when numbers change: 30 neighbours
    (one surname, unit 1201 of every building, so they share a name + unit key) are each
    recognised by their new number afterwards, and no longer by the old one."""
    tag = uuid.uuid4().hex[:6]
    project = f"翠湖苑{tag}"
    ids = [f"cust-{tag}-{i}" for i in range(30)]
    old = [f"135{uuid.uuid4().int % 10**8:08d}" for _ in ids]
    new = [f"139{uuid.uuid4().int % 10**8:08d}" for _ in ids]

    def archive(phones: list[str], when: str) -> list[dict]:
        return [json.loads(make_event("crm.partner.customer.upserted.v1", {
            "customer_id": cid, "name": f"张{'伟芳敏静丽强磊军洋勇'[i % 10]}{i}", "phones": [phone],
            "preferred_language": "zh-CN", "consent": {"sms": True, "email": False, "letter": False},
            "units": [{"project": project, "building": str(i + 1), "unit": "1201"}]},
            subject=cid, time_=datetime.fromisoformat(when)).model_dump_json())
            for i, (cid, phone) in enumerate(zip(ids, phones, strict=True))]

    db = intake.app.state.ctx.db
    for phones, gone, when in ((old, [], "2026-03-01T09:00:00+08:00"), (new, old, "2026-03-05T09:00:00+08:00")):
        r = await intake.post("/v1/partner-events", json=archive(phones, when), headers=token(roles=["partner"]))
        assert r.status_code == 202, r.text
        await eventually(lambda phones=phones, gone=gone: _all_keyed(db, ids, phones, gone), timeout=30)

    async def recognised_as(phone: str) -> tuple[str | None, str]:
        r = await intake.post("/v1/contacts", headers=token(), json={
            "channel": "hotline", "region": "shenzhen", "subject": "咨询", "body": f"来电 {phone} 咨询物业费",
            "customer": {"phone": phone}})
        contact = (await intake.get(f"/v1/contacts/{r.json()['contact_id']}", headers=token())).json()
        cid = contact["customer_id"]
        return (None if cid.startswith("prov-") else cid, contact["customer_match"])

    assert [await recognised_as(p) for p in new] == [(cid, "exact") for cid in ids]
    assert [await recognised_as(p) for p in old] == [(None, "unknown")] * len(ids)


async def _all_keyed(db, ids: list[str], phones: list[str], gone: list[str]) -> bool:
    """Every customer's phone key names it and its old phone's key no longer does: the keys,
    which recognition reads, are written after the customer documents."""
    keys = {d["_id"]: d["customer_ids"] async for d in db["customer_keys"].find(
        {"_id": {"$in": [f"phone:{p}" for p in phones + gone]}})}
    return (all(cid in keys.get(f"phone:{p}", []) for cid, p in zip(ids, phones, strict=True))
            and not any(cid in keys.get(f"phone:{p}", []) for cid, p in zip(ids, gone, strict=False)))  # gone: [] at first


async def test_one_new_caller_on_several_channels_at_once_is_recorded_every_time(stack, intake):
    phone = f"1350000{uuid.uuid4().int % 10000:04d}"
    bodies = ["电梯又坏了", "车库渗水严重", "物业费怎么交", "小区绿化很好，表扬保洁", "门禁卡失灵"]
    responses = await asyncio.gather(*(intake.post("/v1/contacts", headers=token(), json=front_desk(
        channel=channel, subject=body, body=body, customer={"phone": phone}))
        for channel, body in zip(["front_desk", "hotline", "front_desk", "hotline", "front_desk"], bodies, strict=True)))
    assert [r.status_code for r in responses] == [202] * 5, [r.text for r in responses]
    contact_ids = {r.json()["contact_id"] for r in responses}
    seen = [await received(stack, cid) for cid in contact_ids]
    customers = {s[0].json()["data"]["customer_id"] for s in seen}
    assert len(customers) == 1  # one person, one (provisional) customer
    recent = await intake.app.state.ctx.db["recent_contacts"].find_one({"_id": customers.pop()})
    assert {c["contact_id"] for c in recent["contacts"]} == contact_ids  # none dropped by a racing writer


async def test_a_burst_with_repeats_in_flight_records_each_contact_once_with_one_event(stack, intake):
    # 20 callers, each request sent twice at the same moment (a client retrying at once): the
    # concurrent inserts travel together to the store, and a repeat meets its twin there.
    run = uuid.uuid4().hex[:8]
    keys = [f"burst-{run}-{i}" for i in range(20)]

    def post(i: int):
        return intake.post("/v1/contacts", headers={**token(), "Idempotency-Key": keys[i]}, json=front_desk(
            subject=f"报修 {i}", body=f"{i}号业主家里水管爆裂", customer={"name": "李雷", "phone": f"1370000{i:04d}"}))

    responses = await asyncio.gather(*(post(i) for i in [*range(20), *range(20)]))
    assert [r.status_code for r in responses] == [202] * 40, [r.text for r in responses]
    for i in range(20):
        first, twin = responses[i].json(), responses[20 + i].json()
        assert first["contact_id"] == twin["contact_id"]
        assert sorted([first["created"], twin["created"]]) == [False, True]  # stored once
    ids = {r.json()["contact_id"] for r in responses}
    mine = lambda s: s.json()["type"] == RECEIVED and s.json()["data"]["contact_id"] in ids  # noqa: E731
    await wait_for_messages(stack.bootstrap, topics.INTAKE_CONTACTS, mine, count=20)
    seen = await wait_for_messages(stack.bootstrap, topics.INTAKE_CONTACTS, mine, count=20)
    assert sorted(s.json()["data"]["contact_id"] for s in seen) == sorted(ids)  # one event each
    contacts = intake.app.state.ctx.db["contacts"]
    assert await contacts.count_documents({"idempotency_key": {"$in": keys}}) == 20


async def test_near_identical_repeat_within_a_day_is_recorded_and_marked_duplicate(stack, intake):
    phone = f"1390000{uuid.uuid4().int % 10000:04d}"
    first = await intake.post("/v1/contacts", headers=token(), json=front_desk(customer={"phone": phone}))
    second = await intake.post("/v1/contacts", headers=token(), json=front_desk(
        customer={"phone": phone}, body=front_desk()["body"] + "！"))
    assert first.json()["contact_id"] != second.json()["contact_id"]
    [seen] = await received(stack, second.json()["contact_id"])
    assert seen.json()["data"]["duplicate_of"] == first.json()["contact_id"]


async def test_partner_gateway_refuses_an_invalid_event_and_publishes_none(stack, intake):
    good = json.loads(make_event("crm.partner.unit.delivered.v1", {
        "customer_id": "c1", "project": "p", "building": "1", "unit": "101",
        "delivered_at": "2026-03-01T10:00:00+08:00", "fit_out": "bare"}).model_dump_json())
    bad = dict(good, id=str(uuid.uuid4()))
    bad.pop("region")
    r = await intake.post("/v1/partner-events", json=[good, bad], headers=token(roles=["partner"]))
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"].startswith("[1]")
    with pytest.raises(AssertionError):
        await wait_for_messages(stack.bootstrap, topics.PARTNER_UNITS, lambda s: s.json()["id"] == good["id"],
                                timeout=2)


async def test_an_emailed_letter_arrives_by_smtp(stack, intake, intake_settings):
    message = EmailMessage()
    message["From"] = "Zhao Lei <zhao.lei@example.cn>"
    message["To"] = "shenzhen@letters.example.cn"
    message["Subject"] = "关于车位产权的投诉"
    message["Message-ID"] = f"<{uuid.uuid4().hex}@example.cn>"
    message.set_content("我对车位产权问题非常不满，销售时承诺的产权车位至今没有办理，要求给出书面答复。")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="contract.pdf")

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", intake_settings.smtp_port, timeout=10) as smtp:
            smtp.send_message(message)

    await asyncio.to_thread(send)
    [seen] = await wait_for_messages(stack.bootstrap, topics.INTAKE_CONTACTS,
                                     event_of_type(RECEIVED, source_ref=message["Message-ID"].strip("<>")),
                                     timeout=30)
    data = seen.json()["data"]
    assert (data["channel"], data["letter_form"], data["kind_hint"]) == ("letter", "email", "complaint")
    assert [a["filename"] for a in data["attachments"]] == ["contract.pdf"]


async def test_an_unknown_caller_keeps_a_provisional_id_until_the_partner_record_arrives(stack, intake):
    phone = f"1370000{uuid.uuid4().int % 10000:04d}"
    first = await intake.post("/v1/contacts", headers=token(), json=front_desk(
        customer={"phone": phone}, subject="咨询物业费", body="请问物业费怎么交？"))
    [seen] = await received(stack, first.json()["contact_id"])
    provisional = seen.json()["data"]["customer_id"]
    assert provisional.startswith("prov-") and seen.json()["data"]["customer_match"] == "unknown"
    # The same caller on another channel, in another format, is the same provisional customer.
    again = await intake.post("/v1/contacts", headers=token(), json=front_desk(
        channel="hotline", customer={"phone": f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}"},
        subject="物业费", body="物业费的缴费方式是什么"))
    [seen] = await received(stack, again.json()["contact_id"])
    assert seen.json()["data"]["customer_id"] == provisional

    customer_id = f"cust-{uuid.uuid4().hex[:8]}"
    upsert = make_event("crm.partner.customer.upserted.v1", {
        "customer_id": customer_id, "name": "周杰", "phones": [phone], "preferred_language": "zh-CN",
        "consent": {"sms": True, "email": False, "letter": False}, "units": []}, subject=customer_id)
    await produce(stack.bootstrap, topics.PARTNER_CUSTOMERS, upsert)
    db = intake.app.state.ctx.db
    await eventually(lambda: db["customers"].find_one({"_id": provisional, "merged_into": customer_id}), timeout=30)

    later = await intake.post("/v1/contacts", headers=token(), json=front_desk(customer={"phone": phone}))
    [seen] = await received(stack, later.json()["contact_id"])
    assert (seen.json()["data"]["customer_id"], seen.json()["data"]["customer_match"]) == (customer_id, "exact")
