"""SMS through a provider with the API of Alibaba Cloud SMS (dysmsapi 2017-05-25).

Requests are RPC-style form posts: ``Action=SendSms`` with ``PhoneNumbers``, ``SignName``,
``TemplateCode``, ``TemplateParam`` (JSON) and ``OutId`` (our ledger id, echoed back in every
delivery receipt), or ``Action=SendBatchSms`` with ``PhoneNumberJson``, ``SignNameJson``,
``TemplateParamJson``. The answer is ``{Code, Message, BizId, RequestId}``; ``Code == "OK"``
means accepted, not delivered.

Signing follows the provider's RPC signature v1, kept to what a form post needs: the
parameters (``Signature`` excluded) sorted by name, each name and value percent-encoded
(RFC 3986, UTF-8), joined as ``k=v&...``; the string to sign is
``POST&%2F&`` + that string percent-encoded again; ``Signature`` is the base64 of its
HMAC-SHA1 with the key ``<AccessKeySecret>&``. A nonce and a timestamp make each request
unique, so a replayed one is refused.

Batches: dysmsapi's ``SendBatchSms`` carries one ``OutId`` for the whole batch; we also send
``OutIdJson`` (one ledger id per number, in order), which the local sink echoes per number.
A provider that does not know it gets ``batch_size=1`` in its config: broadcasts then go one
``SendSms`` each.

Nothing here logs a phone number; log lines name the ledger id and the provider.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
from crm_runtime.pii import normalise_phone

from notifications.adapters.gateways import OutboundMessage, Receipt, Reply, SendResult, TimeoutUnknown

log = logging.getLogger(__name__)

API_VERSION = "2017-05-25"
BEIJING = ZoneInfo("Asia/Shanghai")
DEFAULT_REGION = "*"  # the provider list used for a region that has none of its own

# Codes after which the same request will never succeed: the caller marks the message failed.
# Everything else (isv.BUSINESS_LIMIT_CONTROL, isv.DAY_LIMIT_CONTROL, isv.AMOUNT_NOT_ENOUGH,
# isv.OUT_OF_SERVICE, isp.SYSTEM_ERROR, Throttling.User, a signature our configuration got
# wrong, codes new to us) is worth a retry later: the message is still wanted.
PERMANENT_CODES = frozenset({
    "isv.MOBILE_NUMBER_ILLEGAL", "isv.BLACK_KEY_CONTROL_LIMIT", "isv.MOBILE_IN_BLACK",
    "isv.SMS_SIGNATURE_ILLEGAL", "isv.SMS_TEMPLATE_ILLEGAL", "isv.TEMPLATE_MISSING_PARAMETERS",
    "isv.TEMPLATE_PARAMS_ILLEGAL", "isv.PARAM_LENGTH_LIMIT", "isv.PARAM_NOT_SUPPORT_URL",
    "isv.INVALID_JSON_PARAM", "isv.INVALID_PARAMETERS", "isv.EXTEND_CODE_ERROR",
    "isv.DOMESTIC_NUMBER_NOT_SUPPORTED", "isv.DENY_IP_RANGE",
})


@dataclass(frozen=True)
class ProviderConfig:
    """One SMS provider account: where it listens, how we sign, what it may send."""

    name: str
    url: str
    access_key_id: str
    access_key_secret: str
    sign_name: str = "客户中心"
    # Some providers do not take real-estate senders (industry rules): never route to them.
    refuses_real_estate: bool = False
    # Our template id → the provider's approved template code (SMS_123456789); unmapped ids
    # go as they are (the local sink accepts any).
    templates: Mapping[str, str] = field(default_factory=dict)
    batch_size: int = 100  # dysmsapi takes up to 100 numbers per SendBatchSms; 1 = no batches
    region_id: str = "cn-hangzhou"


def parse_access_key(access_key: str) -> tuple[str, str]:
    """``"id:secret"`` → (id, secret); a bare secret gets the id ``local``."""
    key_id, sep, secret = access_key.partition(":")
    return (key_id, secret) if sep else ("local", access_key)


def providers_from_json(text: str) -> dict[str, list[ProviderConfig]]:
    """Per-region provider lists from configuration, e.g.
    ``{"shenzhen": [{"name": "a", "url": "...", "access_key": "id:secret", "sign_name": "…"}],
    "*": [...]}``; each list is in order of preference. ValueError on anything else."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"SMS providers: not JSON ({exc.msg})") from exc
    if not isinstance(raw, dict):
        raise ValueError("SMS providers: expected an object of region → list of providers")
    routes: dict[str, list[ProviderConfig]] = {}
    for region, entries in raw.items():
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"SMS providers for {region!r}: expected a non-empty list")
        configs = []
        for entry in entries:
            if not isinstance(entry, dict) or not {"name", "url", "access_key"} <= entry.keys():
                raise ValueError(f"SMS providers for {region!r}: each needs name, url and access_key")
            key_id, secret = parse_access_key(str(entry["access_key"]))
            configs.append(ProviderConfig(
                name=str(entry["name"]), url=str(entry["url"]), access_key_id=key_id, access_key_secret=secret,
                sign_name=str(entry.get("sign_name", "客户中心")),
                refuses_real_estate=bool(entry.get("refuses_real_estate", False)),
                templates={str(k): str(v) for k, v in dict(entry.get("templates", {})).items()},
                batch_size=int(entry.get("batch_size", 100)),
            ))
        routes[str(region)] = configs
    return routes


def routes_from_settings(settings: Any) -> dict[str, list[ProviderConfig]]:
    """NotificationsSettings → routes: ``sms_providers`` (JSON, per region) when it has one,
    else one provider for every region from ``sms_url``, ``sms_access_key``, ``sms_sign_name``."""
    configured = getattr(settings, "sms_providers", None)
    if configured:
        return providers_from_json(configured if isinstance(configured, str) else json.dumps(configured))
    key_id, secret = parse_access_key(settings.sms_access_key)
    return {DEFAULT_REGION: [ProviderConfig(name="default", url=settings.sms_url, access_key_id=key_id,
                                            access_key_secret=secret, sign_name=settings.sms_sign_name)]}


# --- request building and signing (pure) -----------------------------------------------------


def percent_encode(value: str) -> str:
    return quote(value, safe="~")


def string_to_sign(params: Mapping[str, str], method: str = "POST") -> str:
    canonical = "&".join(f"{percent_encode(k)}={percent_encode(v)}"
                         for k, v in sorted(params.items()) if k != "Signature")
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"


def signature(params: Mapping[str, str], secret: str, method: str = "POST") -> str:
    digest = hmac.new(f"{secret}&".encode(), string_to_sign(params, method).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _common(action: str, provider: ProviderConfig, now: datetime, nonce: str) -> dict[str, str]:
    return {
        "Action": action, "Version": API_VERSION, "Format": "JSON", "RegionId": provider.region_id,
        "AccessKeyId": provider.access_key_id, "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
        "SignatureNonce": nonce, "Timestamp": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _signed(params: dict[str, str], provider: ProviderConfig) -> dict[str, str]:
    params["Signature"] = signature(params, provider.access_key_secret)
    return params


def provider_number(raw: str) -> str:
    """The 11 digits the provider wants ("+86 138-0001-8000" → "13800018000"); anything that is
    not a mainland mobile goes as given, for the provider to refuse by its own code."""
    canonical = normalise_phone(raw)
    return canonical if canonical and "-" not in canonical else raw


def send_sms_params(provider: ProviderConfig, message: OutboundMessage, *, now: datetime,
                    nonce: str) -> dict[str, str]:
    params = _common("SendSms", provider, now, nonce)
    params.update({
        "PhoneNumbers": provider_number(message.to),
        "SignName": provider.sign_name,
        "TemplateCode": provider.templates.get(message.template_code, message.template_code),
        "TemplateParam": json.dumps(message.params, ensure_ascii=False, separators=(",", ":")),
        "OutId": message.message_id,
    })
    return _signed(params, provider)


def send_batch_params(provider: ProviderConfig, messages: Sequence[OutboundMessage], *, now: datetime,
                      nonce: str) -> dict[str, str]:
    """One SendBatchSms for messages of one template (the API's rule)."""
    codes = {m.template_code for m in messages}
    if len(codes) != 1:
        raise ValueError("a batch takes messages of one template")

    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    params = _common("SendBatchSms", provider, now, nonce)
    code = codes.pop()
    params.update({
        "PhoneNumberJson": dumps([provider_number(m.to) for m in messages]),
        "SignNameJson": dumps([provider.sign_name] * len(messages)),
        "TemplateCode": provider.templates.get(code, code),
        "TemplateParamJson": dumps([m.params for m in messages]),
        "OutId": messages[0].message_id,
        "OutIdJson": dumps([m.message_id for m in messages]),
    })
    return _signed(params, provider)


def result_for(code: str | None, message: str | None, biz_id: str | None) -> SendResult:
    """The provider's answer as our port's verdict; an unknown code is worth a retry."""
    if code == "OK":
        return SendResult(accepted=True, provider_ref=biz_id)
    error = f"{code}: {message}" if message else str(code)
    return SendResult(accepted=False, permanent=code in PERMANENT_CODES, error=error)


# --- callbacks (pure) ------------------------------------------------------------------------


def _provider_time(value: Any, field_name: str) -> datetime:
    """The provider's ``2017-01-01 00:00:00``, Beijing time."""
    if not isinstance(value, str):
        raise ValueError(f"{field_name}: expected a time string")
    try:
        parsed = datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError as exc:
        raise ValueError(f"{field_name}: not a time like 2017-01-01 00:00:00") from exc
    return parsed.replace(tzinfo=BEIJING)


def _json_array(body: bytes, what: str) -> list[dict[str, Any]]:
    try:
        items = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what}: not JSON") from exc
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValueError(f"{what}: expected a JSON array of objects")
    return items


def parse_receipts(body: bytes) -> list[Receipt]:
    """Delivery receipts as the provider pushes them (SmsReport, a JSON array). A receipt can
    come twice and late: the caller applies them idempotently on ``out_id``."""
    receipts = []
    for index, item in enumerate(_json_array(body, "receipts")):
        out_id, success = item.get("out_id"), item.get("success")
        if not isinstance(out_id, str) or not out_id:
            raise ValueError(f"receipts[{index}].out_id: missing")
        if not isinstance(success, bool):
            raise ValueError(f"receipts[{index}].success: expected true or false")
        reported = _provider_time(item.get("report_time"), f"receipts[{index}].report_time")
        error = None if success else str(item.get("err_code") or "UNKNOWN")
        receipts.append(Receipt(out_id=out_id, delivered=success, error=error, reported_at=reported))
    return receipts


def parse_replies(body: bytes) -> list[Reply]:
    """Customers' replies (SmsUp, a JSON array), e.g. ``TD`` to unsubscribe."""
    replies = []
    for index, item in enumerate(_json_array(body, "replies")):
        phone, content = item.get("phone_number"), item.get("content")
        if not isinstance(phone, str) or not phone:
            raise ValueError(f"replies[{index}].phone_number: missing")
        if not isinstance(content, str):
            raise ValueError(f"replies[{index}].content: missing")
        sent = _provider_time(item.get("send_time"), f"replies[{index}].send_time")
        sign = item.get("sign_name")
        replies.append(Reply(phone=phone, content=content.strip(), received_at=sent,
                             sign_name=sign if isinstance(sign, str) and sign else None))
    return replies


# --- the gateway -----------------------------------------------------------------------------


class SmsGateway:
    """The SMS channel. ``providers`` maps a region to its providers in order of preference
    (``"*"`` for every other region), or is the service's settings (see
    :func:`routes_from_settings`); we are a real-estate sender, so providers marked
    ``refuses_real_estate`` are skipped. Pacing is the caller's: one limiter in front of
    the provider serves every sender of the process (the provider's limit is per account)."""

    def __init__(self, providers: Mapping[str, Sequence[ProviderConfig]] | Any, *, real_estate_sender: bool = True,
                 timeout_s: float = 5.0, client: httpx.AsyncClient | None = None):
        if not isinstance(providers, Mapping):  # the settings object, as the channel factory passes it
            providers = routes_from_settings(providers)
        self.real_estate_sender = real_estate_sender
        self.routes = {region: list(configs) for region, configs in providers.items()}
        for region in self.routes:
            self.provider_for(region)  # fail at start, not at the first customer's message
        self.client = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout_s))

    @classmethod
    def single(cls, url: str, access_key: str, sign_name: str = "客户中心", **kwargs: Any) -> SmsGateway:
        """One provider for every region (the local sink by default): the settings' sms_url,
        sms_access_key (``id:secret``), sms_sign_name."""
        key_id, secret = parse_access_key(access_key)
        provider = ProviderConfig(name="default", url=url, access_key_id=key_id, access_key_secret=secret,
                                  sign_name=sign_name)
        return cls({DEFAULT_REGION: [provider]}, **kwargs)

    def provider_for(self, region: str) -> ProviderConfig:
        configs = self.routes.get(region) or self.routes.get(DEFAULT_REGION) or []
        for provider in configs:
            if not (self.real_estate_sender and provider.refuses_real_estate):
                return provider
        raise LookupError(f"no SMS provider that takes real-estate senders for region {region!r}")

    async def _call(self, provider: ProviderConfig, params: dict[str, str], ref: str) -> SendResult:
        try:
            response = await self.client.post(provider.url.rstrip("/") + "/", data=params)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # Nothing reached the provider: safe to try again later.
            return SendResult(accepted=False, error=f"connect: {type(exc).__name__}")
        except httpx.TimeoutException as exc:
            log.warning("SMS provider did not answer in time", extra={"message_id": ref, "provider": provider.name})
            raise TimeoutUnknown(ref) from exc
        except httpx.TransportError as exc:
            # The request may have been read before the connection broke: as good as a timeout.
            raise TimeoutUnknown(ref) from exc
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            return SendResult(accepted=False, error=f"HTTP {response.status_code} without a provider answer")
        result = result_for(answer.get("Code"), answer.get("Message"), answer.get("BizId"))
        log.info("SMS provider answered", extra={
            "message_id": ref, "provider": provider.name, "code": answer.get("Code"),
            "request_id": answer.get("RequestId")})
        return result

    async def send(self, message: OutboundMessage) -> SendResult:
        try:
            provider = self.provider_for(message.region)
        except LookupError as exc:
            return SendResult(accepted=False, permanent=True, error=str(exc))
        params = send_sms_params(provider, message, now=datetime.now(UTC), nonce=uuid.uuid4().hex)
        return await self._call(provider, params, message.message_id)

    async def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult | TimeoutUnknown]:
        """Send a broadcast: one result per message, in order. A :class:`TimeoutUnknown` in the
        list means that message's fate is unknown (reconcile from receipts, never re-send)."""
        results: dict[int, SendResult | TimeoutUnknown] = {}
        for provider, chunk in self._chunks(messages, results):
            if len(chunk) == 1 or provider.batch_size <= 1:
                for index, message in chunk:
                    results[index] = await self._send_one(message)
                continue
            batch = [m for _, m in chunk]
            params = send_batch_params(provider, batch, now=datetime.now(UTC), nonce=uuid.uuid4().hex)
            try:
                outcome: SendResult | TimeoutUnknown = await self._call(provider, params, batch[0].message_id)
            except TimeoutUnknown as exc:
                outcome = exc
            if isinstance(outcome, SendResult) and outcome.permanent:
                # One bad number refuses the whole batch: send singly, each gets its own verdict.
                for index, message in chunk:
                    results[index] = await self._send_one(message)
                continue
            for index, message in chunk:
                results[index] = TimeoutUnknown(message.message_id) if isinstance(outcome, TimeoutUnknown) else outcome
        return [results[i] for i in range(len(messages))]

    async def _send_one(self, message: OutboundMessage) -> SendResult | TimeoutUnknown:
        try:
            return await self.send(message)
        except TimeoutUnknown as exc:
            return exc

    def _chunks(self, messages: Sequence[OutboundMessage], results: dict[int, SendResult | TimeoutUnknown]
                ) -> Iterable[tuple[ProviderConfig, list[tuple[int, OutboundMessage]]]]:
        groups: dict[tuple[str, str], tuple[ProviderConfig, list[tuple[int, OutboundMessage]]]] = {}
        for index, message in enumerate(messages):
            try:
                provider = self.provider_for(message.region)
            except LookupError as exc:
                results[index] = SendResult(accepted=False, permanent=True, error=str(exc))
                continue
            key = (provider.name + "\0" + provider.url, message.template_code)
            groups.setdefault(key, (provider, []))[1].append((index, message))
        for provider, members in groups.values():
            size = max(1, min(provider.batch_size, 100))
            for start in range(0, len(members), size):
                yield provider, members[start:start + size]

    async def close(self) -> None:
        await self.client.aclose()
