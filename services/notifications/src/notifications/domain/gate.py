"""The send gate: a message leaves only when consent, the opt-out ledger, the region's
send window, the holiday rule (marketing) and the household's daily cap all allow it.

Timing rules defer (to the first moment every one of them allows), never drop; consent
and opt-out suppress, with the reason staff see in the customer's history.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import chinese_calendar


class MessageClass(StrEnum):
    SERVICE = "service"  # about the customer's own case, contract or home: never capped
    NOTICE = "notice"  # a broadcast to many (milestones): capped, goes behind service ones
    MARKETING = "marketing"  # care greetings: consent, opt-out, no public holidays, capped
    STAFF = "staff"  # to a member of staff, in the console


@dataclass(frozen=True)
class SendWindow:
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> SendWindow:
        """'08:00-21:00'."""
        try:
            start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
        except ValueError as exc:
            raise ValueError(f"send window {text!r} is not HH:MM-HH:MM") from exc
        if not start < end:
            raise ValueError(f"send window {text!r} must start before it ends")
        return cls(start, end)

    def opens_at_or_after(self, at: datetime) -> datetime:
        """`at` if the window is open then, else the next opening (in `at`'s time zone)."""
        local = at.timetz().replace(tzinfo=None)
        if self.start <= local < self.end:
            return at
        day = at.date() if local < self.start else at.date() + timedelta(days=1)
        return datetime.combine(day, self.start, tzinfo=at.tzinfo)


# Statutory holidays on fixed dates: known for a year before the State Council publishes
# its calendar (and `chinese_calendar` ships it), so New Year's Day is never missed.
FIXED_HOLIDAYS = {(1, 1): "New Year's Day", (10, 1): "National Day", (10, 2): "National Day",
                  (10, 3): "National Day"}


def holiday_name(day: date) -> str | None:
    """The statutory holiday `day` belongs to ("Spring Festival", ...), None on other days."""
    try:
        holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:  # a year the package has no official dates for
        return FIXED_HOLIDAYS.get((day.month, day.day))
    return str(name) if holiday and name else None


def is_public_holiday(day: date) -> bool:
    """A statutory holiday of the mainland calendar (a plain weekend is not one)."""
    return holiday_name(day) is not None


def is_working_day(day: date) -> bool:
    """Monday to Friday, or a make-up working day (调休), unless it is a holiday."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return day.weekday() < 5 and (day.month, day.day) not in FIXED_HOLIDAYS


@dataclass(frozen=True)
class GatePolicy:
    window: SendWindow
    tz: ZoneInfo
    daily_cap: int
    holiday: Callable[[date], bool] = is_public_holiday
    working_day: Callable[[date], bool] = is_working_day


@dataclass(frozen=True)
class Decision:
    action: str  # "send" | "defer" | "suppress"
    until: datetime | None = None
    reason: str | None = None

    @classmethod
    def send(cls) -> Decision:
        return cls("send")

    @classmethod
    def defer(cls, until: datetime, reason: str) -> Decision:
        return cls("defer", until, reason)

    @classmethod
    def suppress(cls, reason: str) -> Decision:
        return cls("suppress", reason=reason)


def decide(*, channel: str, message_class: MessageClass, now: datetime, policy: GatePolicy,
           consented: bool, opted_out_channels: Collection[str], household_sent_on: Callable[[date], int],
           expires_at: datetime | None = None) -> Decision:
    """Whether a message may leave now, and if not, until when or why never.

    `opted_out_channels` holds the channels the customer opted out of ("*" for all);
    `household_sent_on(day)` counts the household's messages already sent that local day.
    """
    if message_class is MessageClass.STAFF:
        return Decision.send()
    if not consented:
        return Decision.suppress(f"no consent for {channel}")
    if message_class is MessageClass.MARKETING and ({channel, "*"} & set(opted_out_channels)):
        return Decision.suppress(f"opted out of marketing by {channel}")
    at = now.astimezone(policy.tz)
    first = at
    reasons: list[str] = []
    for _ in range(60):  # each rule can only push later; a few rounds settle it
        moved = at
        if channel in ("sms", "email"):
            opened = policy.window.opens_at_or_after(at)
            if opened != at:
                reasons.append("outside the send window")
                at = opened
        if message_class is MessageClass.MARKETING and policy.holiday(at.date()):
            day = at.date() + timedelta(days=1)
            while not policy.working_day(day) or policy.holiday(day):
                day += timedelta(days=1)
            reasons.append("public holiday")
            at = datetime.combine(day, policy.window.start, tzinfo=policy.tz)
        if message_class is not MessageClass.SERVICE and household_sent_on(at.date()) >= policy.daily_cap:
            reasons.append("household daily cap reached")
            at = datetime.combine(at.date() + timedelta(days=1), policy.window.start, tzinfo=policy.tz)
        if moved == at:
            break
    if at == first:
        return Decision.send()
    if expires_at is not None and at > expires_at:
        return Decision.suppress(f"expired: {reasons[0]} until after {expires_at.isoformat()}")
    return Decision.defer(at, "; ".join(dict.fromkeys(reasons)))
