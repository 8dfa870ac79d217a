"""A local SMS provider with the API of Alibaba Cloud SMS (dysmsapi), for `make run` and tests.

    crm-stack sms-sink                                     (port 8013, CRM_SMS_SINK_* settings)
    uvicorn --factory crm_devstack.sinks.sms:create_app

It behaves like the real provider where the notifications service must cope with it:

* ``POST /`` takes ``Action=SendSms`` and ``Action=SendBatchSms`` form posts signed with
  the provider's RPC signature v1 (HMAC-SHA1; see notifications/adapters/sms.py), refuses a
  bad signature, a stale timestamp or reused nonce (a replay), an illegal number (``isv.MOBILE_NUMBER_ILLEGAL``), and
  answers ``isv.BUSINESS_LIMIT_CONTROL`` past a rate (messages per second, a token bucket)
  or a per-number daily limit;
* every accepted message is appended to ``messages.jsonl`` (one JSON object a line) in its
  data folder, ``.data/sinks/sms/`` by default, and ``GET /messages?phone=`` reads it back;
* delivery receipts (SmsReport: a JSON array) are posted to the receipts callback after a
  delay, ``receipt_copies`` times (2 by default: receivers must be idempotent), with the
  ``X-Provider-Token`` header; a number ending in ``undeliverable_suffix`` gets a failed one;
* ``POST /simulate/reply {phone, content}`` posts a customer's reply (SmsUp) to the replies
  callback, e.g. ``TD`` to unsubscribe.

No phone number is written to its log; the data files hold them on purpose.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

log = logging.getLogger("crm_devstack.sinks.sms")
BEIJING = ZoneInfo("Asia/Shanghai")
MOBILE = re.compile(r"1[3-9]\d{9}")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
REPLAY_WINDOW_S = 900  # the provider accepts a request stamped within 15 minutes


def _default_dir() -> Path:
    from crm_devstack.servers import project_root

    return Path(os.environ.get("CRM_DATA_DIR", project_root() / ".data")) / "sinks" / "sms"


@dataclass
class SmsSinkConfig:
    data_dir: Path = field(default_factory=_default_dir)
    rate_per_s: float = 20.0
    daily_limit_per_number: int = 10
    receipt_delay_s: float = 1.0
    receipt_copies: int = 2
    receipts_url: str | None = "http://127.0.0.1:8003/v1/providers/sms/receipts"
    replies_url: str | None = "http://127.0.0.1:8003/v1/providers/sms/replies"
    # The notifications service's development defaults (sms_access_key, provider_token).
    provider_token: str = "dev-provider-token"
    access_keys: dict[str, str] = field(default_factory=lambda: {"local": "dev-sms-access-key"})
    undeliverable_suffix: str = "0000"
    callback_retries_s: tuple[float, ...] = (1.0, 5.0, 10.0)  # the real provider waits 1, 5, 10 min
    # A slow provider: it takes the message, then answers this late (the client times out,
    # the receipt still comes).
    answer_delay_s: float = 0.0
    # Its day is Beijing's, as the provider's daily limit; a test pins it to stay in one day.
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(BEIJING))

    @classmethod
    def from_env(cls) -> SmsSinkConfig:
        env = os.environ.get
        config = cls()
        if env("CRM_SMS_SINK_DIR"):
            config.data_dir = Path(env("CRM_SMS_SINK_DIR", ""))
        config.rate_per_s = float(env("CRM_SMS_SINK_RATE_PER_S", config.rate_per_s))
        config.daily_limit_per_number = int(env("CRM_SMS_SINK_DAILY_LIMIT", config.daily_limit_per_number))
        config.receipt_delay_s = float(env("CRM_SMS_SINK_RECEIPT_DELAY_S", config.receipt_delay_s))
        config.receipt_copies = int(env("CRM_SMS_SINK_RECEIPT_COPIES", config.receipt_copies))
        config.answer_delay_s = float(env("CRM_SMS_SINK_ANSWER_DELAY_S", config.answer_delay_s))
        config.receipts_url = env("CRM_SMS_SINK_RECEIPTS_URL", config.receipts_url) or None
        config.replies_url = env("CRM_SMS_SINK_REPLIES_URL", config.replies_url) or None
        config.provider_token = env("CRM_SMS_SINK_PROVIDER_TOKEN", config.provider_token) or ""
        if env("CRM_SMS_SINK_ACCESS_KEYS"):  # "id:secret,id2:secret2"
            pairs = (item.partition(":") for item in env("CRM_SMS_SINK_ACCESS_KEYS", "").split(","))
            config.access_keys = {key_id: secret for key_id, _, secret in pairs if key_id}
        return config


# --- the provider's rules (no I/O) -----------------------------------------------------------


def _percent(value: str) -> str:
    return quote(value, safe="~")


def expected_signature(params: dict[str, str], secret: str) -> str:
    """The provider's RPC signature v1 over a POST to ``/`` (written apart from the client's
    on purpose: the tests of each check the other)."""
    canonical = "&".join(f"{_percent(k)}={_percent(v)}" for k, v in sorted(params.items()) if k != "Signature")
    to_sign = f"POST&{_percent('/')}&{_percent(canonical)}"
    return base64.b64encode(hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()).decode()


class TokenBucket:
    def __init__(self, rate_per_s: float, clock: Any = time.monotonic):
        self.rate, self.clock = rate_per_s, clock
        self.capacity = max(1.0, rate_per_s)
        self.tokens, self.updated = self.capacity, clock()

    def take(self, count: int) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < count:
            return False
        self.tokens -= count
        return True


class Refused(Exception):
    def __init__(self, code: str, message: str, status: int = 200):
        super().__init__(code)
        self.code, self.message, self.status = code, message, status


# --- the sink --------------------------------------------------------------------------------


class SmsSink:
    def __init__(self, config: SmsSinkConfig):
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.messages_file = config.data_dir / "messages.jsonl"
        self.receipts_file = config.data_dir / "receipts.jsonl"
        self.replies_file = config.data_dir / "replies.jsonl"
        self.bucket = TokenBucket(config.rate_per_s)
        self.nonces: dict[str, float] = {}  # insertion order is time order: prune from the front
        self.tasks: set[asyncio.Task[None]] = set()
        self.client = httpx.AsyncClient(timeout=10.0)
        # The daily counts survive a restart: they are rebuilt from what was sent today.
        self.sent_today: Counter[tuple[str, str]] = Counter()
        for record in self.read(self.messages_file):
            self.sent_today[(record["received_at"][:10], record["phone_number"])] += 1

    @staticmethod
    def read(path: Path) -> list[dict[str, Any]]:
        if not path.exists():
            return []
        with path.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    @staticmethod
    def append(path: Path, records: list[dict[str, Any]]) -> None:
        with path.open("a", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def authenticate(self, params: dict[str, str]) -> None:
        key_id = params.get("AccessKeyId", "")
        secret = self.config.access_keys.get(key_id)
        if secret is None:
            raise Refused("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)
        if not hmac.compare_digest(params.get("Signature", ""), expected_signature(params, secret)):
            raise Refused("SignatureDoesNotMatch", "Specified signature is not matched with our calculation.", 400)
        try:
            stamped = datetime.strptime(params.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError as exc:
            raise Refused("InvalidTimeStamp.Format", "Specified time stamp does not comply with ISO8601.", 400) from exc
        if abs((datetime.now(UTC) - stamped).total_seconds()) > REPLAY_WINDOW_S:
            raise Refused("InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.", 400)
        # Within the window a nonce is remembered, so a replayed request is refused.
        nonce, now = params.get("SignatureNonce", ""), time.monotonic()
        while self.nonces and now - next(iter(self.nonces.values())) > REPLAY_WINDOW_S:
            del self.nonces[next(iter(self.nonces))]
        if not nonce or nonce in self.nonces:
            raise Refused("SignatureNonceUsed", "Specified signature nonce was used already.", 400)
        self.nonces[nonce] = now

    @staticmethod
    def _json(params: dict[str, str], name: str) -> Any:
        try:
            return json.loads(params.get(name, ""))
        except json.JSONDecodeError as exc:
            raise Refused("isv.INVALID_JSON_PARAM", f"{name} is not valid JSON") from exc

    def requested(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """One entry per number, or Refused with the provider's code."""
        action = params.get("Action")
        template = params.get("TemplateCode", "")
        if action == "SendSms":
            phones = [p.strip() for p in params.get("PhoneNumbers", "").split(",") if p.strip()]
            signs = [params.get("SignName", "")] * len(phones)
            values = [self._json(params, "TemplateParam") if params.get("TemplateParam") else {}] * len(phones)
            out_ids = [params.get("OutId", "")] * len(phones)
        elif action == "SendBatchSms":
            phones, signs = self._json(params, "PhoneNumberJson"), self._json(params, "SignNameJson")
            values = self._json(params, "TemplateParamJson") if params.get("TemplateParamJson") else [{}] * len(phones)
            out_ids = (self._json(params, "OutIdJson") if params.get("OutIdJson")
                       else [params.get("OutId", "")] * len(phones))
            if not (isinstance(phones, list) and isinstance(signs, list) and isinstance(values, list)
                    and isinstance(out_ids, list) and len(phones) == len(signs) == len(values) == len(out_ids)):
                raise Refused("isv.INVALID_PARAMETERS", "the JSON arrays differ in length")
            if len(phones) > 100:
                raise Refused("isv.MOBILE_COUNT_OVER_LIMIT", "at most 100 numbers a batch")
        else:
            raise Refused("InvalidAction.NotFound", "Specified api is not found.", 404)
        if not phones:
            raise Refused("MissingPhoneNumbers", "PhoneNumbers is mandatory for this action.", 400)
        if not template:
            raise Refused("isv.SMS_TEMPLATE_ILLEGAL", "TemplateCode is missing")
        entries = []
        for phone, sign, value, out_id in zip(phones, signs, values, out_ids, strict=True):
            if not isinstance(phone, str) or not MOBILE.fullmatch(phone):
                raise Refused("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号 / illegal mobile number")
            if not isinstance(sign, str) or not sign:
                raise Refused("isv.SMS_SIGNATURE_ILLEGAL", "签名不合法 / illegal sign name")
            if not isinstance(value, dict):
                raise Refused("isv.INVALID_JSON_PARAM", "TemplateParam must be a JSON object")
            entries.append({"phone_number": phone, "sign_name": sign, "template_code": template,
                            "template_param": value, "out_id": str(out_id or "")})
        return entries

    def admit(self, entries: list[dict[str, Any]], now: datetime) -> None:
        day = now.strftime("%Y-%m-%d")
        wanted = Counter(e["phone_number"] for e in entries)
        limit = self.config.daily_limit_per_number
        if any(self.sent_today[(day, phone)] + n > limit for phone, n in wanted.items()):
            raise Refused("isv.BUSINESS_LIMIT_CONTROL", f"触发天级流控Permits:{limit}")
        if not self.bucket.take(len(entries)):
            raise Refused("isv.BUSINESS_LIMIT_CONTROL", f"触发秒级流控Permits:{self.config.rate_per_s:g}")

    async def handle(self, params: dict[str, str]) -> dict[str, Any]:
        request_id = str(uuid.uuid4()).upper()
        self.authenticate(params)
        entries = self.requested(params)
        now = self.config.clock()
        self.admit(entries, now)
        biz_id = f"{secrets.randbelow(10**18):018d}^0"
        for entry in entries:
            entry.update(biz_id=biz_id, request_id=request_id, action=params["Action"],
                         received_at=now.strftime(TIME_FORMAT),
                         text=f"【{entry['sign_name']}】{entry['template_code']} "
                              + json.dumps(entry["template_param"], ensure_ascii=False))
            self.sent_today[(now.strftime("%Y-%m-%d"), entry["phone_number"])] += 1
        await asyncio.to_thread(self.append, self.messages_file, entries)
        log.info("sms sink accepted %d message(s)", len(entries), extra={"biz_id": biz_id})
        self._spawn(self._send_receipts(entries))
        if self.config.answer_delay_s:
            await asyncio.sleep(self.config.answer_delay_s)
        return {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": request_id}

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def receipts_for(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        reported = datetime.now(BEIJING).strftime(TIME_FORMAT)
        receipts = []
        for e in entries:
            ok = not e["phone_number"].endswith(self.config.undeliverable_suffix)
            receipts.append({
                "phone_number": e["phone_number"], "send_time": e["received_at"], "report_time": reported,
                "success": ok, "err_code": "DELIVERED" if ok else "UNDELIV",
                "err_msg": "用户接收成功" if ok else "用户无法接收 / undeliverable",
                "sms_size": "1", "biz_id": e["biz_id"], "out_id": e["out_id"]})
        return receipts

    async def _send_receipts(self, entries: list[dict[str, Any]]) -> None:
        if not self.config.receipts_url:
            return
        for copy in range(1, max(1, self.config.receipt_copies) + 1):
            # The second copy comes later still: receipts arrive twice and late.
            await asyncio.sleep(self.config.receipt_delay_s * copy)
            await self.post(self.config.receipts_url, self.receipts_for(entries), self.receipts_file, copy=copy)

    async def post(self, url: str, payload: list[dict[str, Any]], journal: Path, **extra: Any) -> int | None:
        """POST a callback as the provider does: retried a few times unless answered 200."""
        status: int | None = None
        attempts = 0
        for pause in (0.0, *self.config.callback_retries_s):
            await asyncio.sleep(pause)
            attempts += 1
            try:
                response = await self.client.post(url, json=payload,
                                                   headers={"X-Provider-Token": self.config.provider_token})
                status = response.status_code
            except httpx.HTTPError as exc:
                log.warning("sms sink callback failed: %s", type(exc).__name__)
                status = None
            if status == 200:
                break
        await asyncio.to_thread(self.append, journal, [{
            "posted_at": datetime.now(BEIJING).strftime(TIME_FORMAT), "url": url, "status": status,
            "attempts": attempts, "payload": payload, **extra}])
        return status

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.client.aclose()


class SimulatedReply(BaseModel):
    phone: str = Field(pattern=r"^1[3-9]\d{9}$", description="the customer's mobile number")
    content: str = Field(min_length=1, max_length=500, examples=["TD"])
    sign_name: str = "客户中心"
    dest_code: str = ""


def create_app(config: SmsSinkConfig | None = None) -> FastAPI:
    sink = SmsSink(config or SmsSinkConfig.from_env())

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        yield
        await sink.close()

    app = FastAPI(title="Local SMS provider (dysmsapi shape)", description=__doc__ or "", lifespan=lifespan)
    app.state.sink = sink

    @app.post("/")
    async def rpc(request: Request) -> JSONResponse:
        form = await request.form()
        params = {k: str(v) for k, v in form.items()}
        try:
            return JSONResponse(await sink.handle(params))
        except Refused as refusal:
            log.info("sms sink refused a request: %s", refusal.code)
            return JSONResponse({"Code": refusal.code, "Message": refusal.message,
                                 "RequestId": str(uuid.uuid4()).upper()}, status_code=refusal.status)

    @app.get("/messages")
    async def messages(phone: str | None = None, out_id: str | None = None) -> dict[str, Any]:
        records = await asyncio.to_thread(sink.read, sink.messages_file)
        return {"messages": [r for r in records if (phone is None or r["phone_number"] == phone)
                             and (out_id is None or r["out_id"] == out_id)]}

    @app.get("/receipts")
    async def receipts(out_id: str | None = None) -> dict[str, Any]:
        posts = await asyncio.to_thread(sink.read, sink.receipts_file)
        return {"posts": [p for p in posts if out_id is None or any(r["out_id"] == out_id for r in p["payload"])]}

    @app.post("/simulate/reply")
    async def simulate_reply(reply: SimulatedReply) -> dict[str, Any]:
        if not sink.config.replies_url:
            return {"posted": False, "status": None}
        uplink = [{"phone_number": reply.phone, "send_time": datetime.now(BEIJING).strftime(TIME_FORMAT),
                   "content": reply.content, "sign_name": reply.sign_name, "dest_code": reply.dest_code,
                   "sequence_id": secrets.randbelow(10**12)}]
        status = await sink.post(sink.config.replies_url, uplink, sink.replies_file)
        return {"posted": status == 200, "status": status}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app

