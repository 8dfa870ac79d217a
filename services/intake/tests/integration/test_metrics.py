"""What the customer centre watches on intake's /metrics: contacts per channel, repeats
folded, unclassified contacts, letters bounced."""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from email.message import EmailMessage

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import token

pytestmark = pytest.mark.stack


async def sample(intake, name: str, **labels: str) -> float:
    r = await intake.get("/metrics")
    assert r.status_code == 200
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


async def test_contacts_per_channel_and_repeats_folded_are_counted(intake):
    received = {"name": "crm_intake_contacts_received_total", "channel": "hotline", "region": "shenzhen",
                "kind_hint": "repair"}
    before = await sample(intake, **received)
    folded_before = await sample(intake, "crm_intake_duplicates_folded_total", channel="hotline")
    phone = f"1350000{uuid.uuid4().int % 10000:04d}"
    contact = {"channel": "hotline", "region": "shenzhen", "subject": "厨房水管漏水",
               "body": "厨房水槽下面的水管一直在漏水，请安排师傅上门维修。", "customer": {"phone": phone}}
    for _ in range(2):  # the same caller twice: recorded twice, the second folded into the first
        r = await intake.post("/v1/contacts", json=contact, headers=token())
        assert r.status_code == 202, r.text
    assert await sample(intake, **received) == before + 2
    assert await sample(intake, "crm_intake_duplicates_folded_total", channel="hotline") == folded_before + 1


async def test_an_unclassified_contact_is_counted(intake):
    before = await sample(intake, "crm_intake_contacts_unclassified_total", channel="front_desk")
    r = await intake.post("/v1/contacts", headers=token(), json={
        "channel": "front_desk", "region": "shenzhen", "subject": "3栋2单元", "body": "1201"})
    assert r.status_code == 202, r.text
    assert await sample(intake, "crm_intake_contacts_unclassified_total", channel="front_desk") == before + 1


async def test_a_letter_to_a_mailbox_of_no_region_is_bounced_and_counted(intake, intake_settings):
    before = await sample(intake, "crm_intake_letters_refused_total", reason="unknown_region")
    message = EmailMessage()
    message["From"] = "someone@example.cn"
    message["To"] = "atlantis@letters.example.cn"
    message["Subject"] = "Letter"
    message["Message-ID"] = f"<{uuid.uuid4().hex}@example.cn>"
    message.set_content("Dear Sir or Madam, ...")

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", intake_settings.smtp_port, timeout=10) as smtp:
            smtp.send_message(message)

    with pytest.raises(smtplib.SMTPDataError) as refused:
        await asyncio.to_thread(send)
    assert refused.value.smtp_code == 550
    assert await sample(intake, "crm_intake_letters_refused_total", reason="unknown_region") == before + 1
