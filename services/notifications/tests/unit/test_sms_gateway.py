"""The SMS client's request building, signing, code mapping and callback parsing, no network."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from crm_devstack.sinks.sms import expected_signature
from notifications.adapters.gateways import OutboundMessage
from notifications.adapters.sms import (
    BEIJING,
    ProviderConfig,
    SmsGateway,
    parse_receipts,
    parse_replies,
    providers_from_json,
    result_for,
    send_batch_params,
    send_sms_params,
    signature,
)

PROVIDER = ProviderConfig(name="local", url="http://127.0.0.1:8013", access_key_id="local",
                          access_key_secret="local-sms-secret", sign_name="深圳客户中心",
                          templates={"case.acknowledged": "SMS_154950909"})
NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def sms(message_id="ntf-1", to="13800018000", template="case.acknowledged", **params) -> OutboundMessage:
    return OutboundMessage(message_id=message_id, channel="sms", region="shenzhen", language="zh-CN", to=to,
                           template_code=template, params=params or {"case_number": "SZ-2026-000123"},
                           subject="", body="您的投诉已受理")


def test_signature_matches_the_providers_published_example():
    # The worked example of the provider's RPC signature v1 documentation (DescribeRegions).
    params = {"TimeStamp": "2016-02-23T12:46:24Z", "Format": "XML", "AccessKeyId": "testid",
              "Action": "DescribeRegions", "SignatureMethod": "HMAC-SHA1",
              "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "Version": "2014-05-26",
              "SignatureVersion": "1.0"}
    assert signature(params, "testsecret", method="GET") == "CT9X0VtwR86fNWSnsc6v8YGOjuE="


def test_send_sms_request_carries_our_ledger_id_sign_template_and_chinese_params():
    params = send_sms_params(PROVIDER, sms(项目="翡翠湾"), now=NOW, nonce="n-1")
    assert params["Action"] == "SendSms"
    assert params["Version"] == "2017-05-25"
    assert params["PhoneNumbers"] == "13800018000"
    assert params["SignName"] == "深圳客户中心"
    assert params["TemplateCode"] == "SMS_154950909"  # our template id mapped to the provider's
    assert params["OutId"] == "ntf-1"
    assert json.loads(params["TemplateParam"]) == {"项目": "翡翠湾"}
    assert "翡翠湾" in params["TemplateParam"]  # not \\u-escaped: the provider counts characters
    assert params["Timestamp"] == "2026-12-01T12:00:00Z"
    # The sink's own implementation of the provider's check accepts it; a changed value does not.
    assert params["Signature"] == expected_signature(params, "local-sms-secret")
    tampered = {**params, "PhoneNumbers": "13900000000"}
    assert tampered["Signature"] != expected_signature(tampered, "local-sms-secret")


@pytest.mark.parametrize(("given", "sent"), [
    ("+86 138-0001-8000", "13800018000"), ("０086 13800018000", "13800018000"),
    ("0755-88886666", "0755-88886666"), ("12345", "12345"),  # not mobiles: the provider refuses them
])
def test_numbers_go_to_the_provider_as_eleven_digits(given, sent):
    assert send_sms_params(PROVIDER, sms(to=given), now=NOW, nonce="n-5")["PhoneNumbers"] == sent


def test_unmapped_template_goes_as_our_id():
    params = send_sms_params(PROVIDER, sms(template="survey.invite", x="1"), now=NOW, nonce="n-2")
    assert params["TemplateCode"] == "survey.invite"


def test_batch_request_has_parallel_arrays_and_one_out_id_per_number():
    messages = [sms(f"ntf-{i}", f"1380001800{i}", 项目=f"P{i}") for i in range(3)]
    params = send_batch_params(PROVIDER, messages, now=NOW, nonce="n-3")
    assert params["Action"] == "SendBatchSms"
    assert json.loads(params["PhoneNumberJson"]) == ["13800018000", "13800018001", "13800018002"]
    assert json.loads(params["SignNameJson"]) == ["深圳客户中心"] * 3
    assert json.loads(params["TemplateParamJson"]) == [{"项目": "P0"}, {"项目": "P1"}, {"项目": "P2"}]
    assert json.loads(params["OutIdJson"]) == ["ntf-0", "ntf-1", "ntf-2"]
    assert params["Signature"] == expected_signature(params, "local-sms-secret")


def test_a_batch_takes_one_template():
    with pytest.raises(ValueError):
        send_batch_params(PROVIDER, [sms("a"), sms("b", template="other")], now=NOW, nonce="n-4")


@pytest.mark.parametrize(("code", "accepted", "permanent"), [
    ("OK", True, False),
    ("isv.MOBILE_NUMBER_ILLEGAL", False, True),
    ("isv.SMS_TEMPLATE_ILLEGAL", False, True),
    ("isv.BUSINESS_LIMIT_CONTROL", False, False),
    ("isv.DAY_LIMIT_CONTROL", False, False),
    ("isp.SYSTEM_ERROR", False, False),
    ("SomethingNew", False, False),  # unknown codes are retried, never thrown away
])
def test_provider_codes_map_to_accepted_permanent_or_transient(code, accepted, permanent):
    result = result_for(code, "message", "biz-1")
    assert (result.accepted, result.permanent) == (accepted, permanent)
    assert (result.provider_ref == "biz-1") is accepted
    assert (result.error is None) is accepted


def test_receipts_parse_with_our_out_id_and_beijing_time():
    body = json.dumps([
        {"phone_number": "13800018000", "send_time": "2017-01-01 00:00:00", "report_time": "2017-01-01 00:00:03",
         "success": True, "err_code": "DELIVERED", "err_msg": "用户接收成功", "sms_size": "1",
         "biz_id": "12345", "out_id": "ntf-1"},
        {"phone_number": "13800018001", "send_time": "2017-01-01 00:00:00", "report_time": "2017-01-01 00:00:09",
         "success": False, "err_code": "MK:0001", "err_msg": "", "sms_size": "1", "biz_id": "12345",
         "out_id": "ntf-2"},
    ], ensure_ascii=False).encode()
    delivered, failed = parse_receipts(body)
    assert (delivered.out_id, delivered.delivered, delivered.error) == ("ntf-1", True, None)
    assert delivered.reported_at == datetime(2017, 1, 1, 0, 0, 3, tzinfo=BEIJING)
    assert (failed.out_id, failed.delivered, failed.error) == ("ntf-2", False, "MK:0001")


@pytest.mark.parametrize("body", [
    b"not json", b'{"out_id": "x"}', b"[1]",
    b'[{"success": true, "report_time": "2017-01-01 00:00:00"}]',
    b'[{"out_id": "x", "success": "yes", "report_time": "2017-01-01 00:00:00"}]',
    b'[{"out_id": "x", "success": true, "report_time": "yesterday"}]',
])
def test_malformed_receipts_are_refused(body):
    with pytest.raises(ValueError):
        parse_receipts(body)


def test_replies_parse_td():
    body = json.dumps([{"phone_number": "13800018000", "send_time": "2026-12-01 20:00:00", "content": " TD ",
                        "sign_name": "客户中心", "dest_code": "", "sequence_id": 1234}]).encode()
    (reply,) = parse_replies(body)
    assert (reply.phone, reply.content, reply.sign_name) == ("13800018000", "TD", "客户中心")
    assert reply.received_at == datetime(2026, 12, 1, 20, 0, tzinfo=BEIJING)
    with pytest.raises(ValueError):
        parse_replies(b'[{"content": "TD", "send_time": "2026-12-01 20:00:00"}]')


def test_region_routing_skips_providers_that_refuse_real_estate_senders():
    routes = providers_from_json(json.dumps({
        "shanghai": [{"name": "strict", "url": "http://a", "access_key": "a:1", "refuses_real_estate": True},
                     {"name": "open", "url": "http://b", "access_key": "b:2", "sign_name": "上海客户中心"}],
        "*": [{"name": "default", "url": "http://c", "access_key": "secret-only"}],
    }))
    gateway = SmsGateway(routes)
    assert gateway.provider_for("shanghai").name == "open"
    assert gateway.provider_for("shanghai").sign_name == "上海客户中心"
    assert gateway.provider_for("shenzhen").name == "default"
    assert (gateway.provider_for("shenzhen").access_key_id, gateway.provider_for("shenzhen").access_key_secret) \
        == ("local", "secret-only")


def test_a_region_with_only_refusing_providers_fails_at_start():
    strict = ProviderConfig(name="strict", url="http://a", access_key_id="a", access_key_secret="1",
                            refuses_real_estate=True)
    with pytest.raises(LookupError):
        SmsGateway({"beijing": [strict]})
    # A sender that is not a real-estate developer may use it.
    assert SmsGateway({"beijing": [strict]}, real_estate_sender=False).provider_for("beijing").name == "strict"


@pytest.mark.parametrize("text", ["[]", "not json", '{"x": []}', '{"x": [{"name": "n"}]}'])
def test_bad_provider_configuration_is_refused(text):
    with pytest.raises(ValueError):
        providers_from_json(text)
