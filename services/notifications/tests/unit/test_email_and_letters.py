"""Mail building and the letter rules that need no server: encoding, masking, dates, spool."""

from __future__ import annotations

import email
import email.policy
from datetime import date, datetime

import pytest
from notifications.adapters.email import build_email
from notifications.adapters.gateways import OutboundMessage
from notifications.adapters.letters import BEIJING, JsonlLetterSpool, LetterBatcher, letter_date, mask_address


def message(**overrides) -> OutboundMessage:
    values = dict(message_id="ntf-9", channel="email", region="shenzhen", language="zh-CN",
                  to="zhang.wei@example.com", template_code="case.resolved", params={},
                  subject="您的投诉 SZ-2026-000123 已处理完毕", body="尊敬的张先生：\n您反映的渗水问题已修复。",
                  recipient_name="张伟")
    return OutboundMessage(**{**values, **overrides})


def test_chinese_subject_and_body_are_encoded_and_survive_a_round_trip():
    raw = bytes(build_email(message(), "noreply@crm.example.cn", sender_name="深圳客户中心"))
    assert raw.isascii()  # RFC 2047 headers and a transfer-encoded body: any relay carries it
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "您的投诉 SZ-2026-000123 已处理完毕"
    assert parsed["To"].addresses[0].display_name == "张伟"
    assert parsed["To"].addresses[0].addr_spec == "zhang.wei@example.com"
    assert parsed["From"].addresses[0].display_name == "深圳客户中心"
    assert parsed["Message-ID"] == "<ntf-9@notifications.crm.local>"
    assert parsed.get_body().get_content().strip() == "尊敬的张先生：\n您反映的渗水问题已修复。"


@pytest.mark.parametrize("to", ["", "no-at-sign", "@example.com", "a@localhost"])
def test_not_an_address_is_refused(to):
    with pytest.raises(ValueError):
        build_email(message(to=to), "noreply@crm.example.cn")


@pytest.mark.parametrize(("address", "masked"), [
    ("广东省深圳市南山区科技园路1号翡翠湾3栋2单元1201", "广东省深圳市南山区****"),
    ("上海市浦东新区世纪大道100号", "上海市浦东新区****"),
    ("翡翠湾3栋1201", "翡翠****"),
    ("Room 1201, Building 3, Emerald Bay, Shenzhen", "****, Shenzhen"),
])
def test_addresses_are_masked_to_their_city_and_district(address, masked):
    assert mask_address(address) == masked
    assert "1201" not in mask_address(address)


def test_letter_dates_in_chinese_and_english():
    assert letter_date(date(2026, 3, 1), "zh-CN") == "2026年3月1日"
    assert letter_date(date(2026, 3, 1), "en") == "1 March 2026"


async def test_a_letter_without_address_is_refused_permanently(tmp_path):
    batcher = LetterBatcher(tmp_path)
    result = await batcher.add(message(channel="letter", to="", postal_address=None))
    assert not result.accepted and result.permanent
    assert "postal_address" in (result.error or "")


async def test_the_same_ledger_id_is_one_letter_even_after_a_restart(tmp_path):
    clock = lambda: datetime(2026, 12, 1, 23, 59, tzinfo=BEIJING)  # noqa: E731
    letter = message(channel="letter", to="", postal_address="广东省深圳市南山区科技园路1号")
    first = await LetterBatcher(tmp_path, clock=clock).add(letter)
    again = await LetterBatcher(tmp_path, clock=clock).add(letter)  # a new process, same spool
    assert first.accepted and again.accepted
    assert first.provider_ref == again.provider_ref == "shenzhen/2026-12-01"
    assert len(await JsonlLetterSpool(tmp_path).read("shenzhen", date(2026, 12, 1))) == 1


async def test_address_never_reaches_the_log(tmp_path, caplog):
    caplog.set_level("INFO")
    await LetterBatcher(tmp_path).add(message(channel="letter", to="", postal_address="广东省深圳市南山区科技园路1号3栋1201"))
    assert caplog.records  # it logs the letter ...
    text = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "科技园路" not in text and "1201" not in text  # ... but not where the customer lives


async def test_the_channel_factory_can_build_mail_and_letters_from_the_settings(tmp_path):
    from types import SimpleNamespace

    from notifications.adapters.email import SmtpGateway

    settings = SimpleNamespace(smtp_host="mail.internal", smtp_port=2525, smtp_sender="notices@crm.example.cn",
                               letters_dir=str(tmp_path / "letters"))
    gateway = SmtpGateway(settings)
    assert (gateway.host, gateway.port, gateway.sender) == ("mail.internal", 2525, "notices@crm.example.cn")
    batcher = LetterBatcher(settings, clock=lambda: datetime(2026, 12, 1, 9, 0, tzinfo=BEIJING))
    assert (await batcher.send(message(channel="letter", to="", postal_address="上海市浦东新区世纪大道100号"))).accepted
    assert (tmp_path / "letters" / "shenzhen" / "2026-12-01.jsonl").exists()
