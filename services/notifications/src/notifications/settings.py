"""Notifications settings: the shared ones plus channels, the send gate and recipients.

The channel names (`sms_url`, `smtp_host`, ...) are read by the gateway adapters too.
"""

from __future__ import annotations

import json
from typing import Any

from crm_runtime.settings import ServiceSettings
from pydantic import Field, field_validator


class NotificationsSettings(ServiceSettings):
    service_name: str = "notifications"

    # Channels (read by adapters/sms.py, email.py, letters.py).
    sms_url: str = Field("http://127.0.0.1:8013", validation_alias="CRM_NOTIFICATIONS_SMS_URL")
    sms_access_key: str = Field("dev-sms-access-key", validation_alias="CRM_NOTIFICATIONS_SMS_ACCESS_KEY")
    sms_sign_name: str = Field("客户中心", validation_alias="CRM_NOTIFICATIONS_SMS_SIGN_NAME")
    smtp_host: str = Field("127.0.0.1", validation_alias="CRM_NOTIFICATIONS_SMTP_HOST")
    smtp_port: int = Field(8025, validation_alias="CRM_NOTIFICATIONS_SMTP_PORT")
    smtp_sender: str = Field("notices@crm.example.cn", validation_alias="CRM_NOTIFICATIONS_SMTP_SENDER")
    letters_dir: str = Field(".data/letters", validation_alias="CRM_NOTIFICATIONS_LETTERS_DIR")
    # Providers' callbacks (receipts, replies) carry this in `X-Provider-Token`.
    provider_token: str = Field("dev-provider-token", validation_alias="CRM_NOTIFICATIONS_PROVIDER_TOKEN")
    # The provider's rate, shared by transactional messages (first) and broadcasts. The default
    # is the local SMS sink's (CRM_SMS_SINK_RATE_PER_S, 20/s): past it a provider answers limit
    # control and the messages wait for retries. Set it to the provider account's QPS.
    sms_rate_per_s: float = Field(20.0, gt=0, validation_alias="CRM_NOTIFICATIONS_SMS_RATE_PER_S")
    # "module:function" returning {channel: Gateway}; the default builds the real adapters.
    gateway_factory: str = Field("notifications.adapters.channels:default_gateways",
                                 validation_alias="CRM_NOTIFICATIONS_GATEWAY_FACTORY")

    # The send gate.
    send_window: str = Field("08:00-21:00", validation_alias="CRM_NOTIFICATIONS_SEND_WINDOW")
    # Per-region windows overriding the default: {"chengdu": "09:00-21:30"}.
    region_send_windows: dict[str, str] = Field(default_factory=dict,
                                                validation_alias="CRM_NOTIFICATIONS_REGION_SEND_WINDOWS")
    timezone: str = Field("Asia/Shanghai", validation_alias="CRM_NOTIFICATIONS_TIMEZONE")
    # Messages a customer's household receives a day, over every channel (staff excluded).
    household_daily_cap: int = Field(5, ge=1, validation_alias="CRM_NOTIFICATIONS_HOUSEHOLD_DAILY_CAP")
    # Transient provider failures: attempts, and the first backoff (doubling).
    max_attempts: int = Field(5, ge=1, validation_alias="CRM_NOTIFICATIONS_MAX_ATTEMPTS")
    retry_backoff_s: float = Field(30.0, gt=0, validation_alias="CRM_NOTIFICATIONS_RETRY_BACKOFF_S")
    retry_backoff_max_s: float = Field(3600.0, gt=0, validation_alias="CRM_NOTIFICATIONS_RETRY_BACKOFF_MAX_S")

    # Staff recipients: the region's supervisors by user id, {"shenzhen": ["sup-1"]}; a region
    # without a list notifies its supervisors' shared inbox (`role:supervisor@<region>`).
    supervisors: dict[str, list[str]] = Field(default_factory=dict,
                                              validation_alias="CRM_NOTIFICATIONS_SUPERVISORS")

    @field_validator("region_send_windows", "supervisors", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value
