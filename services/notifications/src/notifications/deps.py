"""The dependency bag the notifications use cases receive, built once in bootstrap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from crm_runtime.leases import Timers

from notifications.adapters.gateways import Gateway
from notifications.adapters.ledger import Ledger
from notifications.adapters.pacing import RateLimiter
from notifications.adapters.store import Caps, Directory, OptOuts, StaffInbox, TemplateStore
from notifications.domain.gate import GatePolicy
from notifications.settings import NotificationsSettings


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class NotificationsDeps:
    settings: NotificationsSettings
    directory: Directory
    optouts: OptOuts
    templates: TemplateStore
    inbox: StaffInbox
    ledger: Ledger
    caps: Caps
    timers: Timers
    gateways: dict[str, Gateway]
    limiter: RateLimiter
    policy_for: Callable[[str], GatePolicy]
    tz: ZoneInfo
    clock: Callable[[], datetime] = field(default=_now)
