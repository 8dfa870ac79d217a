"""Triggers: which event causes which message, to whom, of which class, and when.

Each rule is a plain function from a contract event to `Intent`s; nothing here reads a
store or sends anything. The dispatcher turns an intent into one ledger entry per
recipient and channel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from crm_contracts.events import cases as c
from crm_contracts.events import partner as p
from crm_contracts.events import surveys as s
from crm_contracts.regions import KNOWN_REGIONS

from notifications.domain.gate import MessageClass, holiday_name, is_working_day

# Customers: SMS, else e-mail. Staff: their inbox.
PHONE_FIRST = ("sms", "email")
STAFF = ("staff",)
LETTER_MILESTONES = {p.Milestone.SITE_OPEN_DAY, p.Milestone.DELIVERY}
WELCOME_WITHIN = timedelta(days=7)
VISIT_NOTICE_AHEAD = timedelta(days=7)


@dataclass(frozen=True)
class Customer:
    customer_id: str


@dataclass(frozen=True)
class Staff:
    recipient: str  # a user id, or a shared inbox: role:supervisor@shenzhen, dept:<department>@<region>


@dataclass(frozen=True)
class Owners:
    project: str | None  # None: every owner of the intent's region (holiday greetings)
    building: str | None  # None: every building of the project


Audience = Customer | Staff | Owners


@dataclass(frozen=True)
class Intent:
    template_id: str
    message_class: MessageClass
    region: str
    audience: Audience
    # One message per group; within a group the first usable channel is taken.
    channels: tuple[tuple[str, ...], ...]
    # What makes it "the same message" on a redelivery: the cause event's id, or a key of
    # the case when two events may ask for one message (an acknowledgement).
    cause_key: str
    params: dict[str, str] = field(default_factory=dict)
    not_before: datetime | None = None
    expires_at: datetime | None = None
    case_id: str | None = None
    survey_id: str | None = None


def centre_name(region: str, language: str = "zh-CN") -> str:
    info = KNOWN_REGIONS.get(region)
    if info is None:
        return "客户中心" if language == "zh-CN" else "Customer Centre"
    return f"{info.name_zh}客户中心" if language == "zh-CN" else f"{info.name_en} Customer Centre"


def supervisors(region: str, configured: dict[str, list[str]]) -> list[Staff]:
    ids = configured.get(region) or [f"role:supervisor@{region}"]
    return [Staff(i) for i in ids]


def _case_customer(template_id: str, event_id: str, e: c.CaseEventBase, cause_key: str | None = None,
                   **params: str) -> list[Intent]:
    if e.customer_id is None:  # an unknown caller: nobody to tell
        return []
    return [Intent(template_id, MessageClass.SERVICE, e.region, Customer(e.customer_id), (PHONE_FIRST,),
                   cause_key or event_id, {"case_number": e.case_number, **params}, case_id=e.case_id)]


def on_case_opened(event_id: str, e: c.CaseOpened) -> list[Intent]:
    """A complaint is acknowledged at once, with its case number. Keyed by the case, so the
    validation of the same case does not acknowledge it again."""
    if e.kind_hint not in (None, "complaint"):
        return []
    return _case_customer("case.acknowledged", event_id, e, cause_key=f"ack:{e.case_id}")


def on_case_validated(event_id: str, e: c.CaseValidated) -> list[Intent]:
    """A contact intake did not take for a complaint, validated as one: acknowledged now."""
    if e.outcome is not c.Validity.VALID:
        return []
    return _case_customer("case.acknowledged", event_id, e, cause_key=f"ack:{e.case_id}")


def on_progress_reported(event_id: str, e: c.CaseProgressReported) -> list[Intent]:
    return _case_customer("case.progress", event_id, e, message=e.message_to_customer)


def on_case_resolved(event_id: str, e: c.CaseResolved) -> list[Intent]:
    return _case_customer("case.resolved", event_id, e, summary=e.summary)


def _staff(template_id: str, event_id: str, region: str, recipients: list[Staff], case_id: str | None,
           **params: str) -> list[Intent]:
    return [Intent(template_id, MessageClass.STAFF, region, r, (STAFF,), event_id, params, case_id=case_id)
            for r in dict.fromkeys(recipients)]


def on_case_assigned(event_id: str, e: c.CaseAssigned) -> list[Intent]:
    to = Staff(e.assignee) if e.assignee else Staff(f"dept:{e.department}@{e.region}")
    return _staff("staff.case_assigned", event_id, e.region, [to], e.case_id, case_number=e.case_number,
                  department=e.department, title="")


def on_case_escalated(event_id: str, e: c.CaseEscalated, configured: dict[str, list[str]]) -> list[Intent]:
    return _staff("staff.case_escalated", event_id, e.region, supervisors(e.region, configured), e.case_id,
                  case_number=e.case_number, reason=e.reason, escalated_to=e.escalated_to or "supervisor")


def on_sla_breached(event_id: str, e: c.CaseSlaBreached, configured: dict[str, list[str]]) -> list[Intent]:
    owners = [Staff(e.assignee)] if e.assignee else []
    return _staff("staff.sla_breached", event_id, e.region, owners + supervisors(e.region, configured),
                  e.case_id, case_number=e.case_number, clock=e.clock, due_at=e.due_at.isoformat())


def on_collective_incident(event_id: str, e: c.CollectiveIncidentDetected,
                           configured: dict[str, list[str]]) -> list[Intent]:
    return _staff("staff.collective_incident", event_id, e.region, supervisors(e.region, configured), None,
                  project=e.project, building=e.building or "", customer_count=str(e.customer_count),
                  severity=e.severity.value, category=e.category.value)


def on_contract_signed(event_id: str, region: str, e: p.ContractSigned) -> list[Intent]:
    """The customer specialist's welcome, within a week of signing (later it is not sent)."""
    if e.specialist is None:
        return []
    return [Intent("sales.welcome", MessageClass.SERVICE, region, Customer(e.customer_id), (PHONE_FIRST,),
                   event_id, {"company": "", "project_name": e.project_name or e.project,
                              "specialist_name": e.specialist.name, "specialist_phone": e.specialist.phone},
                   expires_at=e.signed_at + WELCOME_WITHIN)]


def next_day(at: datetime, tz: ZoneInfo) -> datetime:
    """Midnight after `at`, local time: the gate then moves it into the send window."""
    local = at.astimezone(tz)
    return datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=tz)


def on_milestone(event_id: str, region: str, e: p.MilestoneReached, tz: ZoneInfo) -> list[Intent]:
    """Every owner of the project (of that building when one is given), by SMS the next day;
    by letter as well, for the site open day and delivery only."""
    groups: tuple[tuple[str, ...], ...] = (PHONE_FIRST, ("letter",)) if e.milestone in LETTER_MILESTONES \
        else (PHONE_FIRST,)
    return [Intent(f"milestone.{e.milestone.value}", MessageClass.NOTICE, region, Owners(e.project, e.building),
                   groups, event_id, {"project_name": e.project_name or e.project, "building": e.building or ""},
                   not_before=next_day(e.occurred_at, tz))]


def on_unit_delivered(event_id: str, region: str, e: p.UnitDelivered) -> list[Intent]:
    return [Intent("unit.move_in", MessageClass.SERVICE, region, Customer(e.customer_id), (PHONE_FIRST,),
                   event_id, {"project_name": e.project, "building": e.building, "unit": e.unit})]


def on_survey_scheduled(event_id: str, region: str, e: s.SurveyScheduled, tz: ZoneInfo) -> list[Intent]:
    """The visit notice, a week before the visit (at `notice_at` when the survey says)."""
    notice_at = e.notice_at or (e.due_at - VISIT_NOTICE_AHEAD)
    return [Intent("survey.visit_notice", MessageClass.SERVICE, region, Customer(e.customer_id), (PHONE_FIRST,),
                   event_id, {"visit_date": e.due_at.astimezone(tz).date().isoformat()},
                   not_before=notice_at, expires_at=e.due_at, survey_id=e.survey_id)]


def birthday_greeting(customer_id: str, region: str, day: date, tz: ZoneInfo) -> Intent:
    """A care greeting on the customer's birthday (marketing: consent and quiet rules apply)."""
    return Intent("care.birthday", MessageClass.MARKETING, region, Customer(customer_id), (PHONE_FIRST,),
                  f"birthday:{customer_id}:{day.isoformat()}",
                  not_before=datetime.combine(day, datetime.min.time(), tzinfo=tz),
                  expires_at=datetime.combine(day + timedelta(days=3), datetime.min.time(), tzinfo=tz))


def is_birthday(birthday: date | None, day: date) -> bool:
    """29 February birthdays are greeted on 28 February in other years."""
    if birthday is None:
        return False
    if (birthday.month, birthday.day) == (2, 29) and not _leap(day.year):
        return (day.month, day.day) == (2, 28)
    return (birthday.month, birthday.day) == (day.month, day.day)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


# The holidays a customer centre greets its owners for (chinese_calendar's names), in
# zh-CN and en. Tomb-sweeping Day is a day of mourning, Labour Day not a family feast.
GREETED_HOLIDAYS = {
    "New Year's Day": ("元旦", "New Year's Day"),
    "Spring Festival": ("春节", "the Spring Festival"),
    "Dragon Boat Festival": ("端午节", "the Dragon Boat Festival"),
    "Mid-autumn Festival": ("中秋节", "the Mid-Autumn Festival"),
    "National Day": ("国庆节", "National Day"),
}
LOOK_AHEAD = 21  # days: the longest run of days off before a holiday is well under this


@dataclass(frozen=True)
class HolidayBreak:
    first_day: date  # the first day off of the break the holiday falls in
    last_day: date
    names: tuple[str, ...]  # chinese_calendar names of the greeted holidays in it, in order


def greeting_day(first_day: date, working_day: Callable[[date], bool] = is_working_day) -> date:
    """The last working day before a break: greetings say the holiday is coming, and
    marketing messages are not sent on public holidays, so they go out then."""
    day = first_day - timedelta(days=1)
    while not working_day(day):
        day -= timedelta(days=1)
    return day


def holiday_breaks_greeted_on(day: date, *, holiday_of: Callable[[date], str | None] = holiday_name,
                              working_day: Callable[[date], bool] = is_working_day) -> list[HolidayBreak]:
    """The breaks (a greeted holiday with the days off around it, weekends included) whose
    greeting day is `day`. Mid-Autumn falling inside the National Day break is one break
    and one greeting naming both."""
    one = timedelta(days=1)
    breaks: list[HolidayBreak] = []
    d = day + one
    while d <= day + timedelta(days=LOOK_AHEAD):
        if holiday_of(d) not in GREETED_HOLIDAYS:
            d += one
            continue
        first = last = d
        while not working_day(first - one):
            first -= one
        while not working_day(last + one):
            last += one
        names: list[str] = []
        for n in range((last - first).days + 1):
            name = holiday_of(first + n * one)
            if name in GREETED_HOLIDAYS and name not in names:
                names.append(name)
        if greeting_day(first, working_day) == day:
            breaks.append(HolidayBreak(first, last, tuple(names)))
        d = last + one
    return breaks


def holiday_greeting(region: str, brk: HolidayBreak, tz: ZoneInfo) -> Intent:
    """A care greeting to every owner of the region before the break (marketing: consent,
    opt-outs, the send window and the household cap apply); not sent once it has begun."""
    zh = "、".join(GREETED_HOLIDAYS[n][0] for n in brk.names)
    en = " and ".join(GREETED_HOLIDAYS[n][1] for n in brk.names)
    return Intent("care.holiday", MessageClass.MARKETING, region, Owners(None, None), (PHONE_FIRST,),
                  f"holiday:{region}:{brk.first_day.isoformat()}", {"holiday_name": zh, "holiday_name_en": en},
                  expires_at=datetime.combine(brk.first_day, datetime.min.time(), tzinfo=tz))
